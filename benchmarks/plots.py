"""The Pareto plot of a table: accuracy against the deployed flatbuffer's KB, one panel per family.

Rows are only comparable within a family of experiments: fine-tuned from MLPerf's
trained ResNet-8 (and MLPerf's own file), trained from scratch for the tier's
epochs, and binary networks trained from scratch. Each panel marks its dense
reference (a star, and a dashed line at its accuracy); a method is one marker and
colour, one point per setting: the mean over seeds, with the seeds' range as error bars. Float32 artifacts are left off the axis and named.

Example:
    >>> family({"key": {"settings": '{"model": "binary_resnet8"}'}, "start": "scratch", "model": "resnet8"})
    ('binary', 'binary_resnet8')
    >>> family({"key": {"settings": "{}"}, "start": "pretrained", "model": "resnet8"})
    ('fine-tuned', 'resnet8')
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

#: Panel titles, in panel order.
FAMILIES = {"fine-tuned": "fine-tuned from the trained model", "scratch": "trained from scratch",
            "binary": "binary, trained from scratch"}
#: The dense row each family is measured against.
REFERENCES = {"fine-tuned": "dense-int8", "scratch": "dense-scratch", "binary": "bnn-dense"}
_MARKERS = "osD^v<>pP*Xh"


def family(result: dict[str, Any]) -> tuple[str, str]:
    """(family, model) of a result: binary when its model is binary, else by how training started."""
    model = str(json.loads(result["key"]["settings"]).get("model", result["model"]))
    if model.startswith("binary"):
        return "binary", model
    return ("scratch" if result["start"] == "scratch" else "fine-tuned"), model


def plot_pareto(results: list[dict[str, Any]], path: str | os.PathLike, title: str) -> Path:
    """Write the table's plot as a PNG at ``path``: one panel per (family, model) present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        panels[family(result)].append(result)
    order = sorted(panels, key=lambda p: (list(FAMILIES).index(p[0]), p[1]))
    figure, axes = plt.subplots(1, max(len(order), 1), figsize=(5.4 * max(len(order), 1), 5.6), dpi=110,
                                squeeze=False)
    for axis, panel in zip(axes[0], order):
        _panel(axis, panel, panels[panel])
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def _panel(axis: Any, panel: tuple[str, str], results: list[dict[str, Any]]) -> None:
    kind, model = panel
    shown = [r for r in results if r["quantization"] != "float32"]
    off_axis = [r for r in results if r["quantization"] == "float32"]
    by_method: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for result in shown:
        by_method[result["key"]["method"]][result["key"]["settings"]].append(result)
    reference = REFERENCES[kind]
    for index, (method, settings) in enumerate(sorted(by_method.items())):
        points = sorted((_point(runs) for runs in settings.values()), key=lambda p: p[0])
        color, marker = f"C{index % 10}", _MARKERS[index % len(_MARKERS)]
        if method == reference:
            x, y, _ = points[0]
            axis.axhline(y, color="black", linestyle="--", linewidth=0.8)
            axis.plot([x], [y], marker="*", markersize=15, color="black", linestyle="none",
                      label=f"{method} (dense reference)")
            continue
        axis.errorbar([p[0] for p in points], [p[1] for p in points],
                      yerr=[[p[1] - p[2][0] for p in points], [p[2][1] - p[1] for p in points]],
                      color=color, marker=marker, linestyle="none", markersize=6, capsize=2, alpha=0.85, label=method)
    axis.set_title(f"{FAMILIES[kind]} ({model})", fontsize=10)
    axis.set_xlabel("deployed flatbuffer (KB, 1 KB = 1,000 B)")
    axis.set_ylabel("top-1 accuracy of the artifact (%)")
    axis.grid(alpha=0.3)
    notes = [f"off the axis (float32): {r['key']['method']}, {r['flatbuffer_bytes'] / 1000:.1f} KB, "
             f"{100 * r['accuracy']:.1f}%" for r in off_axis]
    if reference not in by_method:
        notes.append(f"no dense reference ({reference}) in these results")
    if notes:
        axis.text(0.01, 0.01, "\n".join(notes), transform=axis.transAxes, fontsize=7, va="bottom")
    handles, labels = axis.get_legend_handles_labels()
    axis.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                frameon=False)


def _point(runs: list[dict[str, Any]]) -> tuple[float, float, tuple[float, float]]:
    """(KB, mean accuracy %, (min, max) accuracy %) of one setting's seeds."""
    accuracies = [100 * r["accuracy"] for r in runs]
    return mean(r["flatbuffer_bytes"] / 1000 for r in runs), mean(accuracies), (min(accuracies), max(accuracies))
