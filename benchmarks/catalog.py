"""The methods the benchmark knows: reference rows and the baselines.

A pruning method adds its rows through a plug-in module named in :data:`PLUGINS`:
the module has ``methods() -> list[Method]`` and, optionally,
``summary(results: list[dict]) -> str | None``, a measured paragraph BENCHMARKS.md
prints under the tier's table (it gets that tier's results only).

Example:
    >>> [m.name for m in methods(["dense-int8"])]
    ['dense-int8']
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Sequence

from benchmarks.methods import BenchData, Budget, Method, fit

#: Modules that add benchmark rows (see the module docstring).
PLUGINS: tuple[str, ...] = ("benchmarks.reconvene_rows", "benchmarks.qsae_rows", "benchmarks.binary_rows")

#: Unstructured sparsities of the tfmot rows; channel pruning rows match their nonzero counts.
TFMOT_SPARSITIES = (0.5, 0.75, 0.9)


def _mlperf_reference(model: Any, data: BenchData, budget: Budget, seed: int) -> bytes:
    from tfprune.datasets import data_dir

    return (data_dir() / "mlperf_tiny" / "pretrainedResnet_quant.tflite").read_bytes()


def _unchanged(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
    return model


def _timed_training(data: BenchData, epochs: int, train: Any) -> Any:
    """Run a baseline whose pruning happens inside its own training loop: all of it is training time."""
    start = time.perf_counter()
    model = train()
    data.ledger.seconds += time.perf_counter() - start
    data.ledger.epochs += epochs
    return model


def _tfmot_magnitude(sparsity: float):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.baselines import tfmot_magnitude

        return _timed_training(data, budget.finetune_epochs, lambda: tfmot_magnitude(
            model, (data.x_train, data.y_train), sparsity, epochs=budget.finetune_epochs,
            batch_size=budget.batch_size, learning_rate=budget.learning_rate, seed=seed))

    return prune


def _tfmot_cluster(clusters: int):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.baselines import tfmot_cluster

        return _timed_training(data, budget.finetune_epochs, lambda: tfmot_cluster(
            model, (data.x_train, data.y_train), clusters=clusters, epochs=budget.finetune_epochs,
            batch_size=budget.batch_size, learning_rate=budget.learning_rate, seed=seed))

    return prune


def _channel_pruning(sparsity: float, random: bool):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.core import count
        from tfprune.prune import channels

        target = round(count.nonzero_count(model) * (1 - sparsity))
        ratio = channels.ratio_for_nonzeros(model, target)
        if random:
            smaller = channels.random_channel_pruning(model, ratio, seed=seed)
        else:
            smaller = channels.l1_filter_pruning(model, ratio)
        return fit(smaller, data, budget.finetune_epochs, budget, seed)

    return prune


def all_methods() -> list[Method]:
    """Every registered method, reference rows first."""
    rows = [
        Method("mlperf-int8-reference", "artifact", _mlperf_reference, seeded=False,
               description="MLPerf Tiny's own int8 ResNet-8 file: what a user deploys without tfprune"),
        Method("dense-float", "pretrained", _unchanged, quantization="float32", seeded=False,
               description="MLPerf's trained ResNet-8, float32 flatbuffer"),
        Method("dense-int8", "pretrained", _unchanged, seeded=False,
               description="MLPerf's trained ResNet-8 exported by tfprune (int8, TFLite Micro)"),
    ]
    rows += [Method("tfmot-magnitude", "pretrained", _tfmot_magnitude(sparsity), {"sparsity": sparsity},
                    description="tfmot prune_low_magnitude, polynomial schedule, fine-tuned")
             for sparsity in TFMOT_SPARSITIES]
    rows.append(Method("tfmot-cluster", "pretrained", _tfmot_cluster(16), {"clusters": 16, "per_channel": True},
                       description="tfmot clustering, 16 per channel, LUT-compressed 4-bit in TFLite Micro"))
    for name, random, text in [("l1-filters", False, "L1-norm filter pruning (Li et al. 2017) by surgery"),
                               ("random-channels", True, "random channels, the control for l1-filters")]:
        rows += [Method(name, "pretrained", _channel_pruning(sparsity, random), {"nonzeros_of_sparsity": sparsity},
                        description=f"{text}, at the nonzero count of the tfmot row, fine-tuned")
                 for sparsity in TFMOT_SPARSITIES]
    for plugin in PLUGINS:
        rows += importlib.import_module(plugin).methods()
    return rows


def summaries(results: list[dict[str, Any]]) -> list[str]:
    """The plug-ins' measured paragraphs for one tier's results, in :data:`PLUGINS` order."""
    texts = []
    for plugin in PLUGINS:
        summary = getattr(importlib.import_module(plugin), "summary", None)
        text = summary(results) if summary else None
        if text:
            texts.append(text.strip())
    return texts


def methods(names: Sequence[str] | None = None) -> list[Method]:
    """The registered methods, or those named (ValueError for an unknown name)."""
    every = all_methods()
    if names is None:
        return every
    known = {method.name for method in every}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown benchmark method(s) {unknown}; known: {sorted(known)}")
    return [method for method in every if method.name in names]
