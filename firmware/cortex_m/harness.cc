// tfprune emulation harness: runs the generated model on given inputs and times each inference.
//
// Built like main.cc (same generated files, same op resolver, same TFLite Micro),
// for a board with semihosting file access and a timer (board/mps2-an386), by
// `tfprune.emulate` or `make run-qemu APP_SRCS=harness.cc QEMU_ARGS=...`.
//
// argv[1] (through semihosting) names a host file holding input 0's bytes for
// each sample, back to back; without it the harness only allocates tensors (to
// measure the arena). It prints lines for the host to read:
//   tfprune-harness arena_size <bytes>
//   tfprune-harness sample <i> ticks <timer ticks> output <hex bytes of output 0>
//   tfprune-harness arena_used <bytes>
//   tfprune-harness done <samples>
// and returns 0, or prints an error and returns 1.

#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "timer.h"

// The arena: the generated kTensorArenaSize, unless the build asks for another
// size (tfprune.emulate does, to measure a model whose need is not known yet).
#ifdef TFPRUNE_ARENA_BYTES
constexpr unsigned int kHarnessArenaSize = TFPRUNE_ARENA_BYTES;
#else
constexpr unsigned int kHarnessArenaSize = kTensorArenaSize;
#endif

namespace {

alignas(16) uint8_t g_tensor_arena[kHarnessArenaSize];

void WriteLog(const char* text) { fputs(text, stdout); }

int Fail(const char* message) {
  printf("tfprune-harness error %s\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  tflite::InitializeTarget();
  RegisterDebugLogCallback(WriteLog);
  printf("tfprune-harness arena_size %u\n", kHarnessArenaSize);

  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return Fail("model schema version mismatch");
  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return Fail("RegisterModelOps failed");
  static tflite::MicroInterpreter interpreter(model, resolver, g_tensor_arena, kHarnessArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors failed");
  if (interpreter.inputs_size() != 1 || interpreter.outputs_size() != 1) {
    return Fail("the harness runs models with one input and one output");
  }
  TfLiteTensor* input = interpreter.input(0);
  const TfLiteTensor* output = interpreter.output(0);

  int samples = 0;
  if (argc > 1) {
    FILE* file = fopen(argv[1], "rb");
    if (file == nullptr) return Fail("cannot open the input file");
    BoardTimerStart();
    while (fread(input->data.raw, 1, input->bytes, file) == input->bytes) {
      const uint32_t start = BoardTimerTicks();
      const TfLiteStatus status = interpreter.Invoke();
      const uint32_t ticks = BoardTimerTicks() - start;
      if (status != kTfLiteOk) {
        fclose(file);
        return Fail("Invoke failed");
      }
      printf("tfprune-harness sample %d ticks %lu output ", samples, static_cast<unsigned long>(ticks));
      for (size_t i = 0; i < output->bytes; ++i) printf("%02x", static_cast<unsigned>(output->data.uint8[i]));
      printf("\n");
      ++samples;
    }
    fclose(file);
  }
  printf("tfprune-harness arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  printf("tfprune-harness done %d\n", samples);
  return 0;
}
