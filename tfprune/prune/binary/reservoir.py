"""Weighted reservoir sampling of connections or filters, the pruning step of ARSP (seed 001).

Per layer, ``k = round(ratio * n)`` connections (or filters) are kept, drawn without
replacement with probability proportional to a score, by Efraimidis and Spirakis'
A-Res (Information Processing Letters 97(5), 2006): every item gets the key
``u ** (1 / p)`` with ``u ~ U(0, 1)`` and the ``k`` largest keys are kept. Streaming a
layer's weights through A-Res' heap of size ``k`` keeps the same ``k`` items as taking
the ``k`` largest keys at once, which is what :func:`reservoir_sample` does (in log
space, ``log(u) / p``, so small scores do not underflow). Items of score 0 are kept
only when fewer than ``k`` items score above 0, in random order.

Scores (higher keeps more often, see :mod:`tfprune.core.scores`): ``"survival"``, the
seed's ``(|w| / sum|w|) * 1 / (|dL/dw| + eps)``; ``"taylor"``, ``|w * dL/dw|``, the
direction the seed's prose argues for; ``"magnitude"``, ``|w|`` (an ablation);
``"uniform"``, equal scores (random pruning, the seed's static baseline).

Granularity ``"connections"`` masks single weights (a binary kernel becomes ternary);
``"filters"`` masks output channels and, in every masked layer reading them, the kernel
rows that read them, since larq's ``ste_sign`` input quantizer reads a pruned channel's
0 as +1: the masked model then computes what the model with the channels cut out
(:func:`tfprune.remove_masked_channels`) computes, and stays 1-bit.

Example:
    >>> reservoir_sample([1.0, 0.0, 5.0, 2.0], k=2, seed=1).tolist()
    [2, 3]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SCORES = ("survival", "taylor", "magnitude", "uniform")
GRANULARITIES = ("connections", "filters")

Ratios = float | Mapping[str, float]


# --- sampling -------------------------------------------------------------------------------


def reservoir_sample(weights: Any, k: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Indices of ``k`` items drawn without replacement, with probability proportional to ``weights``.

    Efraimidis-Spirakis keys ``u ** (1 / w)``; the ``k`` largest are kept, returned in
    increasing index order. ``seed`` is an int or a ``numpy.random.Generator`` (which
    advances, so repeated calls with one generator draw independently).

    Example:
        >>> reservoir_sample([0.0, 1.0, 0.0], k=1, seed=3).tolist()
        [1]
    """
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise ValueError("weights must be finite and non-negative; pass scores such as |w| or the survival score")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= weights.size:
        raise ValueError(f"k={k!r} must be an integer between 0 and the number of items ({weights.size})")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    u = rng.random(weights.size)
    tiebreak = rng.random(weights.size)
    positive = weights > 0
    with np.errstate(divide="ignore"):
        keys = np.where(positive, np.log(u) / np.where(positive, weights, 1.0), -np.inf)
    order = np.lexsort((-tiebreak, -keys))  # largest key first; zero scores in random order
    return np.sort(order[:k])


# --- scores ---------------------------------------------------------------------------------


def binary_layers(model: Any) -> list[str]:
    """Names of the layers with a 1-bit kernel quantizer (larq), wrapped or not, in model order.

    These are what ARSP prunes by default: the first and last layers of a binary
    network stay in higher precision and unpruned.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> binary_layers(binary_small_vgg(input_shape=(8, 8, 3)))
        ['conv1', 'conv2', 'conv3', 'conv4', 'conv5']
    """
    from tfprune.keras_model import prunable_layers

    return [name for name, layer in prunable_layers(model).items()
            if getattr(getattr(layer, "kernel_quantizer", None), "precision", None) == 1]


def filter_layers(model: Any, layers: Sequence[str] | None = None) -> list[str]:
    """Of ``layers`` (default :func:`binary_layers`), those whose output channels no other layer ties.

    A channel tied to another producer (a residual ``Add``) only disappears when
    every producer prunes it; filter-level ARSP prunes the untied ones.

    Example:
        >>> from tfprune.models import binary_resnet8
        >>> filter_layers(binary_resnet8())
        ['stack1_conv1', 'stack2_conv1', 'stack3_conv1']
    """
    from tfprune.core.graph import channel_groups

    layers = list(binary_layers(model) if layers is None else layers)
    groups = channel_groups(model, prunable_only=False)
    untied = []
    for name in layers:
        own = [g for g in groups if g.channels(name)]
        if own and all(g.prunable and {p.layer for p in g.producers} == {name} for g in own):
            untied.append(name)
    return untied


def layer_scores(
    model: Any,
    data: Any = None,
    score: str = "survival",
    layers: Sequence[str] | None = None,
    batches: int = 1,
    eps: float = 1e-8,
) -> dict[str, np.ndarray]:
    """Per-weight scores of ``layers`` (default :func:`binary_layers`), kernel-shaped, float64.

    ``data`` is ``(x, y)`` (see :mod:`tfprune.core.scores`); ``"magnitude"`` and
    ``"uniform"`` need none. Latent (real-valued) weights are scored, since the
    binary ones all have magnitude 1.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> model = binary_small_vgg(input_shape=(8, 8, 3))
        >>> layer_scores(model, score="magnitude")["conv1"].shape
        (3, 3, 32, 32)
    """
    from tfprune.core import scores

    _check_choice("score", score, SCORES)
    names = _check_layers(model, layers)
    if score in ("survival", "taylor") and data is None:
        raise ValueError(f"score {score!r} needs data=(x, y) for the gradient; or use score='magnitude'")
    if score == "survival":
        found = scores.arsp_survival(model, data, eps=eps, batches=batches)
    elif score == "taylor":
        found = scores.taylor(model, data, batches=batches)
    else:
        found = scores.magnitude(model)
        if score == "uniform":
            found = {name: np.ones_like(value) for name, value in found.items()}
    return {name: np.asarray(found[name], dtype=np.float64) for name in names}


# --- masks ----------------------------------------------------------------------------------


def sample_masks(
    model: Any,
    ratios: Ratios,
    scores: Mapping[str, np.ndarray],
    granularity: str = "connections",
    seed: int | np.random.Generator | None = 0,
) -> dict[str, np.ndarray]:
    """Keep masks drawn by reservoir sampling: ``ratios[layer]`` of each layer's items are kept.

    ``ratios`` is one keep ratio for every layer in ``scores`` or a dict per layer.
    Returns kernel-shaped boolean masks (``"connections"``) or per-output-channel
    keep vectors (``"filters"``, a channel scoring the sum of its weights' scores).

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> model = binary_small_vgg(input_shape=(8, 8, 3))
        >>> masks = sample_masks(model, 0.25, layer_scores(model, score="magnitude", layers=["conv1"]))
        >>> float(masks["conv1"].mean())
        0.25
    """
    from tfprune.core.scores import channel_scores

    _check_choice("granularity", granularity, GRANULARITIES)
    per_layer = resolve_ratios(ratios, list(scores))
    if granularity == "filters":
        untied = set(filter_layers(model, list(scores)))
        tied = [name for name in scores if name not in untied]
        if tied:
            raise ValueError(f"layers {tied} share their output channels with other layers (a residual Add); "
                             f"filter pruning takes only untied layers: {sorted(untied)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    masks = {}
    for name, score in scores.items():
        items = channel_scores({name: score}, model)[name] if granularity == "filters" else np.asarray(score)
        keep = np.zeros(items.size, dtype=bool)
        keep[reservoir_sample(items, int(round(per_layer[name] * items.size)), rng)] = True
        masks[name] = keep if granularity == "filters" else keep.reshape(np.shape(score))
    return masks


def apply_masks(model: Any, masks: Mapping[str, np.ndarray], granularity: str = "connections") -> None:
    """Set the masks of :func:`sample_masks` on a model wrapped by :func:`tfprune.wrap`.

    ``"filters"`` sets each layer's channel mask, and in every wrapped layer reading
    a pruned channel the kernel rows that read it (all other weight masks are reset to 1).

    Example:
        >>> import tfprune
        >>> from tfprune.models import binary_small_vgg
        >>> model = tfprune.wrap(binary_small_vgg(input_shape=(8, 8, 3)), layers=["conv1", "conv2"])
        >>> apply_masks(model, {"conv1": [True] * 16 + [False] * 16}, granularity="filters")
        >>> int(model.get_layer("conv2").get_mask()[:, :, 16:].sum())
        0
    """
    from tfprune.core.graph import group_of
    from tfprune.core.masks import MaskedLayer

    _check_choice("granularity", granularity, GRANULARITIES)
    for name in masks:
        if not isinstance(_layer(model, name), MaskedLayer):
            raise ValueError(f"layer {name!r} is not wrapped in a MaskedLayer; wrap the model first with "
                             f"tfprune.wrap(model, layers={sorted(masks)})")
    if granularity == "connections":
        for name, mask in masks.items():
            model.get_layer(name).set_mask(np.asarray(mask, dtype=bool))
        return
    weight_masks = {layer.name: np.ones(layer.kernel_shape, dtype=bool)
                    for layer in model.layers if isinstance(layer, MaskedLayer)}
    for name, keep in masks.items():
        keep = np.asarray(keep, dtype=bool)
        model.get_layer(name).set_channel_mask(keep)
        for group in group_of(model, name):
            for k, channel in enumerate(group.channels(name)):
                if keep[channel]:
                    continue
                for consumer in group.consumers:
                    if consumer.layer in weight_masks:
                        _zero_rows(weight_masks[consumer.layer], consumer.rows[k])
                    elif getattr(_layer(model, consumer.layer), "input_quantizer", None) is not None:
                        raise ValueError(f"layer {consumer.layer!r} reads pruned channels of {name!r} through "
                                         f"its input quantizer, which turns their 0 into +1; wrap it too")
    for name, mask in weight_masks.items():
        model.get_layer(name).set_mask(mask)


def resolve_ratios(ratios: Ratios, layers: Sequence[str]) -> dict[str, float]:
    """``{layer: keep ratio}`` for ``layers`` from one ratio or a dict (which must name them all).

    Example:
        >>> resolve_ratios(0.5, ["a", "b"])
        {'a': 0.5, 'b': 0.5}
    """
    if isinstance(ratios, Mapping):
        missing = [name for name in layers if name not in ratios]
        if missing:
            raise ValueError(f"ratios has no keep ratio for layer(s) {missing}; give one per layer or a single float")
        found = {name: ratios[name] for name in layers}
    else:
        found = {name: ratios for name in layers}
    for name, ratio in found.items():
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)) or not 0 <= ratio <= 1:
            raise ValueError(f"keep ratio {ratio!r} of layer {name!r} must be a number between 0 and 1")
    return {name: float(ratio) for name, ratio in found.items()}


def density(model: Any, layers: Sequence[str] | None = None) -> float:
    """Share of nonzero weights in the kernels ``layers`` compute with (masked, quantized).

    Example:
        >>> import tfprune
        >>> from tfprune.models import binary_small_vgg
        >>> model = tfprune.wrap(binary_small_vgg(input_shape=(8, 8, 3)), layers=["conv1"])
        >>> density(model, ["conv1"])
        1.0
    """
    from tfprune.core.masks import sparsity_table

    names = set(_check_layers(model, layers))
    rows = [row for row in sparsity_table(model) if row["name"] in names]
    weights = sum(row["weights"] for row in rows)
    return 1.0 - sum(row["zeros"] for row in rows) / weights if weights else 1.0


# --- helpers --------------------------------------------------------------------------------


def _zero_rows(mask: np.ndarray, rows: Sequence[int]) -> None:
    # a conv kernel is (h, w, in, out), a dense one (in, out): the input axis is -2
    mask[..., list(rows), :] = False


def _layer(model: Any, name: str) -> Any:
    try:
        return model.get_layer(name)
    except ValueError as error:
        raise ValueError(f"model {model.name!r} has no layer {name!r}") from error


def _check_layers(model: Any, layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        names = binary_layers(model)
        if not names:
            raise ValueError(f"model {model.name!r} has no binary (larq, 1-bit kernel) layer; "
                             "name the layers to prune with layers=[...]")
        return names
    if isinstance(layers, str):
        layers = [layers]
    for name in layers:
        _layer(model, name)
    return list(layers)


def _check_choice(what: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


# --- the callback ---------------------------------------------------------------------------


def _callback_base() -> type:
    import tensorflow as tf

    return tf.keras.callbacks.Callback


class ReservoirPruning(_callback_base()):
    """Re-samples a wrapped model's masks every ``every`` training steps with the current ratios.

    At the start of training and then every ``every`` batches the scores are computed
    on ``data`` (the first ``batches`` batches of it) for the model as it is, and
    :func:`sample_masks` draws new masks, seeded by ``seed`` and the step, so a run is
    reproducible. ``ratios`` (the per-layer reservoir sizes) may be changed between
    steps with :meth:`set_ratios`. A weight pruned for a while is 0 in the stored
    weights, so it scores 0 and returns only when a layer's ratio grows beyond its
    nonzero weights (data-free ``"uniform"`` scores excepted).

    Example:
        >>> import numpy as np, tfprune
        >>> from tfprune.models import binary_small_vgg
        >>> model = tfprune.wrap(binary_small_vgg(input_shape=(8, 8, 3)), layers=["conv1"])
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> x, y = np.random.rand(16, 8, 8, 3).astype("float32") * 255, np.arange(16) % 10
        >>> callback = ReservoirPruning((x, y), {"conv1": 0.5}, every=1)
        >>> _ = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
        >>> float(model.get_layer("conv1").get_mask().mean()), callback.resamples
        (0.5, 3)
    """

    def __init__(
        self,
        data: Any,
        ratios: Ratios,
        score: str = "survival",
        granularity: str = "connections",
        every: int = 100,
        seed: int = 0,
        batches: int = 1,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        _check_choice("score", score, SCORES)
        _check_choice("granularity", granularity, GRANULARITIES)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be a positive number of training steps")
        if isinstance(ratios, Mapping):
            resolve_ratios(ratios, list(ratios))
        else:
            resolve_ratios(ratios, ["all"])
        self.data, self.ratios, self.score, self.granularity = data, ratios, score, granularity
        self.every, self.seed, self.batches, self.eps = every, seed, batches, eps
        self.resamples = 0
        self._step = 0

    def set_ratios(self, ratios: Ratios) -> None:
        """The reservoir sizes the next re-sampling uses."""
        self.ratios = ratios

    def resample(self) -> dict[str, np.ndarray]:
        """Draw and set new masks now; returns them."""
        layers = list(self.ratios) if isinstance(self.ratios, Mapping) else None
        scores = layer_scores(self.model, self.data, self.score, layers, self.batches, self.eps)
        masks = sample_masks(self.model, self.ratios, scores, self.granularity,
                             seed=np.random.default_rng([self.seed, self._step]))
        apply_masks(self.model, masks, self.granularity)
        self.resamples += 1
        return masks

    def on_train_begin(self, logs: Any = None) -> None:
        self._step = 0
        self.resample()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        if self._step % self.every == 0:
            self.resample()

    def get_config(self) -> dict[str, Any]:
        """The settings (not the data), for :meth:`from_config`."""
        ratios = dict(self.ratios) if isinstance(self.ratios, Mapping) else self.ratios
        return {"ratios": ratios, "score": self.score, "granularity": self.granularity, "every": self.every,
                "seed": self.seed, "batches": self.batches, "eps": self.eps}

    @classmethod
    def from_config(cls, config: dict[str, Any], data: Any = None) -> ReservoirPruning:
        """A callback with ``config``'s settings reading ``data``."""
        return cls(data, **config)
