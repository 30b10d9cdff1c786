"""Keras model -> TFLite flatbuffer: int8, float16, float32, and LCE binary.

One converter for every pruning method: the methods hand over a Keras model,
this module turns it into the bytes a device stores. Validation happens here,
before TensorFlow's converter runs, so that a bad model or bad calibration data
fails with one line instead of a converter traceback.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfprune.deploy.tflite import convert
    >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)),
    ...     tf.keras.layers.Conv2D(4, 3), tf.keras.layers.Flatten(),
    ...     tf.keras.layers.Dense(2)])
    >>> fb = convert(model, np.random.rand(16, 8, 8, 1).astype("float32"))
    >>> fb[4:8]
    b'TFL3'
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from tfprune._native import captured_output
from tfprune.keras_model import first_line, has_larq_layers, labelled_samples

#: How many representative samples calibrate int8 (DESIGN section 4).
CALIBRATION_SAMPLES = 500

QUANTIZATIONS = ("int8", "float16", "float32")
IO_TYPES = ("int8", "uint8", "float")


def representative_array(data: Any, sample_shape: tuple[int, ...], limit: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """Turn representative data into a float32 array ``(n, *sample_shape)``, n <= limit.

    ``data`` is an array ``(N, ...)``, a tuple ``(x, y)`` of arrays, a
    ``tf.data.Dataset`` of ``x`` or ``(x, y)`` batches (or single samples), an
    ``.npz`` path holding it as its array ``x`` or its only array, or an
    iterable of batches.

    Example:
        >>> representative_array(np.zeros((600, 2, 2), "uint8"), (2, 2)).shape
        (500, 2, 2)
    """
    return labelled_samples(data, sample_shape, limit)[0]


def convert(
    model: Any,
    representative: np.ndarray | None = None,
    *,
    quantization: str = "int8",
    io: str = "int8",
) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer with the stock converter.

    ``quantization="int8"`` is full-integer post-training quantization calibrated
    on ``representative`` (required) with ``io`` as input/output type;
    ``"float16"`` stores float16 weights (Android GPU/CPU); ``"float32"`` is
    the unquantized model.

    Example:
        >>> import tensorflow as tf
        >>> m = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        >>> len(convert(m, quantization="float32")) > 0
        True
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if io not in IO_TYPES:
        raise ValueError(f"unknown io type {io!r}; choose one of {', '.join(IO_TYPES)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 quantization needs representative data (an array of inputs) to calibrate")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration_feed(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_dtype = {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}[io]
        converter.inference_input_type = io_dtype
        converter.inference_output_type = io_dtype
    elif quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return _run_converter(converter.convert, model.name)


def convert_lce(model: Any, representative: np.ndarray | None = None, *, io: str = "float") -> bytes:
    """Convert a larq model with Larq Compute Engine: binary layers become LCE's bit-packed ops.

    The result needs LCE's runtime (Arm64/Arm32, Android); the stock TFLite
    interpreter and TFLite Micro cannot run it.

    Example:
        >>> import larq as lq, tensorflow as tf
        >>> m = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), lq.layers.QuantConv2D(
        ...     8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)])
        >>> convert_lce(m)[4:8]
        b'TFL3'
    """
    import larq_compute_engine as lce
    import tensorflow as tf

    if io not in ("float", "int8"):
        raise ValueError(f"android-lce supports io 'float' or 'int8', not {io!r}")
    if not has_larq_layers(model):
        raise ValueError(
            f"model {model.name!r} has no larq quantized layers; android-lce is for binary (larq) models, "
            "use --target android for others"
        )
    io_dtype = tf.int8 if io == "int8" else tf.float32
    return _run_converter(
        lambda: lce.convert_keras_model(model, inference_input_type=io_dtype, inference_output_type=io_dtype),
        model.name,
    )


def _calibration_feed(samples: np.ndarray):
    def feed():
        for sample in samples:
            yield [sample[None].astype(np.float32)]

    return feed


def _run_converter(run: Any, model_name: str) -> bytes:
    try:
        # The converter prints MLIR statistics from C++ and warns about calibration details
        # it handles itself; neither is for the user.
        with captured_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(run())
    except Exception as error:
        raise ValueError(f"model {model_name!r} cannot be converted: {_converter_reason(error)}") from error


def _converter_reason(error: Exception) -> str:
    text = str(error)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return f"TensorFlow ops with no TFLite builtin: {', '.join(ops)} (replace the layers that use them)"
    return first_line(error)
