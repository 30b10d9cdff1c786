"""QSAE dynamic sparsity (seed 000): a quantized sparse autoencoder picks which channels to prune,
a KL budget sets how many, and :class:`PruningController` keeps the masks right during ``fit``
and as the data drift.

Example:
    >>> from tfprune.prune.qsae import PruningController
    >>> PruningController(target_sparsity=0.5, verbose=0).target_sparsity
    0.5
"""

from tfprune.prune.qsae.autoencoder import QSAE, Ranking, fake_quantize, summarize
from tfprune.prune.qsae.controller import DEFAULT_KL_BUDGET, PruningController, drift_score
from tfprune.prune.qsae.threshold import Threshold, channel_distribution, kl_divergence, search_threshold, temperature

__all__ = ["QSAE", "Ranking", "fake_quantize", "summarize", "PruningController", "DEFAULT_KL_BUDGET", "drift_score",
           "Threshold", "channel_distribution", "kl_divergence", "search_threshold", "temperature"]
