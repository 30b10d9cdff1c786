"""Binary networks pruned by adaptive reservoir sampling (ARSP, seed 001), deployed 1-bit.

Modules: ``training`` (Adam or larq's Bop, flip ratio, larq's summary),
``reservoir`` (Efraimidis-Spirakis sampling of connections or filters, the
``ReservoirPruning`` callback), ``ppo`` (the PPO controller of the per-layer keep
ratios; the only module importing tf-agents), ``arsp`` (the method end to end).
Deployment of binary models (Cortex-M int8 with 1-2 bit LUT weights, Android with Larq
Compute Engine) is :mod:`tfprune.deploy.binary`; ``for_micro``, ``for_lce`` and
``export_both`` stay reachable here.

Nothing heavy is imported until a name is used.

Example:
    >>> from tfprune.prune import binary
    >>> binary.reservoir_sample([0.0, 1.0], k=1).tolist()
    [1]
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "reservoir_sample": "tfprune.prune.binary.reservoir",
    "binary_layers": "tfprune.prune.binary.reservoir",
    "filter_layers": "tfprune.prune.binary.reservoir",
    "layer_scores": "tfprune.prune.binary.reservoir",
    "sample_masks": "tfprune.prune.binary.reservoir",
    "apply_masks": "tfprune.prune.binary.reservoir",
    "ReservoirPruning": "tfprune.prune.binary.reservoir",
    "optimizer": "tfprune.prune.binary.training",
    "FlipRatio": "tfprune.prune.binary.training",
    "summary": "tfprune.prune.binary.training",
    "arsp": "tfprune.prune.binary.arsp",
    "ARSPReport": "tfprune.prune.binary.arsp",
    "hyperscore": "tfprune.prune.binary.arsp",
    "for_micro": "tfprune.deploy.binary",
    "for_lce": "tfprune.deploy.binary",
    "export_both": "tfprune.deploy.binary",
}

__all__ = list(_PUBLIC)

_SUBMODULES = ("training", "reservoir", "ppo", "arsp")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tfprune.prune.binary.{name}")
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tfprune.prune.binary' has no attribute {name!r}")
