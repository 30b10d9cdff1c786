"""Binary networks pruned by adaptive reservoir sampling (ARSP, seed 001), deployed 1-bit.

Modules: ``models`` (training helpers: Adam or larq's Bop, flip ratio, larq's summary),
``reservoir`` (Efraimidis-Spirakis sampling of connections or filters, the
``ReservoirPruning`` callback), ``ppo`` (the PPO controller of the per-layer keep
ratios; the only module importing tf-agents), ``arsp`` (the method end to end),
``deploy`` (Cortex-M int8 with 1-2 bit LUT weights, Android with Larq Compute Engine).

Nothing heavy is imported until a name is used.

Example:
    >>> from tfprune import binary
    >>> binary.reservoir_sample([0.0, 1.0], k=1).tolist()
    [1]
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "reservoir_sample": "tfprune.binary.reservoir",
    "binary_layers": "tfprune.binary.reservoir",
    "filter_layers": "tfprune.binary.reservoir",
    "layer_scores": "tfprune.binary.reservoir",
    "sample_masks": "tfprune.binary.reservoir",
    "apply_masks": "tfprune.binary.reservoir",
    "ReservoirPruning": "tfprune.binary.reservoir",
    "optimizer": "tfprune.binary.models",
    "FlipRatio": "tfprune.binary.models",
    "summary": "tfprune.binary.models",
    "arsp": "tfprune.binary.arsp",
    "ARSPReport": "tfprune.binary.arsp",
    "hyperscore": "tfprune.binary.arsp",
    "for_micro": "tfprune.binary.deploy",
    "for_lce": "tfprune.binary.deploy",
    "export_both": "tfprune.binary.deploy",
}

__all__ = list(_PUBLIC)

_SUBMODULES = ("models", "reservoir", "ppo", "arsp", "deploy")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tfprune.binary.{name}")
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tfprune.binary' has no attribute {name!r}")
