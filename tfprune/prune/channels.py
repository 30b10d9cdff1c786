"""Channel pruning of a trained model: L1 norm, Taylor importance or random choice, then surgery.

Every function removes whole channels of every prunable channel group
(:func:`tfprune.core.graph.channel_groups`) through
:func:`tfprune.core.surgery.remove_channels`, so the model really shrinks.
``sparsity`` is the share of each group's channels removed (at least one
channel of every group stays). The model passed in is never changed.

- :func:`l1_filter_pruning` (Li et al., ICLR 2017): the channels with the smallest
  L1 norm of their kernel slices.
- :func:`taylor_channel_pruning` (Molchanov et al., 2017/2019): the channels with
  the smallest first-order Taylor estimate of the loss change, on given data.
- :func:`random_channel_pruning`: the control, the same counts chosen at random.
- :func:`sparsity_for_nonzeros_l1`: the uniform sparsity whose L1 pruning leaves a
  given number of nonzero weights.

Example:
    >>> import tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, name="hidden"),
    ...                              tf.keras.layers.Dense(2, name="out")])
    >>> l1_filter_pruning(model, 0.5).get_layer("hidden").units
    4
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from tfprune.core.count import nonzero_count
from tfprune.core.graph import ChannelGroup
from tfprune.deprecation import resolve_renamed
from tfprune.keras_model import check_keras_model

#: Bisection steps of :func:`ratio_for_nonzeros` (sparsity resolution 2**-12).
_RATIO_STEPS = 12


def l1_filter_pruning(
    model: Any, sparsity: float | Mapping[str, float] | None = None, *, round_to: int | None = None,
    ratio: float | Mapping[str, float] | None = None,
) -> Any:
    """L1-norm filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).

    In every prunable channel group (:func:`tfprune.core.graph.channel_groups`: a
    layer's filters, or the channels an ``Add`` ties across several layers),
    the ``round(sparsity * size)`` channels with the smallest L1 norm of their
    kernel slices, summed over the group's producers, are removed by
    :func:`tfprune.core.surgery.remove_channels`: a smaller model, not zeros. At
    least one channel of every group stays; ties break toward the lower index.
    No fine-tuning happens here (the paper retrains afterwards).

    Args:
        model: a plain tf.keras Sequential or functional model (not changed).
        sparsity: share of channels to remove from every group, in [0, 1), or
            ``{layer name: share}`` for the groups of the named producers (a
            group tied across named layers needs one share; the rest keep all).
        ratio: the old name of ``sparsity`` (deprecated).
        round_to: 4 or 8 gives channels back until every layer keeps a
            multiple of it, as in :func:`tfprune.core.surgery.remove_channels`.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="hidden"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> model.get_layer("hidden").set_weights([np.diag([3.0, 1.0, 4.0, 0.5]), np.zeros(4)])
        >>> small = l1_filter_pruning(model, 0.5)
        >>> small.get_layer("hidden").kernel.numpy()[[0, 2]].tolist()
        [[3.0, 0.0], [0.0, 4.0]]
    """
    from tfprune.core.scores import channel_scores, magnitude

    sparsity = resolve_renamed(sparsity, ratio, "sparsity", "ratio", "l1_filter_pruning")
    check_keras_model(model)
    norms = channel_scores(magnitude(model), model, reduce="sum")
    return _prune_groups(model, sparsity, lambda group, count: lowest_of(group, count, norms), round_to)


def taylor_channel_pruning(
    model: Any, sparsity: float | Mapping[str, float], data: Any, *, batches: int = 4, round_to: int | None = None
) -> Any:
    """Remove the channels with the smallest first-order Taylor importance ``sum |w * dL/dw|``.

    The importance of a channel is the Taylor score of its kernel slices
    (:func:`tfprune.core.scores.taylor` on ``batches`` batches of ``data``)
    summed over the group's producers; otherwise as :func:`l1_filter_pruning`.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, name="hidden"),
        ...     tf.keras.layers.Dense(2, name="out")])
        >>> data = (np.random.rand(16, 4).astype("float32"), np.random.randint(0, 2, 16))
        >>> taylor_channel_pruning(model, 0.25, data).get_layer("hidden").units
        6
    """
    from tfprune.core.scores import channel_scores, taylor

    check_keras_model(model)
    importance = channel_scores(taylor(model, data, batches=batches), model, reduce="sum")
    return _prune_groups(model, sparsity, lambda group, count: lowest_of(group, count, importance), round_to)


def lowest_of(group: ChannelGroup, count: int, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``count`` channels of ``group`` with the smallest score summed over its producers.

    Ties break toward the lower index.

    Example:
        >>> from tfprune.core.graph import ChannelGroup, Member
        >>> group = ChannelGroup(id=0, size=3, producers=(Member("a", 0),), carriers=(), consumers=())
        >>> lowest_of(group, 1, {"a": np.array([2.0, 0.5, 1.0])}).tolist()
        [1]
    """
    total = sum(scores[p.layer][p.offset : p.offset + group.size] for p in group.producers)
    return np.argsort(total, kind="stable")[:count]


def random_channel_pruning(
    model: Any, sparsity: float | Mapping[str, float] | None = None, seed: int = 0, *,
    round_to: int | None = None, ratio: float | Mapping[str, float] | None = None,
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
    sparsity = resolve_renamed(sparsity, ratio, "sparsity", "ratio", "random_channel_pruning")
    check_keras_model(model)
    rng = np.random.default_rng(seed)
    return _prune_groups(model, sparsity, lambda group, count: rng.choice(group.size, count, replace=False), round_to)


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


def _prune_groups(
    model: Any, ratio: Any, choose: Callable[[ChannelGroup, int], np.ndarray], round_to: int | None
) -> Any:
    """Remove ``choose(group, count)`` channels of every prunable group scored by magnitude."""
    from tfprune.core.graph import channel_groups
    from tfprune.keras_model import prunable_layers
    from tfprune.core.surgery import remove_channels

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


#: How :func:`group_importance` ranks channels (QSAE's ranking is :func:`tfprune.prune.qsae.group_importance`).
SELECTORS = ("l1", "taylor", "random")


def group_importance(
    model: Any, selector: str = "l1", data: Any = None, *, groups: list[ChannelGroup] | None = None,
    seed: int = 0, batches: int = 4,
) -> dict[int, np.ndarray]:
    """Channel importance of every prunable group, by group id: higher is more important.

    ``"l1"``: the L1 norm of each channel's kernel slices summed over the
    group's producers; ``"taylor"``: the first-order Taylor score ``|w dL/dw|``
    on ``batches`` batches of labelled ``data``; ``"random"``: a seeded
    random ranking (the control). Groups whose producers are not prunable
    layers (Conv1D, transposed convolutions) are left out.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="hidden",
        ...     kernel_initializer="ones"), tf.keras.layers.Dense(2, name="out")])
        >>> {group: scores.tolist() for group, scores in group_importance(model).items()}
        {0: [4.0, 4.0, 4.0]}
    """
    from tfprune.core.graph import channel_groups
    from tfprune.core.scores import channel_scores, magnitude, taylor
    from tfprune.keras_model import prunable_layers

    if selector not in SELECTORS:
        raise ValueError(f"unknown selector {selector!r}; choose one of {', '.join(SELECTORS)} (or 'qsae' in compress)")
    groups = channel_groups(model) if groups is None else groups
    scored = set(prunable_layers(model))
    groups = [g for g in groups if all(p.layer in scored for p in g.producers)]
    if selector == "random":
        rng = np.random.default_rng(seed)
        return {group.id: rng.random(group.size) for group in groups}
    if selector == "taylor" and data is None:
        raise ValueError("selector='taylor' needs labelled data (x, y) to take gradients on")
    weights = magnitude(model) if selector == "l1" else taylor(model, data, batches=batches)
    per_layer = channel_scores(weights, model, reduce="sum")
    return {group.id: sum(per_layer[p.layer][p.offset : p.offset + group.size] for p in group.producers)
            for group in groups}


def prune_to_widths(
    model: Any, widths: Mapping[int, int], importance: Mapping[int, np.ndarray], *,
    groups: list[ChannelGroup] | None = None, round_to: int | None = None,
) -> Any:
    """Keep ``widths[group id]`` channels of each group, the most important ones, and cut the rest out.

    ``importance`` is what :func:`group_importance` returns (or any ranking of
    the same shape); groups not in ``widths`` keep every channel. Returns the
    smaller plain model (:func:`tfprune.core.surgery.remove_channels`).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="hidden"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> prune_to_widths(model, {0: 1}, {0: np.array([0.1, 0.9, 0.2, 0.3])}).get_layer("hidden").units
        1
    """
    from tfprune.core.graph import channel_groups
    from tfprune.core.surgery import remove_channels

    check_keras_model(model)
    groups = channel_groups(model) if groups is None else groups
    removals: dict[str, list[int]] = {}
    for group in groups:
        if group.id not in widths:
            continue
        width = widths[group.id]
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= group.size:
            raise ValueError(f"width of group {group.id} must be 1..{group.size}, got {width!r}")
        lowest = np.argsort(np.asarray(importance[group.id]), kind="stable")[: group.size - int(width)]
        if len(lowest):
            first = group.producers[0]
            removals.setdefault(first.layer, []).extend(first.offset + int(k) for k in sorted(lowest))
    return remove_channels(model, removals, round_to=round_to)
