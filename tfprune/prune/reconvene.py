"""Reconvene: structured pruning at initialization that makes the deployed model smaller and faster.

Eccles, Wong and Varghese, "Rapid Deployment of DNNs for Edge Computing via
Structured Pruning at Initialization" (CCGrid 2024, arXiv 2404.16877). An
unstructured PaI mask (:mod:`tfprune.prune.pai`) leaves zeros that TFLite Micro still
stores and multiplies. Reconvene keeps the layer-wise ratios PaI found and turns
the layers that tolerate it into physically smaller layers:

1. **Pruning Sensitivity Evaluator** (:func:`sensitivities`): for every tied
   channel group (a conv or dense layer's filters, or the channels an ``Add``
   ties across layers, which exist or vanish together) the PaI mask is replaced
   by the channel mask removing the same share of the group's weights, keeping
   the channels of highest PaI score mass. The sensitivity is the share of the
   PaI score mass the channel mask loses against the unstructured mask:
   ``1 - structured mass / unstructured mass``, in [0, 1]. It is 0 when the PaI
   mask already removes whole channels and grows as the kept weights scatter
   over more channels. Mass is counted in **ranks**: a weight weighs its score's
   percentile within its layer (ties share the average). The PaI methods only
   rank weights, and their raw scores live on incomparable scales (SynFlow's
   span tens of orders of magnitude, GraSP's are signed), so ranks make one
   threshold mean the same for every method. Score mass, not accuracy: it
   needs no training, so the step takes seconds, and it measures exactly what
   the structured mask gives up of what the PaI method asked to keep.
2. **Resilient Layer Rectifier** (:func:`rectify`): the least sensitive groups
   (sensitivity at most ``threshold``, or as many as a byte or MAC ``budget``
   needs) lose their lowest-mass channels by :func:`tfprune.core.surgery.remove_channels`
   at their PaI ratio, and every layer whose weights changed shape is
   re-initialized for its new fan-in and fan-out. The other layers keep their
   unstructured masks (``unrectified="masked"``), or are left dense
   (``"dense"``: their masks save no bytes on TFLite Micro).

:func:`reconvene` (also ``tfprune.reconvene``) runs both and returns a
:class:`ReconveneResult`. The module is not called ``reconvene`` because a
submodule of that name would shadow the function ``tfprune.reconvene``.

Example:
    >>> import tensorflow as tf
    >>> from tfprune.models import small_cnn
    >>> result = reconvene(small_cnn((16, 16, 3), classes=4), method="synflow", target_sparsity=0.8)
    >>> result.report.stored_weights_after < result.report.stored_weights_before
    True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from tfprune import keras_model
from tfprune.core.count import int8_weight_bytes, model_macs, output_channels, prunable_kernels
from tfprune.prune.pai import masked_weights, pai_masks, pai_scores

UNRECTIFIED = ("masked", "dense")
ORDERS = ("least", "most")
CHANNEL_CHOICES = ("score", "random")
BUDGET_KEYS = ("bytes", "macs")
#: Rectify the groups that keep at least 70% of their PaI score (rank) mass as whole channels.
DEFAULT_THRESHOLD = 0.3


@dataclass(frozen=True)
class GroupSensitivity:
    """How much one tied channel group loses when its PaI mask becomes a channel mask.

    ``keep`` of ``size`` channels keep the group's PaI density ``density`` of
    its weights; ``order`` lists the channels by PaI score mass, highest first
    (the rectifier keeps a prefix of it); ``kept_weights`` is the number of
    the group's weights the PaI mask keeps.

    Example:
        >>> GroupSensitivity(0, ("conv",), 8, 4, 0.5, 0.1, (0, 1, 2, 3, 4, 5, 6, 7), 36).keep
        4
    """

    group: int
    layers: tuple[str, ...]
    size: int
    keep: int
    density: float
    sensitivity: float
    order: tuple[int, ...]
    kept_weights: int


@dataclass(frozen=True)
class LayerDecision:
    """One prunable layer in a Reconvene report.

    ``pai_sparsity`` is the share of the layer's weights its PaI mask removes;
    ``sensitivity`` is its channel group's (None for a layer whose output
    channels cannot be pruned, such as the classifier); ``structured`` says
    whether the rectifier cut its output channels.

    Example:
        >>> LayerDecision("conv", 0.9, 0.2, True, 16, 2, 432, 54, 0.0).structured
        True
    """

    layer: str
    pai_sparsity: float
    sensitivity: float | None
    structured: bool
    channels_before: int
    channels_after: int
    weights_before: int
    weights_after: int
    sparsity_after: float


@dataclass
class ReconveneReport:
    """What Reconvene did, per layer and in total.

    ``stored_weights`` count every kernel weight the int8 model stores (zeros
    included: TFLite Micro stores them), ``nonzero_weights`` only those a mask
    keeps; ``macs`` are multiply-accumulates per inference as TFLite Micro runs
    them (zeros included). ``before`` is the unstructured PaI model.

    Example:
        >>> report = ReconveneReport("synflow", 0.9, "global", "masked", [], 100, 40, 10, 10, 1000, 400, 0.5)
        >>> report.size_ratio
        2.5
    """

    method: str
    target_sparsity: float
    scope: str
    unrectified: str
    layers: list[LayerDecision]
    stored_weights_before: int
    stored_weights_after: int
    nonzero_weights_before: int
    nonzero_weights_after: int
    macs_before: int
    macs_after: int
    seconds: float
    groups: list[GroupSensitivity] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        """Stored weights of the PaI model over those of the Reconvene model."""
        return self.stored_weights_before / max(self.stored_weights_after, 1)

    @property
    def mac_ratio(self) -> float:
        """MACs of the PaI model over those of the Reconvene model."""
        return self.macs_before / max(self.macs_after, 1)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready plain data."""
        data = asdict(self)
        data.update(size_ratio=self.size_ratio, mac_ratio=self.mac_ratio)
        return data

    def __str__(self) -> str:
        lines = [f"Reconvene from {self.method} PaI at {self.target_sparsity:.0%} sparsity ({self.scope} ranking), "
                 f"{self.seconds:.1f} s",
                 f"{'layer':<24}{'PaI sparsity':>13}{'sensitivity':>12}  {'structured':<11}{'channels':>12}"
                 f"{'weights':>18}{'sparsity after':>16}"]
        for d in self.layers:
            sensitivity = "-" if d.sensitivity is None else f"{d.sensitivity:.3f}"
            lines.append(f"{d.layer:<24}{d.pai_sparsity:>13.1%}{sensitivity:>12}  {'yes' if d.structured else 'no':<11}"
                         f"{f'{d.channels_before}->{d.channels_after}':>12}"
                         f"{f'{d.weights_before:,}->{d.weights_after:,}':>18}{d.sparsity_after:>16.1%}")
        lines.append(f"stored weights {self.stored_weights_before:,} -> {self.stored_weights_after:,} "
                     f"({self.size_ratio:.2f}x smaller); nonzero {self.nonzero_weights_before:,} -> "
                     f"{self.nonzero_weights_after:,}; MACs {self.macs_before:,} -> {self.macs_after:,} "
                     f"({self.mac_ratio:.2f}x fewer)")
        return "\n".join(lines)


@dataclass
class ReconveneResult:
    """The smaller model (ready to compile and train), its report, and the PaI masks it came from.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.models import small_cnn
        >>> result = reconvene(small_cnn((16, 16, 3), classes=4), method="magnitude", target_sparsity=0.5)
        >>> result.seconds < 60
        True
    """

    model: Any
    report: ReconveneReport
    pai_masks: dict[str, np.ndarray]

    @property
    def seconds(self) -> float:
        """Wall seconds the pruning took (scoring, evaluation and surgery; no training)."""
        return self.report.seconds


def reconvene(
    model: Any,
    data: Any = None,
    method: str = "synflow",
    target_sparsity: float = 0.9,
    *,
    scope: str = "global",
    threshold: float | None = None,
    budget: Mapping[str, int] | None = None,
    count: int | None = None,
    unrectified: str = "masked",
    order: str = "least",
    channel_choice: str = "score",
    iterations: int | None = None,
    batches: int = 1,
    round_to: int | None = None,
    seed: int = 0,
) -> ReconveneResult:
    """Prune an untrained model at initialization and make its least sensitive layers physically smaller.

    Args:
        model: an untrained plain tf.keras Sequential or functional model (not changed).
        data: labelled batches ``(x, y)`` for the ``snip`` and ``grasp`` scores.
        method: the PaI score, one of :data:`tfprune.prune.pai.PAI_METHODS`.
        target_sparsity: the share of prunable weights the PaI mask removes.
        scope: ``"global"`` or ``"layer"`` ranking of the PaI scores.
        threshold: rectify every group with sensitivity at most this. Default
            (no ``threshold``, ``budget`` or ``count``): 0.3, the groups that keep
            at least 70% of the PaI score mass when pruned by whole channels.
        budget: ``{"bytes": n}`` and/or ``{"macs": n}``: rectify groups, least
            sensitive first, until the model stores at most ``n`` int8 weight
            bytes (kernels 1 B per weight, zeros included, plus int32 biases)
            and runs at most ``n`` MACs.
        count: rectify exactly this many groups.
        unrectified: ``"masked"`` keeps the PaI masks of the other layers,
            ``"dense"`` drops them.
        order: ``"least"`` sensitive first (Reconvene) or ``"most"`` (an ablation).
        channel_choice: ``"score"`` keeps the channels of highest PaI mass,
            ``"random"`` rectifies the same groups to the same widths but keeps
            random channels (an ablation).
        iterations: PaI pruning rounds (default 100 for SynFlow, else 1).
        batches: batches of ``data`` the data-driven scores read.
        round_to: 4 or 8 keeps channel counts multiples of it, as in
            :func:`tfprune.core.surgery.remove_channels`.
        seed: fixes random scores, random channels and the re-initialization.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.models import small_cnn
        >>> result = reconvene(small_cnn((16, 16, 3), classes=4), target_sparsity=0.8, count=1)
        >>> sum(d.structured for d in result.report.layers)
        1
    """
    from tfprune.keras_model import check_keras_model
    from tfprune.core.surgery import check_plain

    check_keras_model(model)
    check_plain(model)
    _check_choice(unrectified, UNRECTIFIED, "unrectified")
    _check_choice(order, ORDERS, "order")
    _check_choice(channel_choice, CHANNEL_CHOICES, "channel_choice")
    _check_selection(threshold, budget, count)
    start = time.perf_counter()
    masks = pai_masks(model, method, data, target_sparsity, scope=scope, iterations=iterations, seed=seed,
                      batches=batches)
    with masked_weights(model, masks):
        scores = pai_scores(model, method, data, seed=seed, batches=batches)
    evaluated = sensitivities(model, scores, masks)
    if channel_choice == "random":
        # the same groups and widths as Reconvene; only which channels stay is left to chance
        rng = np.random.default_rng(seed)
        evaluated = [replace(g, order=tuple(int(k) for k in rng.permutation(g.size))) for g in evaluated]
    ranked = sorted(evaluated, key=lambda g: (g.sensitivity if order == "least" else -g.sensitivity, g.group))
    chosen, rectified = _select(model, masks, ranked, order, threshold, budget, count, round_to, seed)
    final = _finish(rectified, chosen, unrectified)
    seconds = time.perf_counter() - start
    report = _report(model, masks, final, evaluated, chosen, method, target_sparsity, scope, unrectified, seconds)
    return ReconveneResult(model=final, report=report, pai_masks=masks)


def sensitivities(
    model: Any,
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
) -> list[GroupSensitivity]:
    """The Pruning Sensitivity Evaluator: every prunable channel group's sensitivity to structured pruning.

    ``scores`` are the PaI scores (higher means keep) and ``masks`` the PaI
    masks, both ``{layer name: kernel-shaped array}``. See the module docstring
    for the measure. Groups come in model order.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(4, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> scores = {"a": np.array([[4.0, 3, 2, 1], [4, 3, 2, 1]]), "b": np.ones((4, 2))}
        >>> whole = {"a": np.array([[1.0, 1, 0, 0], [1, 1, 0, 0]]), "b": np.ones((4, 2))}
        >>> [(g.layers, g.keep, g.sensitivity) for g in sensitivities(model, scores, whole)]
        [(('a',), 2, 0.0)]
    """
    from tfprune.core.graph import channel_groups
    from tfprune.core.scores import group_scores
    from tfprune.keras_model import prunable_layers

    layers = prunable_layers(model)
    ranked_scores = {name: rank_mass(np.asarray(scores[name], np.float64)) for name in layers}
    masks = {name: np.asarray(masks[name], np.float64) for name in layers}
    groups = [g for g in channel_groups(model) if all(p.layer in layers for p in g.producers)]
    mass = group_scores(ranked_scores, model, "sum", groups)
    kept_mass = group_scores({n: ranked_scores[n] * masks[n] for n in layers}, model, "sum", groups)
    kept = group_scores(masks, model, "sum", groups)
    total = group_scores({n: np.ones_like(masks[n]) for n in layers}, model, "sum", groups)
    result = []
    for group in groups:
        if group.id not in mass:
            continue
        density = float(kept[group.id].sum() / total[group.id].sum())
        keep = int(np.clip(round(density * group.size), 1, group.size))
        order = np.argsort(-mass[group.id], kind="stable")
        unstructured = float(kept_mass[group.id].sum())
        structured = float(mass[group.id][order[:keep]].sum())
        sensitivity = 0.0 if unstructured <= 0 else float(np.clip(1.0 - structured / unstructured, 0.0, 1.0))
        names = tuple(dict.fromkeys(m.layer for m in (*group.producers, *group.carriers) if m.layer in layers))
        result.append(GroupSensitivity(group.id, names, group.size, keep, density, sensitivity,
                                       tuple(int(k) for k in order), int(kept[group.id].sum())))
    return result


def rectify(
    model: Any,
    masks: Mapping[str, np.ndarray],
    groups: Sequence[GroupSensitivity],
    *,
    round_to: int | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, np.ndarray]]:
    """The Resilient Layer Rectifier: cut ``groups`` down to their kept channels and re-initialize.

    Each group keeps the first channels of its ``order``, as many as
    :func:`rectified_widths` gives. Returns the smaller plain model and the PaI
    masks sliced to its shapes
    (the masks follow the same surgery as the weights). Every layer whose
    weights changed shape gets fresh values from its own initializers, seeded
    from ``seed``. ``model`` is not changed.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(4, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> masks = {"a": np.ones((2, 4)), "b": np.ones((4, 2))}
        >>> small, sliced = rectify(model, masks, [GroupSensitivity(0, ("a",), 4, 1, 0.25, 0.0, (2, 0, 1, 3), 2)])
        >>> small.get_layer("a").units, sliced["b"].shape
        (1, (1, 2))
    """
    from tfprune.core.graph import channel_groups
    from tfprune.core.surgery import remove_channels

    by_id = {g.id: g for g in channel_groups(model)}
    widths = rectified_widths(model, groups)
    removals: dict[str, list[int]] = {}
    for chosen in groups:
        first = by_id[chosen.group].producers[0]
        removals.setdefault(first.layer, []).extend(first.offset + k for k in sorted(chosen.order[widths[chosen.group]:]))
    small = remove_channels(model, removals, round_to=round_to)
    mask_model = keras_model.copy_model(model)
    _assign_kernels(mask_model, masks)
    sliced = prunable_kernels(remove_channels(mask_model, removals, round_to=round_to))
    reinitialize_changed(model, small, seed)
    return small, sliced


def rectified_widths(model: Any, groups: Sequence[GroupSensitivity], rounds: int = 50) -> dict[int, int]:
    """Channels each rectified group keeps so that its layers keep the weights their PaI masks kept.

    Cutting a group's channels also cuts the input rows of the layers reading
    it, so keeping ``density * size`` channels everywhere would leave about
    ``density**2`` of a chain's weights. Each group instead keeps the share
    ``f = kept_weights / (weights per channel after the input cuts)``, with the
    input cuts those of the other rectified groups: a fixed point found by
    damped iteration (PreCropping's chain rule, Chen et al. 2022, extended to tied
    groups). At least one channel stays.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="a"),
        ...     tf.keras.layers.Dense(4, name="b"), tf.keras.layers.Dense(2, name="c")])
        >>> a = GroupSensitivity(0, ("a",), 4, 2, 0.5, 0.0, (0, 1, 2, 3), 8)
        >>> b = GroupSensitivity(1, ("b",), 4, 2, 0.5, 0.0, (0, 1, 2, 3), 8)
        >>> rectified_widths(model, [a, b])
        {0: 2, 1: 4}
    """
    from tfprune.core.graph import channel_groups
    from tfprune.keras_model import prunable_layers

    layers = prunable_layers(model)
    by_id = {g.id: g for g in channel_groups(model)}
    share = {g.group: g.density for g in groups}
    for _ in range(rounds):
        inputs = _input_shares(model, [by_id[g] for g in share], share)
        for chosen in groups:
            group = by_id[chosen.group]
            weights = 0.0
            for member in (*group.producers, *group.carriers):
                if member.layer in layers:
                    kernel = keras_model.kernel(layers[member.layer])
                    per_channel = int(np.prod(kernel.shape)) / output_channels(model, member.layer)
                    carried = member in group.carriers
                    weights += group.size * per_channel * (1.0 if carried else inputs.get(member.layer, 1.0))
            target = float(np.clip(chosen.kept_weights / max(weights, 1e-12), 1.0 / group.size, 1.0))
            # the geometric mean damps the chain's alternating solutions (2, 16, 2, ...) toward balanced widths
            share[chosen.group] = float(np.sqrt(share[chosen.group] * target))
    return {g.group: int(np.clip(round(share[g.group] * g.size), 1, g.size)) for g in groups}


def _input_shares(model: Any, groups: list[Any], share: Mapping[int, float]) -> dict[str, float]:
    """For each layer reading a rectified group, the share of its input rows that stay."""
    from tfprune.keras_model import prunable_layers

    layers = prunable_layers(model)
    removed: dict[str, float] = {}
    for group in groups:
        for consumer in group.consumers:
            rows = sum(len(r) for r in consumer.rows)
            removed[consumer.layer] = removed.get(consumer.layer, 0.0) + (1.0 - share[group.id]) * rows
    result = {}
    for name, gone in removed.items():
        if name in layers:
            total = int(keras_model.kernel(layers[name]).shape[-2])
            result[name] = max(1.0 - gone / total, 1e-6)
    return result


# --- selection --------------------------------------------------------------------------------


def _select(model: Any, masks: Mapping[str, np.ndarray], ranked: list[GroupSensitivity], order: str,
            threshold: float | None,
            budget: Mapping[str, int] | None, count: int | None, round_to: int | None,
            seed: int) -> tuple[list[GroupSensitivity], tuple[Any, dict[str, np.ndarray]]]:
    if count is not None:
        chosen = ranked[:count]
        return chosen, rectify(model, masks, chosen, round_to=round_to, seed=seed)
    if budget is None:
        limit = DEFAULT_THRESHOLD if threshold is None else threshold
        chosen = [g for g in ranked if (g.sensitivity <= limit if order == "least" else g.sensitivity >= limit)]
        return chosen, rectify(model, masks, chosen, round_to=round_to, seed=seed)
    for size in range(len(ranked) + 1):
        chosen = ranked[:size]
        rectified = rectify(model, masks, chosen, round_to=round_to, seed=seed)
        if _within(rectified[0], budget):
            return chosen, rectified
    reached = {"bytes": int8_weight_bytes(rectified[0]), "macs": model_macs(rectified[0])}
    raise ValueError(f"budget {dict(budget)} is out of reach: rectifying every layer gives "
                     f"{reached['bytes']:,} weight bytes and {reached['macs']:,} MACs; raise target_sparsity "
                     "or the budget")


def _within(model: Any, budget: Mapping[str, int]) -> bool:
    return (int8_weight_bytes(model) <= budget.get("bytes", np.inf)
            and model_macs(model) <= budget.get("macs", np.inf))


def _finish(rectified: tuple[Any, dict[str, np.ndarray]], chosen: list[GroupSensitivity], unrectified: str) -> Any:
    from tfprune.prune.pai import prune_at_init

    small, sliced = rectified
    structured = {name for g in chosen for name in g.layers}
    if unrectified == "dense":
        return small
    keep = {name: mask for name, mask in sliced.items() if name not in structured and not mask.all()}
    return prune_at_init(small, keep) if keep else small


# --- sizes ------------------------------------------------------------------------------------


def uniform_width(model: Any, target_bytes: int, seed: int = 0) -> Any:
    """``model`` with every prunable channel group narrowed by one ratio to about ``target_bytes``.

    The uniform-width control for Reconvene: the ratio (bisection) whose
    :func:`tfprune.prune.channels.random_channel_pruning` leaves the
    :func:`int8_weight_bytes` closest to ``target_bytes``. Dense, no masks.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(8, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> int8_weight_bytes(uniform_width(model, 80))  # each channel of "a" is 14 bytes
        78
    """
    from tfprune.prune.channels import random_channel_pruning

    def narrowed(ratio: float) -> Any:
        return random_channel_pruning(model, ratio, seed=seed) if ratio else model

    low, high = 0.0, 1.0 - 1e-9
    for _ in range(30):
        middle = (low + high) / 2
        if int8_weight_bytes(narrowed(middle)) >= target_bytes:
            low = middle
        else:
            high = middle
    return min((narrowed(low), narrowed(high)), key=lambda m: abs(int8_weight_bytes(m) - target_bytes))


# --- helpers ----------------------------------------------------------------------------------


def _report(model: Any, masks: Mapping[str, np.ndarray], final: Any, evaluated: list[GroupSensitivity],
            chosen: list[GroupSensitivity], method: str, target_sparsity: float, scope: str, unrectified: str,
            seconds: float) -> ReconveneReport:
    before, after = prunable_kernels(model), _effective_kernels(final)
    sensitivity = {name: g.sensitivity for g in evaluated for name in g.layers}
    structured = {name for g in chosen for name in g.layers}
    decisions = []
    for name, kernel in before.items():
        now = after[name]
        decisions.append(LayerDecision(
            layer=name, pai_sparsity=float(1 - masks[name].mean()), sensitivity=sensitivity.get(name),
            structured=name in structured, channels_before=output_channels(model, name),
            channels_after=output_channels(final, name),
            weights_before=int(kernel.size), weights_after=int(now.size),
            sparsity_after=float(1 - np.count_nonzero(now) / max(now.size, 1))))
    return ReconveneReport(
        method=method, target_sparsity=float(target_sparsity), scope=scope, unrectified=unrectified,
        layers=decisions, stored_weights_before=int(sum(k.size for k in before.values())),
        stored_weights_after=int(sum(k.size for k in after.values())),
        nonzero_weights_before=int(sum(m.sum() for m in masks.values())),
        nonzero_weights_after=int(sum(np.count_nonzero(k) for k in after.values())),
        macs_before=model_macs(model), macs_after=model_macs(final), seconds=seconds, groups=evaluated)


def _effective_kernels(model: Any) -> dict[str, np.ndarray]:
    from tfprune.core.masks import MaskedLayer

    kernels = prunable_kernels(model)
    for layer in model.layers:
        if isinstance(layer, MaskedLayer):
            kernels[layer.name] = layer.effective_kernel()
    return kernels


def _assign_kernels(model: Any, values: Mapping[str, np.ndarray]) -> None:

    for name, kernel in keras_model.kernels(model).items():
        kernel.assign(np.asarray(values[name], kernel.dtype.as_numpy_dtype))


def reinitialize_changed(original: Any, small: Any, seed: int = 0) -> None:
    """Give every layer of ``small`` whose weight shapes differ from ``original``'s fresh initial values.

    Each weight is drawn again from its layer's own initializer (seeded from
    ``seed``), so a narrowed layer gets the scale of its new fan-in and fan-out
    instead of a slice of the old draw. Changes ``small`` in place.

    Example:
        >>> import tensorflow as tf
        >>> from tfprune.core.surgery import remove_channels
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(4, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> small = remove_channels(model, {"a": [0, 1]})
        >>> reinitialize_changed(model, small, seed=3)
        >>> small.get_layer("b").kernel.shape
        TensorShape([2, 2])
    """
    import tensorflow as tf

    for index, layer in enumerate(small.layers):
        old = original.get_layer(layer.name)
        if [w.shape for w in layer.weights] == [w.shape for w in old.weights]:
            continue
        for number, weight in enumerate(layer.weights):
            initializer = _initializer_for(layer, weight)
            if initializer is None:
                continue
            config = tf.keras.initializers.serialize(initializer)
            if isinstance(config.get("config"), dict) and "seed" in config["config"]:
                config["config"]["seed"] = seed * 100_003 + index * 101 + number
            fresh = tf.keras.initializers.deserialize(config)
            weight.assign(fresh(weight.shape, dtype=weight.dtype))


def _initializer_for(layer: Any, weight: Any) -> Any:
    short = keras_model.weight_role(weight)
    attribute = {"kernel": "kernel_initializer", "depthwise_kernel": "depthwise_initializer",
                 "bias": "bias_initializer", "gamma": "gamma_initializer", "beta": "beta_initializer",
                 "moving_mean": "moving_mean_initializer", "moving_variance": "moving_variance_initializer",
                 "alpha": "alpha_initializer"}.get(short)
    return getattr(layer, attribute, None) if attribute else None


def rank_mass(score: np.ndarray) -> np.ndarray:
    """Each score's percentile rank in ``(0, 1]`` within the array; tied scores share their average rank.

    Example:
        >>> rank_mass(np.array([10.0, -5.0, 10.0, 0.0])).tolist()
        [0.875, 0.25, 0.875, 0.5]
    """
    flat = np.asarray(score).ravel()
    if flat.size == 0:
        return np.zeros(np.shape(score))
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return (average_rank[inverse] / flat.size).reshape(np.shape(score))


def _check_choice(value: Any, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_selection(threshold: Any, budget: Any, count: Any) -> None:
    given = [name for name, value in (("threshold", threshold), ("budget", budget), ("count", count))
             if value is not None]
    if len(given) > 1:
        raise ValueError(f"give one of threshold, budget and count, not {' and '.join(given)}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be a sensitivity in [0, 1], got {threshold!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0):
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    if budget is not None:
        if not isinstance(budget, Mapping) or not budget or set(budget) - set(BUDGET_KEYS):
            raise ValueError(f"budget must be a dict with keys from {BUDGET_KEYS}, like {{'bytes': 40000}}, "
                             f"got {budget!r}")
        for key, value in budget.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or value <= 0:
                raise ValueError(f"budget[{key!r}] must be a positive number, got {value!r}")
