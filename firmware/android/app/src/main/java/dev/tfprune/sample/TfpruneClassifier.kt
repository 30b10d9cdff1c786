// tfprune Android sample: classify one input with a model.tflite from the app's assets.
//
// Works for the `tfprune convert ... --target android` flatbuffers (int8 with
// int8/uint8/float I/O, or float16 with float I/O) on the stock TFLite
// interpreter. The input type and quantization are read from the model, so the
// caller always passes real-valued (already preprocessed) features.
package dev.tfprune.sample

import android.content.Context
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import kotlin.math.roundToInt
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor

/** Top-1 class and every class score, dequantized to real values. */
data class Classification(val topClass: Int, val scores: FloatArray)

class TfpruneClassifier(
    context: Context,
    assetName: String = "model.tflite",
    threads: Int = 2,
) : AutoCloseable {

    private val interpreter = Interpreter(
        loadAsset(context, assetName),
        Interpreter.Options().setNumThreads(threads),
    )
    private val input: Tensor = interpreter.getInputTensor(0)
    private val output: Tensor = interpreter.getOutputTensor(0)

    /** Number of real values [classify] expects (the product of the input shape). */
    val inputSize: Int get() = input.numElements()

    /** Runs one sample: [features] are the values the Keras model takes, flattened. */
    fun classify(features: FloatArray): Classification {
        require(features.size == input.numElements()) {
            "model takes ${input.numElements()} values (shape ${input.shape().contentToString()}), got ${features.size}"
        }
        val inBuffer = encode(features, input)
        val outBuffer = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder())
        interpreter.run(inBuffer, outBuffer)
        outBuffer.rewind()
        val scores = decode(outBuffer, output)
        val top = scores.indices.maxByOrNull { scores[it] } ?: -1
        return Classification(top, scores)
    }

    override fun close() = interpreter.close()

    private companion object {
        // Memory-mapped so the interpreter reads weights in place; this needs the
        // asset stored uncompressed (see README: noCompress "tflite").
        fun loadAsset(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).channel.use { channel ->
                    channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }

        // Quantize with the input tensor's own scale and zero point: q = round(x / s) + zp.
        fun encode(values: FloatArray, tensor: Tensor): ByteBuffer {
            val buffer = ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder())
            val scale = tensor.quantizationParams().scale
            val zeroPoint = tensor.quantizationParams().zeroPoint
            for (x in values) {
                when (tensor.dataType()) {
                    DataType.FLOAT32 -> buffer.putFloat(x)
                    DataType.INT8 -> buffer.put(quantize(x, scale, zeroPoint, -128, 127).toByte())
                    DataType.UINT8 -> buffer.put(quantize(x, scale, zeroPoint, 0, 255).toByte())
                    else -> error("input type ${tensor.dataType()} is not handled by this sample")
                }
            }
            buffer.rewind()
            return buffer
        }

        fun quantize(x: Float, scale: Float, zeroPoint: Int, low: Int, high: Int): Int =
            ((x / scale).roundToInt() + zeroPoint).coerceIn(low, high)

        // Dequantize with the output tensor's parameters: x = (q - zp) * s.
        fun decode(buffer: ByteBuffer, tensor: Tensor): FloatArray {
            val scale = tensor.quantizationParams().scale
            val zeroPoint = tensor.quantizationParams().zeroPoint
            return FloatArray(tensor.numElements()) {
                when (tensor.dataType()) {
                    DataType.FLOAT32 -> buffer.float
                    DataType.INT8 -> (buffer.get().toInt() - zeroPoint) * scale
                    DataType.UINT8 -> ((buffer.get().toInt() and 0xFF) - zeroPoint) * scale
                    else -> error("output type ${tensor.dataType()} is not handled by this sample")
                }
            }
        }
    }
}
