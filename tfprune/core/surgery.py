"""Surgery: cut whole channels out of a Keras model, so it is smaller on the device.

:func:`remove_channels` rebuilds a Sequential or functional tf.keras model with
fewer filters and units (same layer names, same architecture) and slices every
weight tied to a removed channel, following :mod:`tfprune.core.graph`: the kernels
and biases of the producers, every producer tied to them (``Add``, ``Multiply``
...), BatchNorm's gamma, beta and moving statistics, depthwise kernels and
biases, PReLU slopes, the input rows of every consumer's kernel (for a
``Dense`` behind a ``Flatten``, the row of every spatial position) and the
offsets of a ``Concatenate``.

**What the smaller model computes.** Exactly (up to float rounding) what the
original computes when every layer reading a removed channel ignores it. For
float models that is the masked model: the original in which the removed
channels are zeroed at their producers (kernel slice and bias) and after their
BatchNorm (gamma and beta), since the layers in between map 0 to 0. For a larq
layer whose ``input_quantizer`` maps 0 to +1 (``ste_sign``), zeroing the
producer is not enough: the consumer's quantized kernel slice must be zero too,
which is what a channel mask on the consumer's kernel does.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 3)),
    ...     tf.keras.layers.Conv2D(8, 3, name="conv"), tf.keras.layers.Flatten(),
    ...     tf.keras.layers.Dense(2, name="logits")])
    >>> small = remove_channels(model, {"conv": [0, 5]})
    >>> small.get_layer("conv").filters, small.get_layer("logits").kernel.shape
    (6, TensorShape([216, 2]))
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.core.graph import Analysis, analyze
from tfprune.keras_model import check_keras_model

ROUND_TO = (4, 8)


def remove_channels(model: Any, channels: Mapping[str, Iterable[int]], round_to: int | None = None) -> Any:
    """A new, smaller model without the given output channels (and everything tied to them).

    ``channels`` maps a layer name to the indices of its output channels to
    remove. Name any one member of a tie: removing channel 3 of one input of an
    ``Add`` removes channel 3 of every layer tied to it (the other producers,
    their BatchNorms, a DepthwiseConv2D reading it). A layer whose outputs
    spread one channel over several entries (``Flatten``, a DepthwiseConv2D
    with ``depth_multiplier`` > 1) cannot be named: name the layer making the
    channels. Naming one tied channel through several members is fine.

    ``round_to`` (4 or 8) keeps back removed channels until every convolution
    and dense layer keeps a multiple of it (or all of its channels), for the
    fast kernel paths: the lowest-index removed channels of a layer come back
    first.

    Raises ``ValueError`` (one line, naming the layer) for an unknown layer, an
    index out of range or given twice, a channel of the model's input or output
    (the classes), or a removal that leaves a layer without channels;
    ``TypeError`` for a model holding wrapped layers (strip them first, or use
    :func:`remove_masked_channels`).

    Example:
        >>> import tensorflow as tf
        >>> inputs = tf.keras.Input((4, 4, 2))
        >>> a = tf.keras.layers.Conv2D(8, 1, name="a")(inputs)
        >>> b = tf.keras.layers.Conv2D(8, 1, name="b")(inputs)
        >>> x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Add()([a, b]))
        >>> model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="logits")(x))
        >>> small = remove_channels(model, {"a": [3]})
        >>> small.get_layer("a").filters, small.get_layer("b").filters
        (7, 7)
        >>> remove_channels(model, {"a": [3]}, round_to=4).get_layer("b").filters
        8
    """
    check_keras_model(model)
    check_plain(model)
    round_to = _check_round_to(round_to)
    analysis = analyze(model)
    removed = _named_roots(analysis, channels)
    if round_to:
        removed = _round_counts(analysis, removed, round_to)
    keep = _keep_masks(analysis, removed)
    _check_nothing_emptied(analysis, keep)
    return _rebuild(model, analysis, keep)


def remove_masked_channels(model: Any, round_to: int | None = None) -> Any:
    """Strip the masks of ``model`` and remove every channel its channel masks prune.

    Reads the masks with ``tfprune.core.masks.channel_masks(model)`` (layer name ->
    boolean keep array over output channels) and strips them with
    ``tfprune.core.masks.strip`` first, so the weight-level zeros of the masks stay in
    the smaller, plain model. A tied channel is removed only when every
    producer of the tie masks it (a channel of an ``Add`` that one input still
    feeds is not zero, so it stays, as zeros where masked); masks on the
    model's outputs and on depthwise layers stay as zeros too. The result
    computes what the masked model computes, except where a larq layer's
    ``input_quantizer`` turns a pruned channel's 0 into +1: it then warns, naming
    the layer, unless that layer's kernel rows for the channel are masked too.
    ``round_to`` is as in :func:`remove_channels`.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.core import masks
        >>> model = masks.wrap(tf.keras.Sequential([tf.keras.Input((4,)),
        ...     tf.keras.layers.Dense(6, name="hidden"), tf.keras.layers.Dense(2, name="out")]))
        >>> model.get_layer("hidden").set_channel_mask([1, 0, 1, 1, 0, 1])
        >>> small = remove_masked_channels(model)
        >>> small.get_layer("hidden").units, type(small.get_layer("hidden")).__name__
        (4, 'Dense')
    """
    from tfprune.core import masks

    check_keras_model(model)
    keep_masks = masks.channel_masks(model)
    plain = masks.strip(model)
    analysis = analyze(plain)
    removable = _masked_roots(analysis, keep_masks) - set(analysis.fixed_roots())
    _warn_if_read_as_nonzero(plain, analysis, removable)
    names = {}
    for name in analysis.order:
        if analysis.kinds[name] != "producer":
            continue
        roots = analysis.roots(analysis.outputs[name][0])
        indices = [c for c, root in enumerate(roots) if int(root) in removable]
        if indices:
            names[name] = indices
            removable -= {int(roots[c]) for c in indices}
    return remove_channels(plain, names, round_to=round_to)


def without_masks(model: Any) -> Any:
    """``model`` itself when it has no masks, else :func:`remove_masked_channels` of it.

    What every deployment path does first: the artifact of a masked model is
    the smaller plain model, with the masks' zeros in its weights.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
        >>> without_masks(model) is model
        True
    """
    from tfprune.core import masks

    check_keras_model(model)
    return remove_masked_channels(model) if masks.has_masks(model) else model


def _warn_if_read_as_nonzero(model: Any, analysis: Analysis, removed: set[int]) -> None:
    """Warn where a consumer's input quantizer reads a removed (zero) channel as non-zero."""
    import tensorflow as tf

    for name in analysis.order:
        quantizer = getattr(analysis.layers[name], "input_quantizer", None)
        if analysis.kinds[name] != "producer" or quantizer is None:
            continue
        at_zero = float(tf.reshape(quantizer(tf.zeros((1,))), [-1])[0])
        rows = np.isin(analysis.roots(analysis.inputs[name][0]), list(removed))
        kernel = model.get_layer(name).get_weights()[0]
        if _is_transposed(analysis.layers[name]):
            kernel = np.swapaxes(kernel, -1, -2)
        if at_zero != 0.0 and rows.any() and np.any(kernel[..., rows, :]):
            warnings.warn(f"layer {name!r} reads removed channels through its input quantizer, which maps 0 to "
                          f"{at_zero:g}: the smaller model differs from the masked one; mask {name!r}'s kernel "
                          "rows for those channels too", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Which channels go


def check_plain(model: Any) -> None:
    """Raise ``TypeError`` when a layer of ``model`` is wrapped (surgery needs plain layers).

    Example:
        >>> import tensorflow as tf
        >>> check_plain(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]))
    """
    import tensorflow as tf

    wrapped = [layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.Wrapper)]
    if wrapped:
        raise TypeError(f"layer {wrapped[0]!r} is wrapped ({type(model.get_layer(wrapped[0])).__name__}); "
                        "strip the model first (tfprune.strip) or call remove_masked_channels")


def _check_round_to(round_to: Any) -> int | None:
    if round_to is None:
        return None
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or int(round_to) not in ROUND_TO:
        raise ValueError(f"round_to={round_to!r}: give None, 4 or 8")
    return int(round_to)


def _named_roots(analysis: Analysis, channels: Any) -> set[int]:
    if not isinstance(channels, Mapping):
        raise TypeError(f"channels must map layer names to channel indices, got {type(channels).__name__}")
    removed: set[int] = set()
    for name, indices in channels.items():
        roots = _layer_roots(analysis, name)
        picked = _check_indices(name, indices, len(roots))
        for index in picked:
            why = analysis.fixed_reason(analysis.ids[analysis.outputs[name][0]][index])
            if why:
                raise ValueError(f"channel {index} of layer {name!r} cannot be removed: {why}")
            removed.add(int(roots[index]))
    return removed


def _layer_roots(analysis: Analysis, name: Any) -> np.ndarray:
    if not isinstance(name, str):
        raise TypeError(f"layer names must be strings, got {type(name).__name__} {name!r}")
    if name not in analysis.layers:
        known = ", ".join(analysis.order[:12]) + (", ..." if len(analysis.order) > 12 else "")
        raise ValueError(f"model {analysis.model_name!r} has no layer {name!r} with channels to remove; "
                         f"its layers: {known}")
    roots = analysis.roots(analysis.outputs[name][0])
    if len(set(roots.tolist())) != len(roots):
        raise ValueError(f"layer {name!r} ({analysis.classes[name]}) repeats each channel in its output; "
                         "name the layer that makes the channels")
    return roots


def _check_indices(name: str, indices: Any, count: int) -> list[int]:
    values = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
    if values.size and (values.ndim != 1 or not np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"channels of layer {name!r} must be a flat list of integers, got {values.dtype} "
                        f"of shape {values.shape}")
    picked = [int(v) for v in values]
    bad = [v for v in picked if not 0 <= v < count]
    if bad:
        raise ValueError(f"channel {bad[0]} of layer {name!r} is out of range: it has {count} channels (0..{count - 1})")
    if len(set(picked)) != len(picked):
        twice = next(v for v in picked if picked.count(v) > 1)
        raise ValueError(f"channel {twice} of layer {name!r} is given more than once")
    return picked


def _round_counts(analysis: Analysis, removed: set[int], multiple: int) -> set[int]:
    """Give back the lowest-index removed channels until every producer keeps a multiple."""
    removed = set(removed)
    producers = [n for n in analysis.order if analysis.kinds[n] == "producer"]
    changed = True
    while changed:
        changed = False
        for name in producers:
            roots = analysis.roots(analysis.outputs[name][0])
            gone = [int(r) for r in roots if int(r) in removed]
            kept = len(roots) - len(gone)
            target = min(len(roots), -(-kept // multiple) * multiple)
            for root in gone[: target - kept]:
                removed.discard(root)
                changed = True
    return removed


def _masked_roots(analysis: Analysis, keep_masks: Mapping[str, Any]) -> set[int]:
    """Roots that every producer holding them masks, and every depthwise layer carrying them too.

    A depthwise layer re-adds its bias (and its BatchNorm's offset) to a channel
    whose input is zero, so the masked model outputs zeros there only when the
    depthwise layer masks the channel as well; otherwise the channel stays.
    """
    masked: dict[int, bool] = {}
    for name in analysis.order:
        kind, layer_class = analysis.kinds[name], analysis.classes[name]
        if kind != "producer" and not (kind == "carrier" and "Depthwise" in layer_class):
            continue
        roots = analysis.roots(analysis.outputs[name][0])
        keep = keep_masks.get(name)
        keep = np.ones(len(roots), bool) if keep is None else np.asarray(keep, bool).reshape(-1)
        if keep.shape != roots.shape:
            raise ValueError(f"the channel mask of layer {name!r} has {keep.size} entries for {roots.size} channels")
        for root, kept in zip(roots, keep):
            masked[int(root)] = masked.get(int(root), True) and not kept
    return {root for root, all_masked in masked.items() if all_masked}


def _keep_masks(analysis: Analysis, removed: set[int]) -> dict[Any, np.ndarray]:
    gone = np.array(sorted(removed), dtype=np.int64)
    return {tensor: ~np.isin(analysis.uf.roots(ids), gone) for tensor, ids in analysis.ids.items()}


def _check_nothing_emptied(analysis: Analysis, keep: dict[Any, np.ndarray]) -> None:
    for name in analysis.order:
        if not keep[analysis.outputs[name][0]].any():
            raise ValueError(f"removing these channels leaves layer {name!r} ({analysis.classes[name]}) "
                             "without any channel; keep at least one")


# ---------------------------------------------------------------------------------------------
# The smaller model


def _rebuild(model: Any, analysis: Analysis, keep: dict[Any, np.ndarray]) -> Any:
    import tensorflow as tf

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in analysis.layers:
            config = _new_config(analysis, layer.name, config, keep)
        return layer.__class__.from_config(config)

    smaller = tf.keras.models.clone_model(model, clone_function=clone)
    for name in analysis.order:
        old = model.get_layer(name)
        if old.weights:
            smaller.get_layer(name).set_weights(_sliced_weights(analysis, name, old, keep))
    return smaller


def _new_config(analysis: Analysis, name: str, config: dict, keep: dict[Any, np.ndarray]) -> dict:
    import tensorflow as tf

    layer = analysis.layers[name]
    out_keep = keep[analysis.outputs[name][0]]
    config = dict(config)
    if analysis.kinds[name] == "producer":
        config["units" if isinstance(layer, tf.keras.layers.Dense) else "filters"] = int(out_keep.sum())
    elif analysis.kinds[name] == "reshape" and not out_keep.all():
        target = list(config["target_shape"])
        if target[-1] != -1:
            target[-1] = int(out_keep.sum())
        config["target_shape"] = tuple(target)
    elif analysis.kinds[name] == "passthrough" and not out_keep.all():
        for key in ("mean", "variance", "scale", "offset"):
            value = config.get(key)
            if value is not None and np.ndim(value) > 0 and np.shape(value)[-1] == out_keep.size:
                config[key] = np.asarray(value)[..., out_keep].tolist()
    return config


def _sliced_weights(analysis: Analysis, name: str, old: Any, keep: dict[Any, np.ndarray]) -> list[np.ndarray]:
    layer = analysis.layers[name]
    in_keep = keep[analysis.inputs[name][0]]
    out_keep = keep[analysis.outputs[name][0]]
    transposed = _is_transposed(layer)
    sliced = []
    for variable, value in zip(old.weights, old.get_weights()):
        role = keras_model.weight_role(variable)
        sliced.append(_slice(analysis.kinds[name], role, value, in_keep, out_keep, transposed))
    return sliced


def _is_transposed(layer: Any) -> bool:
    import tensorflow as tf

    L = tf.keras.layers
    return isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose))


def _slice(kind: str, role: str, value: np.ndarray, in_keep: np.ndarray, out_keep: np.ndarray,
           transposed: bool) -> np.ndarray:
    if kind == "producer" and role == "kernel":
        rows, cols = (out_keep, in_keep) if transposed else (in_keep, out_keep)
        return value[..., rows, :][..., cols]
    if role == "bias":
        return value[out_keep]
    if role == "depthwise_kernel":
        return value[..., in_keep, :]
    if value.ndim and value.shape[-1] == in_keep.size and not in_keep.all():
        return value[..., in_keep]
    return value
