"""Unstructured pruning at initialization (PaI): weight masks for an untrained model, from a few batches.

A PaI method scores every weight of an untrained model and keeps the top
``1 - target_sparsity`` of them, ranked over the whole model (``scope="global"``)
or within each layer (``scope="layer"``). The scores are those of
:mod:`tfprune.core.scores`: ``random`` (seeded uniform), ``magnitude``, ``snip``,
``grasp`` and ``synflow`` (the set of Tanaka et al.'s reference code, which the
Reconvene authors' earlier DNNShifter code uses). ``iterations`` > 1 prunes in
rounds on the exponential schedule ``1 - (1 - s)^(i / n)``, re-scoring the
masked model each round (iterative SynFlow, the paper's 100 rounds, is the
default for ``synflow``); a weight pruned in one round stays pruned.

These masks are what :func:`tfprune.reconvene` starts from, and the
masked model they give (:func:`prune_at_init`) is the unstructured counterpart
every Reconvene result is compared with: TFLite Micro stores and multiplies
its zeros like any weight.

Example:
    >>> import tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="fc")])
    >>> masks = pai_masks(model, "magnitude", target_sparsity=0.75)
    >>> int(masks["fc"].sum())
    8
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfprune import keras_model
from tfprune.core.count import prunable_kernels
from tfprune.core.scores import Scores

PAI_METHODS = ("random", "magnitude", "snip", "grasp", "synflow")
SCOPES = ("global", "layer")
DATA_METHODS = ("snip", "grasp")
#: Rounds of iterative SynFlow in Tanaka et al. (NeurIPS 2020); the other scores are single-shot.
SYNFLOW_ITERATIONS = 100


def pai_scores(model: Any, method: str, data: Any = None, *, seed: int = 0, batches: int = 1) -> Scores:
    """Per-weight scores of ``method`` for every prunable layer (higher means keep).

    ``data`` (``(x, y)`` arrays, an ``.npz`` or a ``tf.data`` of batches, as in
    :mod:`tfprune.core.scores`) is needed by ``snip`` and ``grasp`` only.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc")])
        >>> pai_scores(model, "random", seed=1)["fc"].shape
        (3, 2)
    """
    from tfprune.core import scores

    _check_method(method)
    if method in DATA_METHODS and data is None:
        raise ValueError(f"PaI method {method!r} needs labelled data (x, y): pass data=, or use synflow, "
                         "magnitude or random, which need none")
    if method == "random":
        rng = np.random.default_rng(seed)
        return {name: rng.random(kernel.shape).astype(np.float32) for name, kernel in keras_model.kernels(model).items()}
    if method == "magnitude":
        return scores.magnitude(model)
    if method == "synflow":
        return scores.synflow(model)
    if method == "snip":
        return scores.snip(model, data, batches=batches)
    return scores.grasp(model, data, batches=batches)


def pai_masks(
    model: Any,
    method: str = "synflow",
    data: Any = None,
    target_sparsity: float = 0.9,
    *,
    scope: str = "global",
    iterations: int | None = None,
    seed: int = 0,
    batches: int = 1,
) -> dict[str, np.ndarray]:
    """0/1 kernel masks keeping the top ``1 - target_sparsity`` of the prunable weights.

    Returns ``{layer name: mask of the kernel's shape}`` (float32) for every
    prunable layer (:func:`tfprune.core.scores.prunable_layers`). The model's weights
    are unchanged. Ties break toward the lower flat index, so the result is a
    function of the scores and ``seed``. A layer the ranking would empty
    entirely (SynFlow and magnitude do that to ResNet-8's 1x1 shortcuts at 90%)
    keeps its single best weight: an all-zero layer outputs a constant, whose
    int8 scale vanishes, and TFLite Micro cannot run it.

    Args:
        model: an untrained plain tf.keras model.
        method: one of :data:`PAI_METHODS`.
        data: labelled batches, for ``snip`` and ``grasp``.
        target_sparsity: share of the prunable weights to remove, in [0, 1).
        scope: ``"global"`` ranks all weights together, ``"layer"`` prunes every
            layer to the target.
        iterations: pruning rounds (default 100 for ``synflow``, else 1).
        seed: fixes ``random`` scores.
        batches: batches of ``data`` the data-driven scores read.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> masks = pai_masks(model, "random", target_sparsity=0.5, scope="layer")
        >>> [int(m.sum()) for m in masks.values()]
        [8, 4]
    """
    _check_sparsity(target_sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    rounds = _check_iterations(iterations, method)
    masks = {name: np.ones(kernel.shape, np.float32) for name, kernel in prunable_kernels(model).items()}
    for round_ in range(1, rounds + 1):
        sparsity = 1.0 - (1.0 - target_sparsity) ** (round_ / rounds)
        with masked_weights(model, masks):
            scores = pai_scores(model, method, data, seed=seed + round_ - 1, batches=batches)
        # a pruned weight cannot come back in a later round
        ranked = {name: np.where(masks[name] > 0, score.astype(np.float64), -np.inf) for name, score in scores.items()}
        masks = _top_masks(ranked, sparsity, scope)
    return masks


def prune_at_init(model: Any, masks: Mapping[str, np.ndarray]) -> Any:
    """``model`` with every prunable layer wrapped in a :class:`tfprune.core.masks.MaskedLayer` holding its mask.

    The unstructured PaI model, ready to compile and train; ``model`` itself is
    not changed. Layers missing from ``masks`` stay unwrapped.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="fc")])
        >>> pruned = prune_at_init(model, pai_masks(model, "magnitude", target_sparsity=0.5))
        >>> float(pruned.get_layer("fc").sparsity())
        0.5
    """
    from tfprune.core.masks import wrap

    known = set(prunable_kernels(model))
    unknown = sorted(set(masks) - known)
    if unknown:
        raise ValueError(f"masks name layers {unknown} that are not prunable layers of model {model.name!r}")
    wrapped = wrap(model, layers=sorted(masks))
    for name, mask in masks.items():
        wrapped.get_layer(name).set_mask(mask)
    return wrapped


def _top_masks(scores: Mapping[str, np.ndarray], sparsity: float, scope: str) -> dict[str, np.ndarray]:
    if scope == "layer":
        masks = {name: _keep_top(score.ravel(), _kept(score.size, sparsity)).reshape(score.shape)
                 for name, score in scores.items()}
    else:
        flat = np.concatenate([score.ravel() for score in scores.values()])
        keep = _keep_top(flat, _kept(flat.size, sparsity))
        masks, start = {}, 0
        for name, score in scores.items():
            masks[name] = keep[start : start + score.size].reshape(score.shape)
            start += score.size
    for name, mask in masks.items():
        # An emptied layer outputs a constant: its int8 scale vanishes and TFLite Micro cannot run
        # the model, so a layer the ranking would empty keeps its best weight.
        if not mask.any():
            mask.flat[int(np.argmax(scores[name]))] = 1.0
    return masks


def _kept(size: int, sparsity: float) -> int:
    return int(round(size * (1.0 - sparsity)))


def _keep_top(values: np.ndarray, count: int) -> np.ndarray:
    """1 for the ``count`` largest values (ties toward the lower index), else 0."""
    order = np.argsort(-values, kind="stable")
    keep = np.zeros(values.size, np.float32)
    keep[order[:count]] = 1.0
    keep[values == -np.inf] = 0.0
    return keep


class masked_weights:  # noqa: N801 - used as a context manager, like contextlib's
    """Multiply the kernels by their masks for the duration, then restore them bit for bit."""

    def __init__(self, model: Any, masks: Mapping[str, np.ndarray]) -> None:

        self._kernels = keras_model.kernels(model)
        self._masks = masks
        self._saved: dict[str, np.ndarray] = {}

    def __enter__(self) -> None:
        for name, kernel in self._kernels.items():
            self._saved[name] = kernel.numpy()
            if not self._masks[name].all():
                kernel.assign(self._saved[name] * self._masks[name])

    def __exit__(self, *exc: Any) -> None:
        for name, value in self._saved.items():
            self._kernels[name].assign(value)


def _check_method(method: Any) -> None:
    if method not in PAI_METHODS:
        raise ValueError(f"unknown PaI method {method!r}; choose one of {', '.join(PAI_METHODS)}")


def _check_sparsity(target_sparsity: Any) -> None:
    if isinstance(target_sparsity, bool) or not isinstance(target_sparsity, (int, float, np.floating)) \
            or not 0.0 <= float(target_sparsity) < 1.0:
        raise ValueError(f"target_sparsity must be a number in [0, 1), got {target_sparsity!r}")


def _check_iterations(iterations: Any, method: str) -> int:
    _check_method(method)
    if iterations is None:
        return SYNFLOW_ITERATIONS if method == "synflow" else 1
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    return int(iterations)
