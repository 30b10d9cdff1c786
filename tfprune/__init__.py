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

# Before anything imports TensorFlow: on TensorFlow 2.16+ ``tf.keras`` is then tf-keras
# (Keras 2), which tfprune, larq and tfmot need (keras_model.select_keras_2).
from tfprune.keras_model import select_keras_2  # noqa: E402

select_keras_2()

# Bound eagerly (it imports no TensorFlow): importing the subpackage
# ``tfprune.export`` would otherwise shadow the function of the same name.
from tfprune.deploy import Artifact, Report, export, inspect_flatbuffer  # noqa: E402

# public name -> module that defines it, imported on first use
_PUBLIC: dict[str, str] = {
    "wrap": "tfprune.core.masks",
    "strip": "tfprune.core.masks",
    "MaskedLayer": "tfprune.core.masks",
    "channel_masks": "tfprune.core.masks",
    "sparsity_summary": "tfprune.core.masks",
    "remove_channels": "tfprune.core.surgery",
    "remove_masked_channels": "tfprune.core.surgery",
    "channel_groups": "tfprune.core.graph",
    "reconvene": "tfprune.prune.reconvene",
    "ReconveneResult": "tfprune.prune.reconvene",
    "pai_masks": "tfprune.prune.pai",
    "prune_at_init": "tfprune.prune.pai",
    "l1_filter_pruning": "tfprune.prune.channels",
    "compress": "tfprune.prune.compress",
    "CompressResult": "tfprune.prune.compress",
    "BudgetError": "tfprune.prune.compress",
    "Budget": "tfprune.prune.budget",
    "Distiller": "tfprune.prune.distill",
    "emulate": "tfprune.deploy.emulate",
    "load_model": "tfprune.keras_model",
}

__all__ = ["__version__", "Artifact", "Report", "export", "inspect_flatbuffer", *_PUBLIC]


# modules reachable as attributes (``tfprune.models.resnet8``), imported on first use;
# the short names of the methods and core modules keep the paths users know
_SUBMODULES: dict[str, str] = {
    "keras_model": "tfprune.keras_model",
    "models": "tfprune.models",
    "datasets": "tfprune.datasets",
    "drift": "tfprune.drift",
    "baselines": "tfprune.baselines",
    "core": "tfprune.core",
    "deploy": "tfprune.deploy",
    "prune": "tfprune.prune",
    "masks": "tfprune.core.masks",
    "graph": "tfprune.core.graph",
    "surgery": "tfprune.core.surgery",
    "scores": "tfprune.core.scores",
    "count": "tfprune.core.count",
    "channels": "tfprune.prune.channels",
    "pai": "tfprune.prune.pai",
    "qsae": "tfprune.prune.qsae",
    "binary": "tfprune.prune.binary",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tfprune' has no attribute {name!r}")
