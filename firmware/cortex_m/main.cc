// tfprune firmware template: runs the generated model once with TensorFlow Lite Micro.
//
// Needs the files `tfprune convert ... --target cortex-m --out build/` writes:
//   model_data.h / model_data.cc  the flatbuffer array, I/O facts, kTensorArenaSize
//   model_ops.h                   ModelOpResolver and RegisterModelOps()
// Build: see Makefile and README.md in this folder.
//
// It fills every input with its zero point (a "blank" input: swap in real,
// preprocessed data as model_data.h's kPreprocessing describes), invokes once,
// and prints the top-1 class of output 0, the output values and the arena the
// interpreter really used.

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

#if defined(TF_LITE_MCU_DEBUG_LOG)
// The cortex_m_generic TFLite Micro build sends MicroPrintf to a callback the
// application registers, since only the application knows its UART.
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#endif

namespace {

// The arena: TFLite Micro puts every tensor, scratch buffer and its own
// bookkeeping here. 16-byte aligned so none of it is lost to realignment.
alignas(16) static uint8_t g_tensor_arena[kTensorArenaSize];

// Most boards retarget newlib's _write() to a UART or semihosting; adapt here
// if yours prints another way.
void WriteLog(const char* text) { fputs(text, stdout); }

int ElementSize(TfLiteType type) {
  switch (type) {
    case kTfLiteInt8:
    case kTfLiteUInt8:
      return 1;
    case kTfLiteInt16:
      return 2;
    case kTfLiteFloat32:
    case kTfLiteInt32:
      return 4;
    default:
      return 0;
  }
}

// The value of output element i in integer form, and its real value times 1000
// (integers keep printf free of float support, which nano newlib leaves out).
void ReadOutput(const TfLiteTensor* t, int i, long* raw, long* milli) {
  switch (t->type) {
    case kTfLiteInt8:
      *raw = t->data.int8[i];
      break;
    case kTfLiteUInt8:
      *raw = t->data.uint8[i];
      break;
    case kTfLiteInt16:
      *raw = t->data.i16[i];
      break;
    case kTfLiteFloat32:
      *raw = 0;
      *milli = static_cast<long>(t->data.f[i] * 1000.0f);
      return;
    default:
      *raw = 0;
      *milli = 0;
      return;
  }
  *milli = static_cast<long>(static_cast<float>(*raw - t->params.zero_point) *
                             t->params.scale * 1000.0f);
}

bool FillWithZeroPoint(TfLiteTensor* t) {
  const int size = ElementSize(t->type);
  if (size == 0) return false;
  const int count = static_cast<int>(t->bytes) / size;
  for (int i = 0; i < count; ++i) {
    switch (t->type) {
      case kTfLiteInt8:
        t->data.int8[i] = static_cast<int8_t>(t->params.zero_point);
        break;
      case kTfLiteUInt8:
        t->data.uint8[i] = static_cast<uint8_t>(t->params.zero_point);
        break;
      case kTfLiteInt16:
        t->data.i16[i] = static_cast<int16_t>(t->params.zero_point);
        break;
      case kTfLiteFloat32:
        t->data.f[i] = 0.0f;
        break;
      case kTfLiteInt32:
        t->data.i32[i] = 0;
        break;
      default:
        return false;
    }
  }
  return true;
}

// Checks the interpreter's tensors against what tfprune measured, so a stale
// model_data.h (from another model) fails loudly instead of misreading data.
bool TensorsMatchHeader(tflite::MicroInterpreter& interpreter) {
  if (static_cast<int>(interpreter.inputs_size()) != kModelInputCount ||
      static_cast<int>(interpreter.outputs_size()) != kModelOutputCount) {
    MicroPrintf("The model has %d inputs and %d outputs; model_data.h says %d and %d.",
                static_cast<int>(interpreter.inputs_size()),
                static_cast<int>(interpreter.outputs_size()), kModelInputCount,
                kModelOutputCount);
    return false;
  }
  for (int i = 0; i < kModelInputCount; ++i) {
    const TfLiteTensor* t = interpreter.input(i);
    if (ElementSize(t->type) * kInputElements[i] != static_cast<int>(t->bytes)) {
      MicroPrintf("Input %d has %d bytes, not the %d elements model_data.h lists.", i,
                  static_cast<int>(t->bytes), kInputElements[i]);
      return false;
    }
  }
  for (int i = 0; i < kModelOutputCount; ++i) {
    const TfLiteTensor* t = interpreter.output(i);
    if (ElementSize(t->type) * kOutputElements[i] != static_cast<int>(t->bytes)) {
      MicroPrintf("Output %d has %d bytes, not the %d elements model_data.h lists.", i,
                  static_cast<int>(t->bytes), kOutputElements[i]);
      return false;
    }
  }
  return true;
}

void PrintOutput(const TfLiteTensor* output) {
  const int count = kOutputElements[0];
  int best = 0;
  long best_raw = 0, best_milli = 0;
  for (int i = 0; i < count; ++i) {
    long raw = 0, milli = 0;
    ReadOutput(output, i, &raw, &milli);
    if (i == 0 || milli > best_milli) {
      best = i;
      best_raw = raw;
      best_milli = milli;
    }
    // A classifier has a handful of outputs; print them all up to a screenful.
    if (i < 32) MicroPrintf("  output[%d] = %ld (real x1000: %ld)", i, raw, milli);
  }
  MicroPrintf("Top-1 class: %d (raw %ld, real x1000: %ld)", best, best_raw, best_milli);
}

}  // namespace

int main() {
  tflite::InitializeTarget();
#if defined(TF_LITE_MCU_DEBUG_LOG)
  RegisterDebugLogCallback(WriteLog);
#endif
  MicroPrintf("tfprune model: %u bytes of flatbuffer, arena %u bytes (%u measured on host)",
              g_model_data_len, kTensorArenaSize, kMeasuredArenaBytes);
  MicroPrintf("Expected preprocessing: %s", kPreprocessing);

  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("Model schema version %d is not %d, the one this TFLite Micro reads.",
                static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return 1;
  }

  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) {
    MicroPrintf("Registering the model's %d operators failed (see above).", kModelOpCount);
    return 1;
  }

  static tflite::MicroInterpreter interpreter(model, resolver, g_tensor_arena,
                                              kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    MicroPrintf("AllocateTensors() failed. If the messages above say the arena is too small,");
    MicroPrintf("re-export with a larger arena_margin (kTensorArenaSize is %u bytes);",
                kTensorArenaSize);
    MicroPrintf("if they name a missing operator, this TFLite Micro build lacks its kernel.");
    return 1;
  }
  if (!TensorsMatchHeader(interpreter)) return 1;

  for (int i = 0; i < kModelInputCount; ++i) {
    if (!FillWithZeroPoint(interpreter.input(i))) {
      MicroPrintf("Input %d has a type this template does not fill.", i);
      return 1;
    }
  }
  if (interpreter.Invoke() != kTfLiteOk) {
    MicroPrintf("Invoke() failed (see the messages above).");
    return 1;
  }

  PrintOutput(interpreter.output(0));
  MicroPrintf("Arena used: %u of %u bytes", static_cast<unsigned>(interpreter.arena_used_bytes()),
              kTensorArenaSize);
  return 0;
}
