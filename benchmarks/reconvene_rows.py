"""Benchmark rows for pruning at initialization: unstructured PaI, Reconvene, and Reconvene's ablations.

Every row starts from a fresh ResNet-8 (``start="scratch"``), prunes it before
any training, then trains it for the tier's ``scratch_epochs``: the dense row
gets the same training budget. Pruning seconds (scores, evaluation, surgery)
are reported apart from training seconds.

Example:
    >>> sorted({m.name for m in methods()})[:3]
    ['dense-scratch', 'pai-unstructured', 'reconvene']
"""

from __future__ import annotations

import json
from collections import defaultdict
from statistics import mean
from typing import Any

import numpy as np

from benchmarks.methods import BenchData, Budget, Method, fit

#: The issue's standard-tier settings: two scores at two sparsities.
STANDARD = [(score, sparsity) for score in ("synflow", "snip") for sparsity in (0.75, 0.9)]
#: The other scores run in the full tier only.
FULL_ONLY = [(score, sparsity) for score in ("random", "magnitude", "grasp") for sparsity in (0.75, 0.9)]
#: The paper's networks, full tier only: (builder name in tfprune.models, scores, sparsities).
FULL_MODELS = (("small_vgg", ("synflow", "snip"), (0.9,)), ("vgg16", ("synflow", "snip"), (0.9, 0.98)))
#: Where the ablations run.
ABLATION = ("synflow", 0.9)
#: Labelled training images the data-driven scores (SNIP, GraSP) read: a few batches.
SCORE_SAMPLES = 256


def methods() -> list[Method]:
    """The rows: dense from scratch, PaI and Reconvene per (score, sparsity), and three ablations."""
    rows = [Method("dense-scratch", "scratch", _dense, description="ResNet-8 trained from scratch, no pruning: "
                   "the dense model with the same training budget")]
    for score, sparsity in STANDARD + FULL_ONLY:
        tiers = ("quick", "standard", "full") if (score, sparsity) == ABLATION else \
            ("standard", "full") if (score, sparsity) in STANDARD else ("full",)
        settings = {"score": score, "sparsity": sparsity}
        rows.append(Method("pai-unstructured", "scratch", _pai(score, sparsity), settings, tiers=tiers,
                           description="unstructured pruning at initialization (global ranking), masks kept "
                                       "while training; TFLite Micro stores the zeros"))
        rows.append(Method("reconvene", "scratch", _reconvene(score, sparsity), settings, tiers=tiers,
                           description="Reconvene: the least sensitive layers rectified into smaller layers "
                                       "(sensitivity <= 0.3), the rest keep their PaI masks"))
    for name, scores, sparsities in FULL_MODELS:
        rows.append(Method("dense-scratch", "scratch", _dense, {"model": name}, tiers=("full",),
                           model=_builder(name), description=f"{name} trained from scratch, no pruning"))
        for score in scores:
            for sparsity in sparsities:
                settings = {"model": name, "score": score, "sparsity": sparsity}
                rows.append(Method("pai-unstructured", "scratch", _pai(score, sparsity), settings, tiers=("full",),
                                   model=_builder(name), description=f"unstructured PaI of {name}"))
                rows.append(Method("reconvene", "scratch", _reconvene(score, sparsity), settings, tiers=("full",),
                                   model=_builder(name), description=f"Reconvene of {name}"))
    score, sparsity = ABLATION
    settings = {"score": score, "sparsity": sparsity}
    ablation_tiers = ("standard", "full")
    rows += [
        Method("reconvene-random-channels", "scratch", _reconvene(score, sparsity, channel_choice="random"),
               settings, tiers=ablation_tiers,
               description="ablation: Reconvene's widths, channels chosen at random"),
        Method("reconvene-most-sensitive", "scratch", _most_sensitive(score, sparsity), settings,
               tiers=ablation_tiers,
               description="ablation: as many groups rectified as Reconvene, the most sensitive ones"),
        Method("uniform-width", "scratch", _uniform_width(score, sparsity), {"bytes_of": settings},
               tiers=ablation_tiers,
               description="ablation: every layer narrowed by one ratio to Reconvene's int8 weight bytes, dense"),
    ]
    return rows


def _builder(name: str):
    def build(seed: int) -> Any:
        from tfprune import models

        # the benchmark feeds raw 0..255 pixels, which the VGGs' Rescaling layer takes
        return getattr(models, name)(seed=seed)

    return build


def _score_data(data: BenchData) -> tuple[np.ndarray, np.ndarray]:
    return data.x_train[:SCORE_SAMPLES], data.y_train[:SCORE_SAMPLES]


def _dense(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
    return fit(model, data, budget.scratch_epochs, budget, seed)


def _pai(score: str, sparsity: float):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.prune.pai import pai_masks, prune_at_init

        masks = pai_masks(model, score, _score_data(data), sparsity, seed=seed)
        return fit(prune_at_init(model, masks), data, budget.scratch_epochs, budget, seed)

    return prune


def _reconvene(score: str, sparsity: float, **options: Any):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.prune.reconvene import reconvene

        result = reconvene(model, _score_data(data), score, sparsity, seed=seed, **options)
        return fit(result.model, data, budget.scratch_epochs, budget, seed)

    return prune


def _most_sensitive(score: str, sparsity: float):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.prune.reconvene import reconvene

        default = reconvene(model, _score_data(data), score, sparsity, seed=seed)
        count = sum(1 for g in default.report.groups
                    if any(d.structured for d in default.report.layers if d.layer in g.layers))
        result = reconvene(model, _score_data(data), score, sparsity, seed=seed, count=count, order="most")
        return fit(result.model, data, budget.scratch_epochs, budget, seed)

    return prune


def _uniform_width(score: str, sparsity: float):
    def prune(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.core.count import int8_weight_bytes
        from tfprune.prune.reconvene import reconvene, reinitialize_changed, uniform_width

        target = int8_weight_bytes(reconvene(model, _score_data(data), score, sparsity, seed=seed).model)
        narrow = uniform_width(model, target, seed=seed)
        reinitialize_changed(model, narrow, seed)
        return fit(narrow, data, budget.scratch_epochs, budget, seed)

    return prune


# --- the measured paragraph ------------------------------------------------------------------


def summary(results: list[dict[str, Any]]) -> str | None:
    """How much smaller and faster Reconvene artifacts are than PaI artifacts of matched accuracy."""
    rows = _means(results)
    reconvene = {k: v for k, v in rows.items() if k[0] == "reconvene"}
    pai = {k: v for k, v in rows.items() if k[0] == "pai-unstructured"}
    if not reconvene or not pai:
        return None
    tier = results[0]["key"]["tier"]
    dense = rows.get(("dense-scratch", "{}"))
    lines = [f"**Reconvene against unstructured PaI** (measured on the int8 artifacts, {tier} tier, means over "
             "seeds; time is the emulated Cortex-M4's, CMSIS-NN, where both rows ran there, else the host TFLite "
             "Micro interpreter's; *matched* means a PaI row within 1 point of accuracy):", ""]
    for key, row in sorted(reconvene.items()):
        text = f"- Reconvene {_label(key[1])}: {row['accuracy']:.2%} at {row['flatbuffer_bytes']:,.0f} B"
        same = pai.get(("pai-unstructured", key[1]))
        if same:
            text += (f"; PaI at the same settings: {same['accuracy']:.2%} at {same['flatbuffer_bytes']:,.0f} B, so "
                     f"Reconvene is {_ratio(same, row, 'flatbuffer_bytes')} smaller, "
                     f"{_faster(same, row)} and "
                     f"{100 * (row['accuracy'] - same['accuracy']):+.1f} points")
        matched = [(k, v) for k, v in pai.items() if abs(v["accuracy"] - row["accuracy"]) <= 0.01]
        if matched:
            best_key, best = min(matched, key=lambda item: item[1]["flatbuffer_bytes"])
            text += (f"; matched by PaI {_label(best_key[1])} ({best['accuracy']:.2%}): "
                     f"**{_ratio(best, row, 'flatbuffer_bytes')} smaller, {_faster(best, row)}**")
        else:
            text += "; no PaI row matches its accuracy"
        if dense:
            text += (f"; against the dense model of the same training budget: "
                     f"{_ratio(dense, row, 'flatbuffer_bytes')} smaller, "
                     f"{100 * (row['accuracy'] - dense['accuracy']):+.1f} points")
        lines.append(text + ".")
    if dense:
        lines.append(f"- The dense ResNet-8 trained the same epochs: {dense['accuracy']:.2%} at "
                     f"{dense['flatbuffer_bytes']:,.0f} B.")
    lines += _ablation_lines(rows)
    return "\n".join(lines)


def _ablation_lines(rows: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    score, sparsity = ABLATION
    settings = json.dumps({"score": score, "sparsity": sparsity}, sort_keys=True)
    base = rows.get(("reconvene", settings))
    if not base:
        return []
    lines = []
    for method, key in (("reconvene-random-channels", settings), ("reconvene-most-sensitive", settings),
                        ("uniform-width", json.dumps({"bytes_of": json.loads(settings)}, sort_keys=True))):
        other = rows.get((method, key))
        if other:
            lines.append(f"- Ablation {method} ({_label(settings)}): {other['accuracy']:.2%} at "
                         f"{other['flatbuffer_bytes']:,.0f} B, against Reconvene's {base['accuracy']:.2%} at "
                         f"{base['flatbuffer_bytes']:,.0f} B ({100 * (other['accuracy'] - base['accuracy']):+.1f} "
                         "points).")
    return lines


def _ratio(large: dict[str, float], small: dict[str, float], field: str) -> str:
    if not large.get(field) or not small.get(field):
        return "?"
    return f"{large[field] / small[field]:.2f}x"


def _faster(large: dict[str, float], small: dict[str, float]) -> str:
    """How much faster ``small`` runs: on the emulated Cortex-M4 when both rows ran there, else on the host."""
    if large.get("cmsis_nn_time_ratio") and small.get("cmsis_nn_time_ratio"):
        return f"{_ratio(large, small, 'cmsis_nn_time_ratio')} faster on the Cortex-M4"
    return f"{_ratio(large, small, 'tflm_time_ratio')} faster on the host (not measured on the Cortex-M4)"


def _means(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        grouped[(result["key"]["method"], result["key"]["settings"])].append(result)
    return {key: {field: mean(r[field] for r in runs if r.get(field) is not None)
                  for field in ("accuracy", "flatbuffer_bytes", "tflm_time_ratio", "cmsis_nn_time_ratio")
                  if any(r.get(field) is not None for r in runs)}
            for key, runs in grouped.items()}


def _label(settings: str) -> str:
    values = json.loads(settings)
    return f"{values.get('score')} {values.get('sparsity', 0):.0%}" if "score" in values else settings
