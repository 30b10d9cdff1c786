"""Verification: the artifact in TFLite Micro against a reference interpreter.

For ``cortex-m`` the reference is the stock TFLite interpreter with its
reference kernels (``OpResolverType.BUILTIN_REF``) on the uncompressed model,
so one comparison covers both the TFLite Micro kernels and LUT compression.
For ``android-lce`` the reference is LCE's interpreter against the Keras model.

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
    >>> x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    >>> result = verify_micro(fb, fb, x)
    >>> result.top1_agreement
    1.0
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from tfprune.deploy.micro import MicroRunner, scale_and_zero_point


@dataclass(frozen=True)
class Verification:
    """How the deployed artifact's outputs compare with the reference's.

    ``max_abs_diff`` is in quantized units (``unit == "quantized"``) for integer
    outputs and in real units otherwise. ``accuracy`` is the artifact's top-1
    against labels, when labels were given.
    """

    samples: int
    reference: str
    top1_agreement: float
    max_abs_diff: float
    unit: str
    accuracy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The verification as plain JSON-ready values."""
        return asdict(self)


def quantize_input(samples: np.ndarray, details: dict) -> np.ndarray:
    """Bring float samples into an interpreter's input type with its scale and zero point.

    Example:
        >>> details = {"dtype": np.int8, "quantization_parameters": {"scales": np.array([1.0]),
        ...            "zero_points": np.array([-128])}}
        >>> quantize_input(np.array([0.0, 255.0]), details).tolist()
        [-128, 127]
    """
    dtype = np.dtype(details["dtype"])
    if dtype.kind == "f":
        return samples.astype(dtype)
    scale, zero_point = scale_and_zero_point(details)
    info = np.iinfo(dtype)
    return np.clip(np.round(samples / scale) + zero_point, info.min, info.max).astype(dtype)


def verify_micro(
    flatbuffer: bytes,
    reference_flatbuffer: bytes,
    samples: np.ndarray,
    labels: np.ndarray | None = None,
    progress: bool = False,
) -> Verification:
    """Run ``flatbuffer`` in TFLite Micro and ``reference_flatbuffer`` in TFLite (reference kernels).

    ``samples`` are what the Keras model takes (floats); each interpreter
    quantizes them with its own input parameters.
    """
    import tensorflow as tf

    micro = MicroRunner(flatbuffer)
    reference = tflite_runner(reference_flatbuffer, tf.lite.experimental.OpResolverType.BUILTIN_REF, real=False)
    unit = "quantized" if np.dtype(micro.output_details["dtype"]).kind in "iu" else "real"
    return _compare(
        lambda x: micro.run(quantize_input(x, micro.input_details)),
        reference,
        samples,
        labels,
        "tflite BUILTIN_REF",
        progress,
        unit,
    )


def verify_lce(
    flatbuffer: bytes,
    keras_model: Any,
    samples: np.ndarray,
    labels: np.ndarray | None = None,
    progress: bool = False,
) -> Verification:
    """Run an LCE flatbuffer in LCE's interpreter and compare it with the Keras model."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer)
    input_details = _details(interpreter.input_types[0], interpreter.input_scales[0], interpreter.input_zero_points[0])
    output_details = _details(
        interpreter.output_types[0], interpreter.output_scales[0], interpreter.output_zero_points[0]
    )

    def run(x: np.ndarray) -> np.ndarray:
        raw = np.asarray(interpreter.predict(quantize_input(x, input_details)))
        return dequantize(raw, output_details)

    return _compare(run, _keras_runner(keras_model), samples, labels, "keras float (LCE interpreter)", progress)


def verify_tflite(
    flatbuffer: bytes,
    keras_model: Any,
    samples: np.ndarray,
    labels: np.ndarray | None = None,
    progress: bool = False,
) -> Verification:
    """Run a flatbuffer in the stock TFLite interpreter (as on Android) against the Keras model."""
    run = tflite_runner(flatbuffer, resolver=None, real=True)
    return _compare(run, _keras_runner(keras_model), samples, labels, "keras float (TFLite interpreter)", progress)


def dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    """Real values of an interpreter's integer output (floats pass through).

    Example:
        >>> details = {"dtype": np.int8, "quantization_parameters": {"scales": np.array([0.5]),
        ...            "zero_points": np.array([-1])}}
        >>> dequantize(np.array([1, 3], np.int8), details).tolist()
        [1.0, 2.0]
    """
    if np.dtype(details["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = scale_and_zero_point(details)
    return (values.astype(np.float32) - zero_point) * scale


def _details(dtype: Any, scale: Any, zero_point: Any) -> dict:
    return {
        "dtype": dtype,
        "quantization_parameters": {
            "scales": np.array([] if scale is None else [scale], np.float32).ravel(),
            "zero_points": np.array([] if zero_point is None else [zero_point], np.int64).ravel(),
        },
    }


def _keras_runner(keras_model: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.asarray(keras_model(x, training=False))


def tflite_runner(flatbuffer: bytes, resolver: Any, real: bool) -> Callable[[np.ndarray], np.ndarray]:
    """One-sample runs in the TFLite interpreter; outputs raw, or in real units when ``real``."""
    import tensorflow as tf

    options = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    interpreter = _interpreter(flatbuffer, **options)
    try:
        interpreter.allocate_tensors()
    except RuntimeError as error:
        if resolver is not None or "XNNPACK" not in str(error):
            raise
        # TensorFlow 2.21's XNNPACK delegate fails to prepare some int8 graphs that 2.15's ran
        # (binary models' sign emulation); the same builtin kernels without the delegate run them.
        interpreter = _interpreter(
            flatbuffer,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(input_details["index"], quantize_input(x, input_details))
        interpreter.invoke()
        output = interpreter.get_tensor(output_details["index"])
        return dequantize(output, output_details) if real else output

    return run


def _compare(
    run: Callable[[np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    samples: np.ndarray,
    labels: np.ndarray | None,
    reference_name: str,
    progress: bool,
    unit: str = "real",
) -> Verification:
    agree = correct = 0
    max_diff = 0.0
    # a bar on a terminal only (disable=None); a log gets the one line below instead
    bar = tqdm(range(len(samples)), desc="verify", disable=None if progress else True, leave=False)
    for index in bar:
        x = samples[index : index + 1]
        ours, theirs = run(x), reference(x)
        max_diff = max(max_diff, float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))))
        agree += int(np.argmax(ours) == np.argmax(theirs))
        if labels is not None:
            correct += int(np.argmax(ours) == int(labels[index]))
    count = len(samples)
    result = Verification(
        samples=count,
        reference=reference_name,
        top1_agreement=agree / count if count else 0.0,
        max_abs_diff=max_diff,
        unit=unit,
        accuracy=correct / count if labels is not None and count else None,
    )
    if progress and bar.disable:
        print(f"verify: {count} samples against {reference_name}, top-1 agreement {result.top1_agreement:.1%}",
              file=sys.stderr, flush=True)
    return result


def tflite_accuracy(flatbuffer: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a flatbuffer in the TFLite interpreter, one image at a time.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.deploy.tflite import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(
        ...     2, kernel_initializer=tf.keras.initializers.Identity())])
        >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]], "float32")
        >>> tflite_accuracy(convert(model, x), x, np.array([0, 1, 0]))
        0.6666666666666666
    """
    run = tflite_runner(flatbuffer, resolver=None, real=False)
    correct = sum(int(np.argmax(run(x[i : i + 1])) == int(y[i])) for i in range(len(x)))
    return correct / len(x)


def _interpreter(flatbuffer: bytes, **options: Any) -> Any:
    import tensorflow as tf

    with warnings.catch_warnings():
        # TensorFlow 2.21 warns at every interpreter that tf.lite.Interpreter moves to ai-edge-litert
        # (README, "Compatibility"); it is the interpreter this check means to run.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        return tf.lite.Interpreter(model_content=bytes(flatbuffer), **options)
