"""What every tfprune module asks of a Keras model: the bottom layer of the package.

Validating a model (one clear error for Keras 3, subclassed or unsupported
models), which layers are prunable and where their kernels live, and parsing
samples (``x``, ``(x, y)``, ``tf.data``, an ``.npz`` path, an iterable of
batches) all happen here and nowhere else. Keras internals that tfprune touches
(larq's latent variables, wrappers) are read here too, so that a second Keras
backend has one place to go. This module imports no other tfprune module but :mod:`tfprune.keras3_file`.

Example:
    >>> import tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4, 4, 1)), tf.keras.layers.Conv2D(2, 3, name="c"),
    ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, name="d")])
    >>> check_keras_model(model)
    >>> list(prunable_layers(model)), kernel(model.get_layer("c")).shape
    (['c', 'd'], TensorShape([3, 3, 1, 2]))
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tfprune import keras3_file

#: What :func:`is_prunable` accepts, in words, for error messages.
PRUNABLE_TEXT = "Conv2D, DepthwiseConv2D, Dense and larq's QuantConv2D, QuantDepthwiseConv2D, QuantDense"


def first_line(error: BaseException, width: int = 300) -> str:
    """The first non-empty line of an error's text, at most ``width`` characters.

    TensorFlow's errors run to pages; a user-facing message keeps one line of them.

    Example:
        >>> first_line(ValueError("\\n  the reason\\nmore detail"))
        'the reason'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:width] if lines else type(error).__name__


# --- which Keras --------------------------------------------------------------------------------

#: TensorFlow 2.16 and later give ``tf.keras`` = Keras 3 unless this variable is "1", in which
#: case ``tf.keras`` is tf-keras (the Keras 2 API). tfprune, larq and tfmot need Keras 2.
LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
#: One line for a user whose ``tf.keras`` is Keras 3.
KERAS_3_ADVICE = (f"tfprune needs Keras 2: with TensorFlow 2.16 or later, install tf-keras and set "
                  f"{LEGACY_KERAS_VARIABLE}=1 before TensorFlow is imported (import tfprune first, "
                  f"or export {LEGACY_KERAS_VARIABLE}=1), then build the model with tf.keras")


def select_keras_2() -> None:
    """Ask TensorFlow for Keras 2 unless the user set :data:`LEGACY_KERAS_VARIABLE` themselves.

    ``import tfprune`` calls it, before anything imports TensorFlow. On TensorFlow 2.15
    it does nothing: ``tf.keras`` is its own Keras 2.15 there, and the variable would
    switch it to the tf-keras package, which a user's ``import keras`` would not match.
    TensorFlow 2.21 reads the variable when ``tf.keras`` is first used, so a program that
    imported TensorFlow but used no ``tf.keras`` yet still gets Keras 2. The variable is
    process-wide: the user's own ``tf.keras`` is then Keras 2 too, as it must be for the
    models tfprune returns.

    Example:
        >>> select_keras_2()
        >>> tensorflow_version() < (2, 16) or os.environ[LEGACY_KERAS_VARIABLE] == "1"
        True
    """
    if tensorflow_version() >= (2, 16):
        os.environ.setdefault(LEGACY_KERAS_VARIABLE, "1")


def tensorflow_version() -> tuple[int, int]:
    """TensorFlow's (major, minor), read from the installed package without importing it.

    Example:
        >>> tensorflow_version() >= (2, 15)
        True
    """
    import importlib.metadata

    for distribution in ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"):
        try:
            version = importlib.metadata.version(distribution)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    else:  # installed some other way: ask the module itself
        import tensorflow as tf

        version = tf.__version__
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@cache  # check_keras_model asks on every call; a process keeps one Keras (a failed lookup is not cached)
def keras_version() -> str:
    """The version of the Keras behind ``tf.keras``: ``"2.15.0"`` (TensorFlow 2.15's keras),
    ``"2.21.0"`` (tf-keras) or ``"3..."`` (Keras 3, which tfprune cannot use).

    Example:
        >>> keras_version().startswith("2.")
        True
    """
    import importlib.metadata

    import tensorflow as tf

    try:
        package = tf.keras.__name__.split(".")[0]  # "keras" (2.15 or 3) or "tf_keras"
    except ImportError as error:  # TF_USE_LEGACY_KERAS=1 without tf-keras installed
        raise ImportError(f"TensorFlow {tf.__version__} finds no Keras 2: pip install "
                          f"'tf-keras~={'.'.join(tf.__version__.split('.')[:2])}.0'") from error
    return importlib.metadata.version(package.replace("_", "-"))


def check_keras_2() -> None:
    """Raise ``ImportError`` with one line unless ``tf.keras`` is Keras 2.

    Example:
        >>> check_keras_2()
    """
    if keras_version().startswith("3"):
        raise ImportError(KERAS_3_ADVICE)


# --- models ------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike) -> Any:
    """Load a Keras 2 model from a ``.keras``/``.h5`` file or a SavedModel directory.

    larq layers load too. A ``.keras`` file written by Keras 3 is rebuilt as a Keras 2
    model with the same weights where Keras 2 has its layers (:mod:`tfprune.keras3_file`).
    Raises ``ValueError`` with one line for a missing file, a flatbuffer, a Keras 3 file
    Keras 2 cannot express or anything that is not a Keras model.

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
    check_keras_2()  # before larq, which fails deep inside on Keras 3
    import larq  # noqa: F401  (registers larq's layers and quantizers for loading)
    import tensorflow as tf

    if path.is_file() and keras3_file.keras_3_version(path):
        model = keras3_file.load_keras_3(path)  # rebuilt in Keras 2, or one line saying why not
    else:
        try:
            model = tf.keras.models.load_model(path, compile=False)
        except Exception as error:  # the loader's errors are long and deep; keep one line
            raise ValueError(f"{path}: could not be loaded as a Keras model ({first_line(error)})") from error
    check_keras_model(model)
    return model


def _check_model_file(path: Path) -> None:
    head = path.read_bytes()[:8]
    if head[4:8] == b"TFL3":
        raise ValueError(f"{path}: already a TFLite flatbuffer; use `tfprune inspect {path}` to read it")
    if zipfile.is_zipfile(path):
        if keras3_file.keras_file_version(path) is None:
            raise ValueError(f"{path}: a zip file but not a .keras model (no metadata.json)")
        return
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        version = _h5_keras_version(path)
        if version.startswith("3"):
            raise ValueError(f"{path}: a Keras {version} .h5 file, which Keras 2 cannot read; save the model "
                             "as .keras with Keras 3 (model.save('model.keras')) and tfprune reads that")
        return
    raise ValueError(f"{path}: not a Keras model (.keras or .h5) nor a SavedModel directory")


def _h5_keras_version(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as file:
        version = file.attrs.get("keras_version", "")
    return version.decode() if isinstance(version, bytes) else str(version)


def check_keras_model(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a Keras 2 Sequential or functional model.

    Subclassed models have no layer graph to prune or cut, and Keras 3 models
    are not tf.keras models (larq and tfmot work on Keras 2 only).

    Example:
        >>> check_keras_model("not a model")
        Traceback (most recent call last):
        ...
        TypeError: expected a tf.keras (Keras 2) model, got str
    """
    import tensorflow as tf

    check_keras_2()
    if not isinstance(model, tf.keras.Model):
        keras_3 = type(model).__module__.split(".")[0] == "keras"  # tf.keras's own classes passed isinstance
        hint = (" (a Keras 3 model: save it with model.save('model.keras') and load that with "
                "tfprune.load_model, which rebuilds it in Keras 2)") if keras_3 else ""
        raise TypeError(f"expected a tf.keras (Keras 2) model, got {type(model).__name__}{hint}")
    if not (isinstance(model, tf.keras.Sequential) or is_functional(model)):
        raise TypeError(
            f"model {model.name!r} is a subclassed Keras model ({type(model).__name__}); "
            "tfprune needs a Sequential or functional model: rebuild it with tf.keras.Input and layer calls"
        )
    if len(model.inputs) != 1:
        raise TypeError(f"model {model.name!r} has {len(model.inputs)} inputs; tfprune exports single-input models")


def copy_model(model: Any) -> Any:
    """A copy of ``model`` with new layers holding the same weights (BatchNorm statistics included).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
        >>> copy = copy_model(model)
        >>> copy.layers[0] is model.layers[0], bool((copy.get_weights()[0] == model.get_weights()[0]).all())
        (False, True)
    """
    import tensorflow as tf

    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


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


# --- prunable layers and their kernels ---------------------------------------------------------


def is_prunable(layer: Any) -> bool:
    """Whether tfprune prunes ``layer``: Conv2D, DepthwiseConv2D, Dense and their larq versions.

    Transposed convolutions are not (Keras stores their kernel as
    ``(h, w, out, in)``), nor are separable ones (build them as DepthwiseConv2D
    plus a 1x1 Conv2D). A wrapper is not; its inner layer may be (see
    :func:`inner_layer`).

    Example:
        >>> import tensorflow as tf
        >>> is_prunable(tf.keras.layers.Conv2D(4, 3)), is_prunable(tf.keras.layers.Flatten())
        (True, False)
    """
    import tensorflow as tf

    layers = tf.keras.layers
    if isinstance(layer, layers.Conv2DTranspose):
        return False
    return isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))


def is_depthwise(layer: Any) -> bool:
    """Whether ``layer`` is a depthwise convolution (its kernel is ``(h, w, channels, multiplier)``).

    Example:
        >>> import tensorflow as tf
        >>> is_depthwise(tf.keras.layers.DepthwiseConv2D(3)), is_depthwise(tf.keras.layers.Conv2D(2, 3))
        (True, False)
    """
    import tensorflow as tf

    return isinstance(layer, tf.keras.layers.DepthwiseConv2D)


def inner_layer(layer: Any) -> Any:
    """The layer a ``tf.keras.layers.Wrapper`` (such as ``MaskedLayer``) wraps, else ``layer``.

    Example:
        >>> import tensorflow as tf
        >>> inner_layer(tf.keras.layers.Dense(2)).__class__.__name__
        'Dense'
    """
    import tensorflow as tf

    while isinstance(layer, tf.keras.layers.Wrapper) and not isinstance(
            layer, (tf.keras.layers.TimeDistributed, tf.keras.layers.Bidirectional)):
        layer = layer.layer
    return layer


def prunable_layers(model: Any) -> dict[str, Any]:
    """The prunable layers, by name, in model order (nested models included).

    A wrapped layer (``tf.keras.layers.Wrapper``) is listed under the wrapper's
    name with its inner layer as value, because the inner layer holds the kernel.
    Raises ``ValueError`` when the model has none.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4, 4, 1)), tf.keras.layers.Conv2D(2, 3, name="c"),
        ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, name="d")])
        >>> list(prunable_layers(model))
        ['c', 'd']
    """
    check_keras_model(model)
    found: dict[str, Any] = {}
    _collect_prunable(model, found)
    if not found:
        raise ValueError(f"model {model.name!r} has no prunable layer ({PRUNABLE_TEXT}): there is nothing to prune")
    return found


def _collect_prunable(model: Any, found: dict[str, Any]) -> None:
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            _collect_prunable(layer, found)
            continue
        inner = inner_layer(layer)
        if not is_prunable(inner):
            continue
        if layer.name in found:
            raise ValueError(f"two prunable layers are named {layer.name!r}; give every layer a unique name")
        if not inner.built:
            raise ValueError(f"layer {layer.name!r} is not built; call the model once or give it an Input first")
        found[layer.name] = inner


def kernel_attribute(layer: Any) -> str:
    """The name of the attribute that holds a prunable layer's kernel.

    Example:
        >>> import tensorflow as tf
        >>> kernel_attribute(tf.keras.layers.DepthwiseConv2D(3)), kernel_attribute(tf.keras.layers.Dense(2))
        ('depthwise_kernel', 'kernel')
    """
    return "depthwise_kernel" if is_depthwise(layer) else "kernel"


def kernel(layer: Any) -> Any:
    """The kernel variable of a prunable layer (larq's ``QuantizedVariable`` for larq layers).

    Example:
        >>> import tensorflow as tf
        >>> layer = tf.keras.layers.Dense(2); layer.build((None, 3))
        >>> kernel(layer).shape
        TensorShape([3, 2])
    """
    return getattr(layer, kernel_attribute(layer))


def kernels(model: Any) -> dict[str, Any]:
    """The kernel variable of every prunable layer, by layer name (see :func:`prunable_layers`).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="fc")])
        >>> {name: tuple(k.shape) for name, k in kernels(model).items()}
        {'fc': (4, 3)}
    """
    return {name: kernel(layer) for name, layer in prunable_layers(model).items()}


def latent_variable(variable: Any) -> Any:
    """The stored variable behind larq's ``QuantizedVariable`` (the variable itself otherwise).

    larq 0.14 wraps a quantized layer's kernel; constraints and assignments go to
    the latent variable it holds.

    Example:
        >>> import tensorflow as tf
        >>> v = tf.Variable(1.0)
        >>> latent_variable(v) is v
        True
    """
    return getattr(variable, "latent_variable", variable)


def is_larq_layer(layer: Any) -> bool:
    """Whether ``layer`` comes from larq (its quantized layers binarize inputs or weights).

    Example:
        >>> import tensorflow as tf
        >>> is_larq_layer(tf.keras.layers.Dense(2))
        False
    """
    return type(layer).__module__.startswith("larq")


def has_larq_layers(model: Any) -> bool:
    """Whether any layer of ``model`` (nested ones included) comes from larq.

    Example:
        >>> import tensorflow as tf
        >>> has_larq_layers(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]))
        False
    """
    return any(is_larq_layer(layer) for layer in model.submodules)


# --- Keras internals ----------------------------------------------------------------------------
# Every private Keras attribute tfprune reads or writes is read or written here, and each was
# checked against Keras 2.15.0 (TensorFlow 2.15.1) and tf-keras 2.21.0 (TensorFlow 2.21.0).


def is_functional(model: Any) -> bool:
    """Whether ``model`` is a functional (graph) model rather than a subclassed one.

    Example:
        >>> import tensorflow as tf
        >>> inputs = tf.keras.Input((2,))
        >>> is_functional(tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs)))
        True
    """
    # Keras 2.15 / tf-keras 2.21: Functional sets _is_graph_network; there is no public flag.
    return bool(getattr(model, "_is_graph_network", False))


def nodes_in_order(model: Any) -> list[Any]:
    """The call nodes of a functional or Sequential model, inputs first.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1, name="d")])
        >>> [node.layer.name for node in nodes_in_order(model)][-1]
        'd'
    """
    # Keras 2.15 / tf-keras 2.21: Functional._nodes_by_depth maps depth -> nodes, the
    # outputs at depth 0; Node.layer is public.
    depths = model._nodes_by_depth
    return [node for depth in sorted(depths, reverse=True) for node in depths[depth]]


def tensor_origin(tensor: Any) -> tuple[Any, int, int] | None:
    """``(layer, node_index, tensor_index)`` of the call that produced a symbolic Keras tensor, or None.

    Example:
        >>> import tensorflow as tf
        >>> inputs = tf.keras.Input((2,))
        >>> layer = tf.keras.layers.Dense(1)
        >>> tensor_origin(layer(inputs))[0] is layer, tensor_origin(tf.constant(1.0))
        (True, None)
    """
    # Keras 2.15 / tf-keras 2.21: KerasTensor._keras_history is a (layer, node_index, tensor_index)
    # namedtuple; eager tensors have none.
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return history.layer, history.node_index, history.tensor_index


def set_constraint(variable: Any, constraint: Any) -> None:
    """Give an existing variable a constraint, which Keras optimizers apply after each update.

    Example:
        >>> import tensorflow as tf
        >>> v = tf.Variable([1.0, -1.0])
        >>> set_constraint(v, tf.keras.constraints.NonNeg())
        >>> v.constraint is not None
        True
    """
    # TensorFlow 2.15 / 2.21: ResourceVariable keeps its constraint in _constraint and has no
    # setter; Keras 2.15's and tf-keras 2.21's optimizers read variable.constraint.
    variable._constraint = constraint


def weight_role(variable: Any) -> str:
    """What a layer weight is (``"kernel"``, ``"bias"``, ``"gamma"``, ``"moving_mean"``...), from its name.

    Example:
        >>> import tensorflow as tf
        >>> layer = tf.keras.layers.Dense(2); layer.build((None, 3))
        >>> [weight_role(w) for w in layer.weights]
        ['kernel', 'bias']
    """
    # Keras 2.15 / tf-keras 2.21 name a weight "<layer scopes>/<role>:0"; Keras 3 would name it
    # "<role>" and keep the path in variable.path.
    return variable.name.split("/")[-1].split(":")[0]


def inbound_layer_names(layer_config: Any) -> list[list[str]]:
    """For each call of a layer in a functional model's ``get_config()["layers"]``, the names of
    the layers it reads.

    Example:
        >>> import tensorflow as tf
        >>> inputs = tf.keras.Input((2,), name="x")
        >>> model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, name="d")(inputs))
        >>> [inbound_layer_names(entry) for entry in model.get_config()["layers"]]
        [[], [['x']]]
    """
    # Keras 2.15 / tf-keras 2.21: "inbound_nodes" is a list of calls, each a list of
    # [layer_name, node_index, tensor_index, kwargs]; Keras 3's format is different.
    return [[inbound[0] for inbound in node] for node in layer_config.get("inbound_nodes", [])]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python, NumPy, TensorFlow and Keras seeded with ``seed`` inside the block; the caller's states after.

    ``tf.keras.utils.set_random_seed`` is the only way to make some libraries (tf-agents)
    reproducible; this puts back what it changes.

    Example:
        >>> import random
        >>> state = random.getstate()
        >>> with seeded(3):
        ...     first = random.random()
        >>> with seeded(3):
        ...     again = random.random()
        >>> first == again, random.getstate() == state
        (True, True)
    """
    import importlib
    import random

    import tensorflow as tf
    from tensorflow.python.eager import (
        context,  # TF 2.15 / 2.21: no public getter of the global seed
    )

    # Keras 2.15 / tf-keras 2.21 keep the generator set_random_seed makes in
    # <package>.src.backend._SEED_GENERATOR (a thread-local).
    backend = importlib.import_module(tf.keras.Model.__module__.split(".src.")[0] + ".src.backend")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    tensorflow_seed = context.global_seed()
    keras_generator = getattr(backend._SEED_GENERATOR, "generator", None)
    tf.keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        tf.random.set_seed(tensorflow_seed)
        backend._SEED_GENERATOR.generator = keras_generator


# --- samples -----------------------------------------------------------------------------------


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
        raise ValueError(f"{path}: not a NumPy .npz file ({first_line(error)})") from error
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


def fit_arguments(data: Any, batch_size: int = 32) -> tuple[dict[str, Any], int | None]:
    """Keras ``fit`` arguments for labelled training ``data`` and its steps per epoch (None when unknown).

    ``data`` is ``(x, y)`` arrays (shuffled in batches of ``batch_size``) or a
    ``tf.data.Dataset`` of ``(x, y)`` batches, passed through as it is so that
    its own shuffling and augmentation stay.

    Example:
        >>> arguments, steps = fit_arguments((np.zeros((10, 3)), np.zeros(10)), batch_size=4)
        >>> sorted(arguments), steps
        (['batch_size', 'shuffle', 'x', 'y'], 3)
    """
    import math

    import tensorflow as tf

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError("data must be a tf.data of (x, y) batches; this one yields single elements")
        steps = int(data.cardinality())
        return {"x": data}, steps if steps >= 0 else None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"data must be (x, y) with as many labels as samples, got {len(x)} and {len(y)}")
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}, math.ceil(len(x) / batch_size)
    raise TypeError(f"data must be (x, y) arrays or a tf.data of (x, y) batches, got {type(data).__name__}")
