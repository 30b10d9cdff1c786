"""tfprune: pruning for Keras models, measured on the artifact the device runs.

Nothing heavy is imported here: ``import tfprune`` does not import TensorFlow.
Public names are resolved on first use.

Example:
    >>> import tfprune
    >>> tfprune.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Bound eagerly (it imports no TensorFlow): importing the subpackage
# ``tfprune.export`` would otherwise shadow the function of the same name.
from tfprune.export import Artifact, Report, export, inspect_flatbuffer  # noqa: E402

# public name -> module that defines it, imported on first use
_PUBLIC: dict[str, str] = {
    "wrap": "tfprune.masks",
    "strip": "tfprune.masks",
    "MaskedLayer": "tfprune.masks",
    "channel_masks": "tfprune.masks",
    "sparsity_summary": "tfprune.masks",
    "remove_channels": "tfprune.surgery",
    "remove_masked_channels": "tfprune.surgery",
    "channel_groups": "tfprune.graph",
    "reconvene": "tfprune.structured_pai",
    "ReconveneResult": "tfprune.structured_pai",
    "pai_masks": "tfprune.pai",
    "prune_at_init": "tfprune.pai",
}

__all__ = ["__version__", "Artifact", "Report", "export", "inspect_flatbuffer", *_PUBLIC]


# submodules reachable as attributes (``tfprune.models.resnet8``), imported on first use
_SUBMODULES = ("models", "datasets", "masks", "graph", "surgery", "scores", "baselines", "bench", "qsae", "binary")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tfprune.{name}")
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tfprune' has no attribute {name!r}")
