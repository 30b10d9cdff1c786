"""The KL threshold: how many of the ranked channels to prune.

**The distribution.** p is the distribution of the next layer's input over the channels it
reads, estimated per sample with a softmax: for a sample with per-channel activations
``a`` (a convolution's input summarised by its spatial mean per channel),

    p(c | a) = softmax(a / T)_c,        T = std of all entries of A (the before-pruning matrix)

and after masking the pruned channels to zero, ``q(c | a) = softmax((a * keep) / T)_c``. The
temperature ``T`` is fixed from the unpruned activations, so it does not move with the
mask. ``KL(p_before || p_after)`` is the mean over samples of ``sum_c p log(p / q)`` in nats.
No smoothing is needed: a softmax is never 0.

**The search.** Channels are pruned in the order of a :class:`~tfprune.prune.qsae.autoencoder.Ranking`
(least important first); pruning ``k`` of them is the threshold ``tau`` equal to the score of
the first channel kept (``score < tau`` is pruned, ties broken by the ranking). The KL
curve holds every ``k`` from 0 to ``C - 1`` (one channel always stays). With ``kl_budget``
the result is the largest ``tau`` whose KL stays within the budget (at that ``k`` and at every
smaller one: the curve need not be monotone); with ``target_sparsity``
it prunes ``round(target_sparsity * C)`` channels (at most ``C - 1``) and reports their KL.

Example:
    >>> import numpy as np
    >>> from tfprune.prune.qsae.autoencoder import Ranking
    >>> a = np.array([[5.0, 0.0, 1.0], [4.0, 0.1, 2.0]])
    >>> ranking = Ranking(np.array([1, 2, 0]), np.array([1.0, 0.1, 0.5]), np.zeros(3))
    >>> choice = search_threshold(a, ranking, kl_budget=0.01)
    >>> choice.keep.tolist(), choice.pruned
    ([True, False, True], 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfprune.prune.qsae.autoencoder import Ranking, summarize


def temperature(activations: Any) -> float:
    """The softmax temperature T: std of all entries of the summarised activations (floored).

    Example:
        >>> temperature(np.array([[0.0, 2.0], [0.0, 2.0]]))
        1.0
    """
    a = summarize(activations)
    return max(float(a.std()), 1e-8)


def channel_distribution(activations: Any, keep: Any = None, temp: float | None = None) -> np.ndarray:
    """Per-sample softmax over channels of ``activations * keep`` at temperature ``temp``.

    Example:
        >>> channel_distribution(np.zeros((1, 4))).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """
    a = summarize(activations)
    temp = temperature(a) if temp is None else float(temp)
    if keep is not None:
        a = a * np.asarray(keep, np.float64)
    logits = a / temp
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def kl_divergence(activations: Any, keep: Any, temp: float | None = None) -> float:
    """KL(p_before || p_after) in nats for the channel mask ``keep`` (see the module docstring).

    Example:
        >>> round(kl_divergence(np.array([[2.0, 0.0]]), [True, True]), 6)
        0.0
    """
    a = summarize(activations)
    temp = temperature(a) if temp is None else float(temp)
    before = channel_distribution(a, None, temp)
    after = channel_distribution(a, keep, temp)
    return float(np.mean(np.sum(before * (np.log(before) - np.log(after)), axis=1)))


@dataclass(frozen=True)
class Threshold:
    """The chosen threshold on one layer, and the KL curve it was chosen from.

    ``curve`` has one entry per number of pruned channels ``k`` (0..C-1): ``tau``,
    ``sparsity`` (k / C) and ``kl``.

    Example:
        >>> t = Threshold(0.5, 0.01, np.array([True, False]), 1, 0.5, [])
        >>> t.sparsity
        0.5
    """

    tau: float
    kl: float
    keep: np.ndarray
    pruned: int
    sparsity: float
    curve: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: tau, kl, pruned, sparsity, keep as a list, and the curve."""
        return {"tau": self.tau, "kl": self.kl, "pruned": self.pruned, "sparsity": self.sparsity,
                "keep": self.keep.tolist(), "curve": self.curve}


def search_threshold(activations: Any, ranking: Ranking, *, kl_budget: float | None = None,
                     target_sparsity: float | None = None, temp: float | None = None) -> Threshold:
    """The threshold for ``kl_budget`` (largest tau within it) or for ``target_sparsity``.

    Exactly one of the two is given; see the module docstring.
    """
    check_budget(kl_budget, target_sparsity)
    a = summarize(activations)
    channels = a.shape[1]
    if ranking.order.shape != (channels,):
        raise ValueError(f"the ranking covers {ranking.order.size} channels but the activations have {channels}")
    temp = temperature(a) if temp is None else float(temp)
    order = ranking.order
    curve, keeps = [], []
    keep = np.ones(channels, bool)
    for k in range(channels):
        if k:
            keep = keep.copy()
            keep[order[k - 1]] = False
        keeps.append(keep)
        curve.append({"tau": float(ranking.scores[order[k]]), "sparsity": k / channels,
                      "kl": kl_divergence(a, keep, temp)})
    if kl_budget is not None:
        # the KL of pruning more need not grow monotonically (a softmax over few survivors flattens
        # again), so the budget must hold for every smaller pruning too, not just at the chosen one
        k = 0
        while k + 1 < channels and curve[k + 1]["kl"] <= kl_budget:
            k += 1
    else:
        k = min(int(round(target_sparsity * channels)), channels - 1)
    return Threshold(tau=curve[k]["tau"], kl=curve[k]["kl"], keep=keeps[k], pruned=k, sparsity=k / channels,
                     curve=curve)


def check_budget(kl_budget: Any, target_sparsity: Any) -> None:
    """ValueError unless exactly one of ``kl_budget`` (>= 0) and ``target_sparsity`` (in [0, 1)) is given.

    Example:
        >>> check_budget(0.05, None)
    """
    if (kl_budget is None) == (target_sparsity is None):
        raise ValueError("give exactly one of kl_budget (nats, e.g. 0.05) and target_sparsity (e.g. 0.5)")
    if kl_budget is not None and (isinstance(kl_budget, bool) or not isinstance(kl_budget, (int, float))
                                  or not kl_budget >= 0):
        raise ValueError(f"kl_budget must be a number >= 0 (nats), got {kl_budget!r}")
    if target_sparsity is not None and (isinstance(target_sparsity, bool)
                                        or not isinstance(target_sparsity, (int, float))
                                        or not 0 <= target_sparsity < 1):
        raise ValueError(f"target_sparsity must be a number in [0, 1), got {target_sparsity!r}")
