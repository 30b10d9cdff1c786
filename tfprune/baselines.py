"""The baselines every tfprune comparison is published against.

- :func:`tfmot_magnitude`: tensorflow-model-optimization's ``prune_low_magnitude``
  with a polynomial schedule, fine-tuned and stripped. The static unstructured
  baseline: its zeros save flash on TensorFlow Lite Micro only when the export
  stores them with DECODE PRUNE (``compress="auto"``, the default).
- :func:`tfmot_cluster`: tfmot weight clustering (per output channel for
  Conv2D), fine-tuned and stripped. Each output channel keeps at most
  ``clusters`` distinct values, so ``tfprune.export`` stores it with TFLite
  Micro's LUT compression: the unstructured competitor that does shrink flash.
- :func:`sparsity_for_nonzeros`: the tfmot sparsity that leaves a given number
  of nonzero weights, to put tfmot at the nonzero count of another method.

Channel pruning (L1, Taylor, random) is :mod:`tfprune.prune.channels`; the
counters are :mod:`tfprune.core.count`. Their old names here
(``baselines.l1_filter_pruning``, ``baselines.nonzero_count``, ...) still work
for one release, with a ``DeprecationWarning``.

Both copy the model first; the model passed in is never changed.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(32),
    ...                              tf.keras.layers.Dense(2)])
    >>> data = (np.random.rand(64, 8).astype("float32"), np.random.randint(0, 2, 64))
    >>> pruned = tfmot_magnitude(model, data, target_sparsity=0.5, epochs=1)
    >>> from tfprune.core.count import nonzero_count
    >>> nonzero_count(pruned) == nonzero_count(model) // 2
    True
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from tfprune.core.count import prunable_kernels
from tfprune.keras_model import check_keras_model, copy_model, first_line, fit_arguments

#: What :func:`qat_wrap` keeps of earlier compression: nothing, clustered values, or zeros.
QAT_PRESERVE = (None, "clusters", "sparsity")
#: Centroid initializations offered for :func:`tfmot_cluster`.
CLUSTER_INITS = ("kmeans++", "linear")


def tfmot_magnitude(
    model: Any,
    data: Any,
    target_sparsity: float,
    epochs: int = 1,
    *,
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int | None = None,
    initial_sparsity: float = 0.0,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    loss: Any = None,
    seed: int = 0,
    verbose: int = 0,
) -> Any:
    """tfmot magnitude pruning to ``target_sparsity``: wrap, fine-tune, strip.

    Every Conv2D and Dense kernel is wrapped with tfmot 0.8.1's
    ``prune_low_magnitude`` under a ``PolynomialDecay`` schedule (power 3) from
    ``initial_sparsity`` at ``begin_step`` to ``target_sparsity`` at
    ``end_step``, trained with ``UpdatePruningStep`` and Adam, then
    ``strip_pruning``. Other layers are copied unpruned: tfmot's registry gives
    DepthwiseConv2D no prunable weight, and it cannot wrap Rescaling or larq
    layers (see :func:`sparsity_for_nonzeros` for matching nonzero counts).

    Args:
        model: a tf.keras Sequential or functional model (not changed).
        data: ``(x, y)`` arrays or a ``tf.data`` of ``(x, y)`` batches.
        target_sparsity: share of zeros in each pruned kernel, in [0, 1).
        epochs: fine-tuning epochs.
        begin_step, end_step: the schedule's training steps (batches, counted
            from 1); ``end_step`` defaults to the last step of training.
        frequency: steps between mask updates; default about a tenth of the
            schedule. ``end_step - begin_step`` must be a multiple of it so the
            last update lands on ``target_sparsity``.
        initial_sparsity: sparsity at ``begin_step``.
        batch_size: batch size for array data.
        learning_rate: Adam's learning rate.
        loss: default the model's compiled loss, else sparse categorical
            cross-entropy (from logits unless the model ends in softmax).
        seed: seeds Python, NumPy and TensorFlow (``tf.keras.utils.set_random_seed``).
        verbose: Keras ``fit`` verbosity.

    Returns:
        A plain Keras model, the same architecture, whose pruned kernels have
        ``target_sparsity`` zeros.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> from tfprune.core.count import kernel_sparsity, values_per_channel
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(10, name="fc")])
        >>> data = (np.random.rand(40, 8).astype("float32"), np.random.randint(0, 10, 40))
        >>> kernel_sparsity(tfmot_magnitude(model, data, 0.8, epochs=2, batch_size=8))
        {'fc': 0.8}
    """
    check_keras_model(model)
    if not 0.0 <= initial_sparsity <= target_sparsity < 1.0:
        raise ValueError(
            f"need 0 <= initial_sparsity <= target_sparsity < 1, got {initial_sparsity} and {target_sparsity}"
        )
    _check_positive_int(epochs, "epochs")
    fit_args, steps_per_epoch = fit_arguments(data, batch_size)
    total_steps = None if steps_per_epoch is None else steps_per_epoch * epochs
    end_step, frequency = _schedule_steps(begin_step, end_step, frequency, total_steps)

    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    wrapped = magnitude_wrap(model, target_sparsity, end_step, begin_step=begin_step, frequency=frequency,
                             initial_sparsity=initial_sparsity)
    _fine_tune(wrapped, model, fit_args, epochs, learning_rate, loss, verbose,
               callbacks=magnitude_callbacks())
    return magnitude_strip(wrapped)


def magnitude_wrap(model: Any, target_sparsity: float, end_step: int, *, begin_step: int = 0,
                   frequency: int | None = None, initial_sparsity: float = 0.0) -> Any:
    """A copy of ``model`` whose Conv2D and Dense kernels are wrapped in tfmot's ``prune_low_magnitude``.

    The first half of :func:`tfmot_magnitude` (same schedule: ``PolynomialDecay``,
    power 3, ``initial_sparsity`` at ``begin_step`` to ``target_sparsity`` at
    ``end_step``), for training loops of one's own: fit the result with tfmot's
    ``UpdatePruningStep`` callback, then :func:`magnitude_strip` it.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> type(magnitude_wrap(model, 0.5, end_step=10).layers[0]).__name__
        'PruneLowMagnitude'
    """
    check_keras_model(model)
    if not 0.0 <= initial_sparsity <= target_sparsity < 1.0:
        raise ValueError(
            f"need 0 <= initial_sparsity <= target_sparsity < 1, got {initial_sparsity} and {target_sparsity}"
        )
    end_step, frequency = _schedule_steps(begin_step, end_step, frequency, None)
    tfmot = _tfmot()
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=initial_sparsity, final_sparsity=target_sparsity,
        begin_step=begin_step, end_step=end_step, power=3, frequency=frequency,
    )

    def wrap(layer: Any) -> Any:
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    return _wrap_layers(copy_model(model), magnitude_prunable, wrap)


def magnitude_callbacks() -> list[Any]:
    """The Keras callbacks a fit of a :func:`magnitude_wrap` model needs (tfmot's ``UpdatePruningStep``).

    Example:
        >>> [type(callback).__name__ for callback in magnitude_callbacks()]
        ['UpdatePruningStep']
    """
    return [_tfmot().sparsity.keras.UpdatePruningStep()]


def magnitude_strip(model: Any) -> Any:
    """A plain Keras model from one :func:`magnitude_wrap` made: each kernel keeps its zeros.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> type(magnitude_strip(magnitude_wrap(model, 0.5, end_step=10)).layers[0]).__name__
        'Dense'
    """
    return _tfmot().sparsity.keras.strip_pruning(model)


def tfmot_cluster(
    model: Any,
    data: Any,
    clusters: int = 16,
    per_channel: bool = True,
    epochs: int = 1,
    *,
    init: str = "kmeans++",
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    loss: Any = None,
    seed: int = 0,
    verbose: int = 0,
) -> Any:
    """tfmot weight clustering: at most ``clusters`` values per Conv2D output channel and per Dense kernel.

    Conv2D kernels are clustered per output channel (``per_channel=True``, tfmot's
    ``cluster_per_channel``) or per tensor, Dense kernels per tensor (tfmot
    clusters Dense only that way, and TF 2.15 quantizes Dense per tensor), then
    fine-tuned with Adam and ``strip_clustering``. A kernel that already has no
    more weights per table than ``clusters`` is left alone; it already meets
    the bound. DepthwiseConv2D is not clustered: tfmot leaves it out on purpose
    (tensorflow/model-optimization#437, the accuracy loss did not recover).

    int8 export keeps the bound: per-channel quantization (after BatchNorm
    folding scales each channel by one constant) maps each channel's values
    one to one, so ``tfprune.export(..., target="cortex-m")`` stores these
    kernels with 4-bit LUT indices (DECODE operators) when that is smaller.

    Args:
        model: a tf.keras Sequential or functional model (not changed).
        data: ``(x, y)`` arrays or a ``tf.data`` of ``(x, y)`` batches.
        clusters: centroids per table (16 fits TFLite Micro's 4-bit LUT).
        per_channel: cluster Conv2D kernels per output channel.
        epochs: fine-tuning epochs.
        init: centroid initialization, ``"kmeans++"`` or ``"linear"``.
        batch_size: batch size for array data.
        learning_rate: Adam's learning rate (tfmot's guide fine-tunes clustered
            models with a small one).
        loss: default the model's compiled loss, else sparse categorical
            cross-entropy (from logits unless the model ends in softmax).
        seed: seeds Python, NumPy and TensorFlow (``tf.keras.utils.set_random_seed``).
        verbose: Keras ``fit`` verbosity.

    Returns:
        A plain Keras model, the same architecture, with clustered kernels.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> from tfprune.core.count import kernel_sparsity, values_per_channel
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 5, name="conv"),
        ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, name="fc")])
        >>> data = (np.random.rand(32, 8, 8, 1).astype("float32"), np.random.randint(0, 3, 32))
        >>> values_per_channel(tfmot_cluster(model, data, clusters=4))
        {'conv': 4, 'fc': 4}
    """
    check_keras_model(model)
    _check_positive_int(epochs, "epochs")
    fit_args, _ = fit_arguments(data, batch_size)
    import tensorflow as tf


    tf.keras.utils.set_random_seed(seed)
    wrapped = cluster_wrap(model, clusters, per_channel=per_channel, init=init)
    _fine_tune(wrapped, model, fit_args, epochs, learning_rate, loss, verbose, callbacks=[])
    return cluster_strip(wrapped)


def cluster_wrap(model: Any, clusters: int = 16, *, per_channel: bool = True, init: str = "kmeans++") -> Any:
    """A copy of ``model`` whose Conv2D and Dense kernels are tfmot-clustered, ready to fine-tune.

    The first half of :func:`tfmot_cluster`, for training loops of one's own (a
    :class:`tfprune.prune.distill.Distiller` say): train the result, then
    :func:`cluster_strip` it. Kernels with no more weights per table than
    ``clusters`` are left as they are.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> type(cluster_wrap(model, 2).layers[0]).__name__
        'ClusterWeights'
    """

    check_keras_model(model)
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 2:
        raise ValueError(f"clusters must be an int >= 2, got {clusters!r}")
    if init not in CLUSTER_INITS:
        raise ValueError(f"init must be one of {CLUSTER_INITS}, got {init!r}")
    tfmot = _tfmot()
    # tfmot's public cluster_weights decides whether a Conv2D has enough weights per
    # channel by reading its last trainable weight as the bias; for a bias-free Conv2D
    # (the usual one before BatchNorm) that is the kernel, so it skips the layer with a
    # warning. The wrapper it would have built is used directly instead.
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import ClusterWeights

    centroid_init = tfmot.clustering.keras.CentroidInitialization
    start = centroid_init.KMEANS_PLUS_PLUS if init == "kmeans++" else centroid_init.LINEAR

    def wrap(layer: Any) -> Any:
        channelwise = per_channel and _is_conv2d(layer)
        return ClusterWeights(layer, clusters, start, preserve_sparsity=False, cluster_per_channel=channelwise)

    return _wrap_layers(copy_model(model), lambda layer: clusterable(layer, clusters, per_channel), wrap)


def clusterable(layer: Any, clusters: int = 16, per_channel: bool = True) -> bool:
    """Whether :func:`cluster_wrap` clusters ``layer``: a Conv2D or Dense with more weights per table than ``clusters``.

    A table is one output channel of a Conv2D (``per_channel``) or the whole
    kernel of a Dense (tfmot clusters Dense kernels per tensor).

    Example:
        >>> import tensorflow as tf
        >>> layer = tf.keras.layers.Dense(2); layer.build((None, 20))
        >>> clusterable(layer, 16), clusterable(layer, 64)
        (True, False)
    """
    import tensorflow as tf

    if not (_is_conv2d(layer) or type(layer) is tf.keras.layers.Dense):
        return False
    size = int(np.prod(layer.kernel.shape))
    per_table = size // layer.kernel.shape[-1] if per_channel and _is_conv2d(layer) else size
    return per_table > clusters


def cluster_strip(model: Any) -> Any:
    """A plain Keras model from one :func:`cluster_wrap` made: each kernel holds its centroids.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> type(cluster_strip(cluster_wrap(model, 2)).layers[0]).__name__
        'Dense'
    """
    return _tfmot().clustering.keras.strip_clustering(model)


def sparsity_for_nonzeros(model: Any, target_nonzeros: int) -> float:
    """The ``target_sparsity`` at which :func:`tfmot_magnitude` leaves about ``target_nonzeros`` nonzeros.

    tfmot prunes every Conv2D and Dense kernel to the same sparsity and leaves
    the other prunable kernels (DepthwiseConv2D, larq layers) as they are, so
    those keep their nonzeros and the rest is shared out.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.Dense(10)])
        >>> sparsity_for_nonzeros(model, 25)
        0.75
    """
    if isinstance(target_nonzeros, bool) or not isinstance(target_nonzeros, (int, np.integer)):
        raise TypeError(f"target_nonzeros must be an int, got {type(target_nonzeros).__name__}")
    kernels = prunable_kernels(model)
    pruned = {layer.name for layer in model.layers if magnitude_prunable(layer)}
    size = sum(kernels[name].size for name in pruned)
    kept = sum(int(np.count_nonzero(kernel)) for name, kernel in kernels.items() if name not in pruned)
    if not kept < target_nonzeros <= kept + size:
        raise ValueError(
            f"target_nonzeros must be in {kept + 1}..{kept + size} (nonzeros tfmot leaves alone, plus the "
            f"Conv2D and Dense weights), got {target_nonzeros}"
        )
    return 1.0 - (int(target_nonzeros) - kept) / size


def _tfmot() -> Any:
    """Import tfmot without pulling tf_keras into this process.

    tfmot 0.8.1 sets TF_USE_LEGACY_KERAS=1 when imported, and TF 2.15 reads it
    the first time each of its lazy Keras modules (``tf.keras``,
    ``tf.compat.v1.keras``, ``tf.initializers``, ...) is touched. tf_keras is
    installed here (tf-agents needs it), so a module tfmot touches first would
    load tf_keras, and from then on Keras 2.15 deserializes initializers as
    tf_keras objects (a clone's Conv2D gets a tf_keras GlorotUniform). Resolving
    them all first keeps one Keras; tfmot then binds to it. The variable is
    restored afterwards.
    """
    import tensorflow as tf

    for lazy_keras in (tf.keras, tf.compat.v1.keras, tf.compat.v2.keras, tf.initializers, tf.losses,
                       tf.metrics, tf.optimizers):
        dir(lazy_keras)  # dir() makes the lazy loader resolve now
    saved = os.environ.get("TF_USE_LEGACY_KERAS")
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper  # noqa: F401

    if saved is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = saved
    return tfmot


def _is_conv2d(layer: Any) -> bool:
    import tensorflow as tf

    # exact class: tfmot's registries look layers up by class, so subclasses
    # (larq's QuantConv2D, Conv2DTranspose) are not theirs to wrap
    return type(layer) is tf.keras.layers.Conv2D


def qat_wrap(model: Any, preserve: str | None = None) -> Any:
    """A copy of ``model`` ready for tfmot's quantization-aware training (int8 fake quantization while it fits).

    ``preserve="clusters"`` uses tfmot's cluster-preserving scheme (CQAT), so each
    kernel keeps the values clustering left it (per output channel for a Conv2D
    whose channels hold about as many) and the LUT encoding still applies;
    ``"sparsity"`` the prune-preserving one (PQAT), so zeros stay zeros. Export
    the trained model with ``tfprune.export`` as any other: the converter takes
    the ranges it learned. Load a saved one inside :func:`qat_scope`.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> [type(layer).__name__ for layer in qat_wrap(model).layers]
        ['QuantizeLayer', 'QuantizeWrapperV2']
    """
    check_keras_model(model)
    if preserve not in QAT_PRESERVE:
        raise ValueError(f"preserve must be one of {QAT_PRESERVE}, got {preserve!r}")
    tfmot = _tfmot()
    quantization = tfmot.quantization.keras
    scheme = {None: quantization.default_8bit.Default8BitQuantizeScheme,
              "clusters": tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme,
              "sparsity": tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme}[preserve]()
    try:
        return quantization.quantize_apply(quantization.quantize_annotate_model(copy_model(model)), scheme)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"tfmot's quantization-aware training cannot wrap model {model.name!r}: "
                         f"{first_line(error)}") from None


def qat_scope() -> Any:
    """The scope in which a saved :func:`qat_wrap` model loads (``with qat_scope(): tf.keras.models.load_model(...)``).

    Example:
        >>> with qat_scope():
        ...     pass
    """
    return _tfmot().quantization.keras.quantize_scope()


def zero_smallest_weights(model: Any, sparsity: float) -> Any:
    """Set the ``sparsity`` smallest-magnitude weights of each kernel :func:`magnitude_wrap` prunes to 0, in place.

    What tfmot's mask leaves at the end of its schedule, without training: the
    weights a magnitude-pruned model would store. Returns ``model``.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.core.count import kernel_sparsity
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
        >>> kernel_sparsity(zero_smallest_weights(model, 0.75))
        {'fc': 0.75}
    """
    for layer in model.layers:
        if not magnitude_prunable(layer):
            continue
        kernel = layer.kernel.numpy()
        drop = int(round(sparsity * kernel.size))
        if drop:
            flat = kernel.reshape(-1)
            flat[np.argsort(np.abs(flat), kind="stable")[:drop]] = 0.0
            layer.kernel.assign(flat.reshape(kernel.shape))
    return model


def magnitude_prunable(layer: Any) -> bool:
    """Whether :func:`magnitude_wrap` prunes ``layer``: a Conv2D or a Dense (exact classes, as tfmot's registry).

    Example:
        >>> import tensorflow as tf
        >>> magnitude_prunable(tf.keras.layers.Dense(2)), magnitude_prunable(tf.keras.layers.DepthwiseConv2D(3))
        (True, False)
    """
    import tensorflow as tf

    return type(layer) in (tf.keras.layers.Conv2D, tf.keras.layers.Dense)


def _wrap_layers(model: Any, selected: Callable[[Any], bool], wrap: Callable[[Any], Any]) -> Any:
    """Clone ``model`` with ``wrap(layer)`` for the selected layers; the others are reused as they are."""
    import tensorflow as tf

    nested = [layer.name for layer in model.layers if isinstance(layer, tf.keras.Model)]
    if nested:
        raise ValueError(f"model {model.name!r} nests models {nested}; build it as one flat functional model")
    if not any(selected(layer) for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no layer this baseline can prune or cluster")
    # reusing the copy's own layer objects keeps their trained weights (BatchNorm
    # statistics included); Keras' default clone would re-initialize them
    return tf.keras.models.clone_model(model, clone_function=lambda layer: wrap(layer) if selected(layer) else layer)


def _schedule_steps(
    begin_step: int, end_step: int | None, frequency: int | None, total_steps: int | None
) -> tuple[int, int]:
    """(end_step, frequency) for the pruning schedule, checked against the training length."""
    if isinstance(begin_step, bool) or not isinstance(begin_step, int) or begin_step < 0:
        raise ValueError(f"begin_step must be an int >= 0, got {begin_step!r}")
    if end_step is None:
        if total_steps is None:
            raise ValueError("data has unknown length: pass end_step (the training step where pruning ends)")
        end_step = total_steps
    if isinstance(end_step, bool) or not isinstance(end_step, int) or end_step <= begin_step:
        raise ValueError(f"end_step must be an int > begin_step ({begin_step}), got {end_step!r}")
    if total_steps is not None and end_step > total_steps:
        raise ValueError(f"end_step {end_step} is past the last training step {total_steps}: lower it or train longer")
    span = end_step - begin_step
    if frequency is None:
        frequency = max(d for d in range(1, max(1, span // 10) + 1) if span % d == 0)
    _check_positive_int(frequency, "frequency")
    if span % frequency:
        raise ValueError(
            f"end_step - begin_step ({span}) must be a multiple of frequency ({frequency}) to reach the target sparsity"
        )
    return end_step, frequency


def _fine_tune(
    wrapped: Any, original: Any, fit_args: dict[str, Any], epochs: int, learning_rate: float,
    loss: Any, verbose: int, callbacks: list[Any],
) -> None:
    import tensorflow as tf

    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    wrapped.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss=loss or _default_loss(original))
    wrapped.fit(**fit_args, epochs=epochs, verbose=verbose, callbacks=callbacks)


def _default_loss(model: Any) -> Any:
    import tensorflow as tf

    from tfprune.core.scores import ends_in_softmax

    if getattr(model, "loss", None):
        return model.loss
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model))


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


# old name -> the module it moved to (one release of DeprecationWarning, then gone)
_MOVED: dict[str, str] = {
    "l1_filter_pruning": "tfprune.prune.channels",
    "random_channel_pruning": "tfprune.prune.channels",
    "ratio_for_nonzeros": "tfprune.prune.channels",
    "prunable_kernels": "tfprune.core.count",
    "nonzero_count": "tfprune.core.count",
    "kernel_sparsity": "tfprune.core.count",
    "values_per_channel": "tfprune.core.count",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"tfprune.baselines.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'tfprune.baselines' has no attribute {name!r}")
