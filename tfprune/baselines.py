"""The baselines every tfprune comparison is published against.

- :func:`tfmot_magnitude`: tensorflow-model-optimization's ``prune_low_magnitude``
  with a polynomial schedule, fine-tuned and stripped. The static unstructured
  baseline: its zeros save nothing on TensorFlow Lite Micro.
- :func:`tfmot_cluster`: tfmot weight clustering (per output channel for
  Conv2D), fine-tuned and stripped. Each output channel keeps at most
  ``clusters`` distinct values, so ``tfprune.export`` stores it with TFLite
  Micro's LUT compression: the unstructured competitor that does shrink flash.
- :func:`l1_filter_pruning` (Li et al., ICLR 2017): remove the filters with the
  smallest L1 norm, through :mod:`tfprune.surgery`, so the model really shrinks;
  :func:`random_channel_pruning`, its control: the same counts, chosen at random.
- :func:`nonzero_count`, :func:`sparsity_for_nonzeros` and
  :func:`ratio_for_nonzeros` put different methods at the same number of
  nonzero weights.

All of them copy the model first; the model passed in is never changed.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(32),
    ...                              tf.keras.layers.Dense(2)])
    >>> data = (np.random.rand(64, 8).astype("float32"), np.random.randint(0, 2, 64))
    >>> pruned = tfmot_magnitude(model, data, target_sparsity=0.5, epochs=1)
    >>> nonzero_count(pruned) == nonzero_count(model) // 2
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from tfprune.export.tflite import check_keras_model
from tfprune.graph import ChannelGroup

#: Centroid initializations offered for :func:`tfmot_cluster`.
CLUSTER_INITS = ("kmeans++", "linear")

#: Bisection steps of :func:`ratio_for_nonzeros` (ratio resolution 2**-12).
_RATIO_STEPS = 12


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
    fit_args, steps_per_epoch = _fit_inputs(data, batch_size)
    total_steps = None if steps_per_epoch is None else steps_per_epoch * epochs
    end_step, frequency = _schedule_steps(begin_step, end_step, frequency, total_steps)

    import tensorflow as tf

    tfmot = _tfmot()
    tf.keras.utils.set_random_seed(seed)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=initial_sparsity, final_sparsity=target_sparsity,
        begin_step=begin_step, end_step=end_step, power=3, frequency=frequency,
    )

    def wrap(layer: Any) -> Any:
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    wrapped = _wrap_layers(_copy(model), _tfmot_prunable, wrap)
    _fine_tune(wrapped, model, fit_args, epochs, learning_rate, loss, verbose,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


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
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 5, name="conv"),
        ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, name="fc")])
        >>> data = (np.random.rand(32, 8, 8, 1).astype("float32"), np.random.randint(0, 3, 32))
        >>> values_per_channel(tfmot_cluster(model, data, clusters=4))
        {'conv': 4, 'fc': 4}
    """
    check_keras_model(model)
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 2:
        raise ValueError(f"clusters must be an int >= 2, got {clusters!r}")
    if init not in CLUSTER_INITS:
        raise ValueError(f"init must be one of {CLUSTER_INITS}, got {init!r}")
    _check_positive_int(epochs, "epochs")
    fit_args, _ = _fit_inputs(data, batch_size)

    import tensorflow as tf

    tfmot = _tfmot()
    # tfmot's public cluster_weights decides whether a Conv2D has enough weights per
    # channel by reading its last trainable weight as the bias; for a bias-free Conv2D
    # (the usual one before BatchNorm) that is the kernel, so it skips the layer with a
    # warning. The wrapper it would have built is used directly instead.
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import ClusterWeights

    tf.keras.utils.set_random_seed(seed)
    centroid_init = tfmot.clustering.keras.CentroidInitialization
    start = centroid_init.KMEANS_PLUS_PLUS if init == "kmeans++" else centroid_init.LINEAR

    def wrap(layer: Any) -> Any:
        channelwise = per_channel and _is_conv2d(layer)
        return ClusterWeights(layer, clusters, start, preserve_sparsity=False, cluster_per_channel=channelwise)

    def needs_clustering(layer: Any) -> bool:
        if not (_is_conv2d(layer) or type(layer) is tf.keras.layers.Dense):
            return False
        size = int(np.prod(layer.kernel.shape))
        per_table = size // layer.kernel.shape[-1] if per_channel and _is_conv2d(layer) else size
        return per_table > clusters

    wrapped = _wrap_layers(_copy(model), needs_clustering, wrap)
    _fine_tune(wrapped, model, fit_args, epochs, learning_rate, loss, verbose, callbacks=[])
    return tfmot.clustering.keras.strip_clustering(wrapped)


def l1_filter_pruning(model: Any, ratio: float | Mapping[str, float], *, round_to: int | None = None) -> Any:
    """L1-norm filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).

    In every prunable channel group (:func:`tfprune.graph.channel_groups`: a
    layer's filters, or the channels an ``Add`` ties across several layers),
    the ``round(ratio * size)`` channels with the smallest L1 norm of their
    kernel slices, summed over the group's producers, are removed by
    :func:`tfprune.surgery.remove_channels`: a smaller model, not zeros. At
    least one channel of every group stays; ties break toward the lower index.
    No fine-tuning happens here (the paper retrains afterwards).

    Args:
        model: a plain tf.keras Sequential or functional model (not changed).
        ratio: share of channels to remove from every group, in [0, 1), or
            ``{layer name: ratio}`` for the groups of the named producers (a
            group tied across named layers needs one ratio; the rest keep all).
        round_to: 4 or 8 gives channels back until every layer keeps a
            multiple of it, as in :func:`tfprune.surgery.remove_channels`.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="hidden"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> model.get_layer("hidden").set_weights([np.diag([3.0, 1.0, 4.0, 0.5]), np.zeros(4)])
        >>> small = l1_filter_pruning(model, 0.5)
        >>> small.get_layer("hidden").kernel.numpy()[[0, 2]].tolist()
        [[3.0, 0.0], [0.0, 4.0]]
    """
    from tfprune.scores import channel_scores, magnitude

    def lowest_l1(group: ChannelGroup, count: int, norms: dict[str, np.ndarray]) -> np.ndarray:
        total = sum(norms[p.layer][p.offset : p.offset + group.size] for p in group.producers)
        return np.argsort(total, kind="stable")[:count]

    check_keras_model(model)
    norms = channel_scores(magnitude(model), model, reduce="sum")
    return _prune_groups(model, ratio, lambda group, count: lowest_l1(group, count, norms), round_to)


def random_channel_pruning(
    model: Any, ratio: float | Mapping[str, float], seed: int = 0, *, round_to: int | None = None
) -> Any:
    """The control for :func:`l1_filter_pruning`: the same number of channels per group, chosen at random.

    Arguments as in :func:`l1_filter_pruning`; ``seed`` fixes the choice.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, name="hidden"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> random_channel_pruning(model, 0.25, seed=1).get_layer("hidden").units
        6
    """
    check_keras_model(model)
    rng = np.random.default_rng(seed)
    return _prune_groups(model, ratio, lambda group, count: rng.choice(group.size, count, replace=False), round_to)


def ratio_for_nonzeros(model: Any, target_nonzeros: int, *, round_to: int | None = None) -> float:
    """The uniform ``ratio`` whose :func:`l1_filter_pruning` leaves the nonzero count closest to ``target_nonzeros``.

    Channel pruning removes whole filters and the kernel rows that read them,
    so the count moves in steps; this searches the ratio (bisection, then the
    better side of the step) and returns it. :func:`random_channel_pruning`
    removes the same number of channels, so for a model without zero weights
    it lands on the same count. Use it to put channel pruning at the nonzero
    count of a :func:`tfmot_magnitude` row.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(10, name="hidden"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> ratio = ratio_for_nonzeros(model, 30)
        >>> nonzero_count(l1_filter_pruning(model, ratio))
        30
    """
    if isinstance(target_nonzeros, bool) or not isinstance(target_nonzeros, (int, np.integer)):
        raise TypeError(f"target_nonzeros must be an int, got {type(target_nonzeros).__name__}")
    if target_nonzeros < 1:
        raise ValueError(f"target_nonzeros must be >= 1, got {target_nonzeros}")

    def count(ratio: float) -> int:
        return nonzero_count(l1_filter_pruning(model, ratio, round_to=round_to)) if ratio else nonzero_count(model)

    low, high = 0.0, 1.0 - 1e-9          # count(low) >= target > count(high), unless the target is out of reach
    if count(low) <= target_nonzeros:
        return 0.0
    if count(high) >= target_nonzeros:
        return high
    for _ in range(_RATIO_STEPS):
        middle = (low + high) / 2
        if count(middle) >= target_nonzeros:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda r: abs(count(r) - target_nonzeros))


def prunable_kernels(model: Any) -> dict[str, np.ndarray]:
    """The kernel of every Conv2D, DepthwiseConv2D and Dense layer (larq's too), by layer name.

    The layers of :func:`tfprune.scores.prunable_layers`; these kernels are what
    :func:`nonzero_count` counts (biases and BatchNorm parameters are not).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="fc")])
        >>> {name: kernel.shape for name, kernel in prunable_kernels(model).items()}
        {'fc': (4, 3)}
    """
    from tfprune.scores import prunable_layers

    return {name: (layer.depthwise_kernel if _is_depthwise(layer) else layer.kernel).numpy()
            for name, layer in prunable_layers(model).items()}


def nonzero_count(model: Any) -> int:
    """Number of nonzero weights in the prunable kernels (see :func:`prunable_kernels`).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, kernel_initializer="ones")])
        >>> nonzero_count(model)
        12
    """
    return int(sum(np.count_nonzero(kernel) for kernel in prunable_kernels(model).values()))


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Share of exact zeros in each prunable kernel, by layer name, rounded to 4 digits.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2, kernel_initializer="zeros", name="fc")])
        >>> kernel_sparsity(model)
        {'fc': 1.0}
    """
    return {name: round(float(np.mean(kernel == 0)), 4) for name, kernel in prunable_kernels(model).items()}


def values_per_channel(model: Any) -> dict[str, int]:
    """Most distinct values in one output channel (last kernel axis) of each prunable kernel.

    For DepthwiseConv2D the channel axis is the third (the kernel is
    ``(h, w, channels, multiplier)``); the multiplier axis is folded in.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2, kernel_initializer="ones", name="fc")])
        >>> values_per_channel(model)
        {'fc': 1}
    """
    from tfprune.scores import prunable_layers

    layers = prunable_layers(model)
    counts: dict[str, int] = {}
    for name, kernel in prunable_kernels(model).items():
        if _is_depthwise(layers[name]):
            kernel = kernel.reshape(*kernel.shape[:-2], -1)
        rows = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)
        counts[name] = int(max(len(np.unique(row)) for row in rows))
    return counts


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
    pruned = {layer.name for layer in model.layers if _tfmot_prunable(layer)}
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


def _is_depthwise(layer: Any) -> bool:
    import tensorflow as tf

    return isinstance(layer, tf.keras.layers.DepthwiseConv2D)


def _tfmot_prunable(layer: Any) -> bool:
    import tensorflow as tf

    return type(layer) in (tf.keras.layers.Conv2D, tf.keras.layers.Dense)


def _copy(model: Any) -> Any:
    import tensorflow as tf

    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


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


def _prune_groups(
    model: Any, ratio: Any, choose: Callable[[ChannelGroup, int], np.ndarray], round_to: int | None
) -> Any:
    """Remove ``choose(group, count)`` channels of every prunable group scored by magnitude."""
    from tfprune.graph import channel_groups
    from tfprune.scores import prunable_layers
    from tfprune.surgery import remove_channels

    scored = set(prunable_layers(model))
    removals: dict[str, list[int]] = {}
    for group, share in _group_ratios(model, channel_groups(model), ratio):
        count = min(int(round(share * group.size)), group.size - 1)
        # groups made by layers the scores do not cover (Conv1D/3D, transposed
        # convolutions) cannot be ranked; both baselines keep them whole
        if count == 0 or not all(p.layer in scored for p in group.producers):
            continue
        first = group.producers[0]
        removals.setdefault(first.layer, []).extend(first.offset + int(k) for k in sorted(choose(group, count)))
    return remove_channels(model, removals, round_to=round_to)


def _group_ratios(model: Any, groups: list[ChannelGroup], ratio: Any) -> list[tuple[ChannelGroup, float]]:
    """Each group with the share of its channels to remove."""
    if isinstance(ratio, Mapping):
        names = {layer.name for layer in model.layers}
        for name, share in ratio.items():
            if name not in names:
                raise ValueError(f"ratio names layer {name!r}, which model {model.name!r} does not have")
            _check_ratio(share, f"ratio of layer {name!r}")
        paired = []
        for group in groups:
            shares = {p.layer: ratio[p.layer] for p in group.producers if p.layer in ratio}
            if len(set(shares.values())) > 1:
                raise ValueError(f"layers {sorted(shares)} share tied channels, so they need one ratio; got {shares}")
            paired.append((group, next(iter(shares.values()), 0.0)))
        return paired
    _check_ratio(ratio, "ratio")
    return [(group, float(ratio)) for group in groups]


def _check_ratio(ratio: Any, what: str) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)) or not 0.0 <= ratio < 1.0:
        raise ValueError(f"{what} must be a number in [0, 1), got {ratio!r}")


def _fit_inputs(data: Any, batch_size: int) -> tuple[dict[str, Any], int | None]:
    """Keras ``fit`` arguments for ``data`` and its steps per epoch (None when unknown)."""
    import tensorflow as tf

    _check_positive_int(batch_size, "batch_size")
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

    from tfprune.scores import ends_in_softmax

    if getattr(model, "loss", None):
        return model.loss
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model))


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
