"""Keras model -> TFLite flatbuffer: int8, float16, float32, and LCE binary.

One converter for every pruning method: the methods hand over a Keras model,
this module turns it into the bytes a device stores. Validation happens here,
before TensorFlow's converter runs, so that a bad model or bad calibration data
fails with one line instead of a converter traceback.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfprune.export.tflite import convert
    >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)),
    ...     tf.keras.layers.Conv2D(4, 3), tf.keras.layers.Flatten(),
    ...     tf.keras.layers.Dense(2)])
    >>> fb = convert(model, np.random.rand(16, 8, 8, 1).astype("float32"))
    >>> fb[4:8]
    b'TFL3'
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tfprune._native import captured_output

#: How many representative samples calibrate int8 (DESIGN section 4).
CALIBRATION_SAMPLES = 500

QUANTIZATIONS = ("int8", "float16", "float32")
IO_TYPES = ("int8", "uint8", "float")


def load_model(path: str | os.PathLike) -> Any:
    """Load a Keras 2 model from a ``.keras``/``.h5`` file or a SavedModel directory.

    larq layers load too. Raises ``ValueError`` with one line for a missing file,
    a flatbuffer, a Keras 3 file or anything that is not a Keras model.

    Example:
        >>> load_model("missing.keras")
        Traceback (most recent call last):
        ...
        ValueError: missing.keras: no such file or directory
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    if path.is_file():
        _check_model_file(path)
    elif not (path / "saved_model.pb").exists():
        raise ValueError(f"{path}: a directory but not a SavedModel (no saved_model.pb in it)")
    import tensorflow as tf

    import larq  # noqa: F401  (registers larq's layers and quantizers for loading)

    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # the loader's errors are long and deep; keep one line
        raise ValueError(f"{path}: could not be loaded as a Keras model ({_first_line(error)})") from None
    check_keras_model(model)
    return model


def _check_model_file(path: Path) -> None:
    head = path.read_bytes()[:8]
    if head[4:8] == b"TFL3":
        raise ValueError(f"{path}: already a TFLite flatbuffer; use `tfprune inspect {path}` to read it")
    if zipfile.is_zipfile(path):
        version = _keras_file_version(path)
        if version.startswith("3"):
            raise ValueError(
                f"{path}: saved by Keras {version}; tfprune needs a Keras 2 model (tf.keras in "
                "TensorFlow 2.15): re-save it with tf.keras as .keras or .h5"
            )
        return
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return
    raise ValueError(f"{path}: not a Keras model (.keras or .h5) nor a SavedModel directory")


def _keras_file_version(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        if "metadata.json" not in archive.namelist():
            raise ValueError(f"{path}: a zip file but not a .keras model (no metadata.json)")
        return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))


def check_keras_model(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a Keras 2 Sequential or functional model.

    Subclassed models have no layer graph to prune or cut, and Keras 3 models
    cannot be converted by TensorFlow 2.15's converter.

    Example:
        >>> check_keras_model("not a model")
        Traceback (most recent call last):
        ...
        TypeError: expected a tf.keras (Keras 2) model, got str
    """
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model):
        origin = type(model).__module__.split(".")[0]
        hint = " (a Keras 3 model: rebuild it with tf.keras in TensorFlow 2.15)" if origin == "keras" else ""
        raise TypeError(f"expected a tf.keras (Keras 2) model, got {type(model).__name__}{hint}")
    if not (isinstance(model, tf.keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise TypeError(
            f"model {model.name!r} is a subclassed Keras model ({type(model).__name__}); "
            "tfprune needs a Sequential or functional model: rebuild it with tf.keras.Input and layer calls"
        )
    if len(model.inputs) != 1:
        raise TypeError(f"model {model.name!r} has {len(model.inputs)} inputs; tfprune exports single-input models")


def model_sample_shape(model: Any) -> tuple[int, ...]:
    """The shape of one input sample, without the batch axis.

    Example:
        >>> import tensorflow as tf
        >>> model_sample_shape(tf.keras.Sequential([tf.keras.Input((4, 2)), tf.keras.layers.Dense(1)]))
        (4, 2)
    """
    shape = tuple(model.inputs[0].shape[1:])
    if any(dim is None for dim in shape):
        raise ValueError(f"model {model.name!r} has an input of unknown size {shape}; give it a fixed input shape")
    return tuple(int(dim) for dim in shape)


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


def labelled_samples(
    data: Any, sample_shape: tuple[int, ...], limit: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples as float32 ``(n, *sample_shape)`` and their labels when the data has them.

    Accepts what :func:`representative_array` accepts; an ``.npz`` gives labels
    from its array ``y``.

    Example:
        >>> x, y = labelled_samples((np.zeros((3, 2)), np.arange(3)), (2,))
        >>> x.shape, y.tolist()
        ((3, 2), [0, 1, 2])
    """
    labels = None
    if isinstance(data, (str, os.PathLike)):
        data, labels = load_npz_samples(data), _npz_labels(data)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        data, labels = data
    if isinstance(data, np.ndarray):
        samples = _check_samples(data[:limit], sample_shape)
        labels = None if labels is None else np.asarray(labels)[:limit]
    else:
        samples, labels = _collect_batches(data, sample_shape, limit)
    if len(samples) == 0:
        raise ValueError("the data is empty; give at least one sample")
    if labels is not None and len(labels) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(labels)} labels; give one label per sample")
    if labels is not None and labels.ndim > 1:  # one-hot -> class index
        labels = labels.reshape(len(labels), -1).argmax(-1)
    return samples.astype(np.float32), labels


def load_npz_samples(path: str | os.PathLike, key: str = "x") -> np.ndarray:
    """Read the samples of an ``.npz``: its array ``key`` or, failing that, its only array.

    Example:
        >>> load_npz_samples("nothing.npz")
        Traceback (most recent call last):
        ...
        ValueError: nothing.npz: no such file
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise ValueError(f"{path}: not a NumPy .npz file ({_first_line(error)})") from None
    if not hasattr(archive, "files"):
        return archive
    if key in archive.files:
        return archive[key]
    if len(archive.files) == 1:
        return archive[archive.files[0]]
    raise ValueError(f"{path}: holds arrays {archive.files}; name the samples array {key!r}")


def _npz_labels(path: str | os.PathLike) -> np.ndarray | None:
    with np.load(path, allow_pickle=False) as archive:
        return archive["y"] if "y" in archive.files else None


def _collect_batches(
    data: Iterable[Any], sample_shape: tuple[int, ...], limit: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"data must be an array, an (x, y) tuple, a tf.data.Dataset or an .npz path, got {type(data).__name__}"
        )
    samples: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for element in data:
        x, y = (element[0], element[1]) if isinstance(element, (tuple, list)) else (element, None)
        x = np.asarray(x)
        single = x.shape == sample_shape
        samples.append(_check_samples(x[None] if single else x, sample_shape))
        if y is not None:
            labels.append(np.atleast_1d(np.asarray(y)) if single else np.asarray(y))
        if limit is not None and sum(map(len, samples)) >= limit:
            break
    if not samples:
        return np.zeros((0, *sample_shape), np.float32), None
    return np.concatenate(samples)[:limit], (np.concatenate(labels)[:limit] if labels else None)


def _check_samples(samples: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype.kind not in "fiub":
        raise ValueError(f"representative data has dtype {samples.dtype}; it must be numeric (float or integer pixels)")
    if samples.shape[1:] != sample_shape:
        raise ValueError(
            f"representative data has samples of shape {samples.shape[1:]} but the model takes {sample_shape}: "
            "give an array (N, *input_shape) or x/(x, y) batches"
        )
    if samples.dtype.kind == "f" and not np.all(np.isfinite(samples)):
        raise ValueError("representative data contains NaN or infinite values")
    return samples


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
    if not _has_larq_layers(model):
        raise ValueError(
            f"model {model.name!r} has no larq quantized layers; android-lce is for binary (larq) models, "
            "use --target android for others"
        )
    io_dtype = tf.int8 if io == "int8" else tf.float32
    return _run_converter(
        lambda: lce.convert_keras_model(model, inference_input_type=io_dtype, inference_output_type=io_dtype),
        model.name,
    )


def _has_larq_layers(model: Any) -> bool:
    return any(type(layer).__module__.startswith("larq") for layer in model.submodules)


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
        raise ValueError(f"model {model_name!r} cannot be converted: {_converter_reason(error)}") from None


def _converter_reason(error: Exception) -> str:
    text = str(error)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return f"TensorFlow ops with no TFLite builtin: {', '.join(ops)} (replace the layers that use them)"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
