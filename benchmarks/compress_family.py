"""The ``compress`` benchmark family: MLPerf's trained ResNet-8 fitted to flash budgets.

Every row starts from MLPerf Tiny's trained ResNet-8 and gets the same recipe
and the same number of fine-tuning epochs (Adam, cosine decay, crop and flip),
so methods compare fairly:

- ``compress``: :func:`tfprune.compress` as a user calls it (L1 selector,
  sensitivity widths, LUT weights with the values per channel chosen by
  ``clusters="auto"``, no distillation).
- ``compress-lut16``: the same with 16 values per channel (4-bit indices), the
  default until ``clusters="auto"``. The ablation, selector and QAT rows below fix
  16 values too, so that each differs from ``compress-lut16`` in one setting.
- ``compress-taylor``, ``compress-qsae``: ``compress-lut16`` with another channel selector.
- ablation, one stage at a time: ``channels`` (sensitivity widths, no weight
  encoding), then ``compress-lut16`` (+ LUT weights); ``+distill`` adds distillation
  from the original model to ``channels``, ``compress`` and the selector rows.
- baselines: ``l1-uniform`` (L1 filters, one share for every group, the classic
  Li et al. recipe) with and without distillation (``l1-uniform+distill``), and
  ``tfmot-cluster``: tfmot's per-channel clustering of the uncut model alone, with
  the most values per channel (16, 8, 4 or 2) whose LUT artifact fits, and
  ``tfmot-prune``: tfmot's magnitude pruning of the uncut model alone, at the
  least sparsity whose DECODE PRUNE artifact fits.
- ``compress-prune``: channels, then 50% magnitude sparsity stored by DECODE PRUNE
  instead of LUT weights; ``compress-lut8`` and ``compress-lut4``: 8 or 4 values per
  channel (3- or 2-bit indices) instead of 16, so the channels stage cuts less;
  ``compress+qat``: the ablation's last step, quantization-aware training (CQAT)
  for one of the epochs, kept where it fits and measures better.

Rows recorded under a name that now means other settings (distillation was on
by default until 2026-11-30, 16 values per channel until 2026-12-01) are renamed
to the method that runs what they ran, and carry ``ran_as``, the name they ran as;
their ``recipe`` states the settings.

Data: CIFAR-10's training images, 45,000 to train and the last 5,000 as the
validation split that sensitivity and selection read; accuracy is the int8
artifact's on the 10,000 test images (the TFLite interpreter on the artifact
without LUT, which TFLite Micro reproduces: ``tflm_agreement`` on 200 test images).

Example:
    >>> sorted(METHODS)[:4]
    ['channels', 'channels+distill', 'compress', 'compress+distill']
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

#: The ablation's, the selectors' and QAT's weight encoding: the one before ``clusters="auto"``.
LUT16: dict[str, Any] = {"clusters": 16}
#: method -> keyword arguments of tfprune.compress
METHODS: dict[str, dict[str, Any]] = {
    "compress": {},
    "compress-lut16": LUT16,
    "compress+distill": {**LUT16, "distill": True},
    "compress-taylor": {**LUT16, "selector": "taylor"},
    "compress-taylor+distill": {**LUT16, "selector": "taylor", "distill": True},
    "compress-qsae": {**LUT16, "selector": "qsae"},
    "compress-qsae+distill": {**LUT16, "selector": "qsae", "distill": True},
    "channels": {"weights": "off"},
    "channels+distill": {"weights": "off", "distill": True},
    "compress-prune": {"weights": "prune"},
    "compress+qat": {**LUT16, "qat": True},
    "compress-lut8": {"clusters": 8},
    "compress-lut4": {"clusters": 4},
    "tfmot-cluster": {"channels": False},
    "tfmot-prune": {"channels": False, "weights": "prune"},
    "l1-uniform": {"allocation": "uniform", "weights": "off"},
    "l1-uniform+distill": {"allocation": "uniform", "weights": "off", "distill": True},
}
VALIDATION_SAMPLES = 5000
AGREEMENT_SAMPLES = 200
#: Where the rows live, under the results folder (apart from the tiers' tables: other fields).
RESULTS = Path("compress") / "resnet8_cifar10.jsonl"
#: The issue's goals: (budget in KB, accuracy at least).
GOALS = ((48, 0.86), (24, 0.85))
#: MLPerf's int8 reference file, the size a user deploys without tfprune.
MLPERF_INT8_BYTES = 98_496


def code_provenance(root: Path) -> dict[str, Any]:
    """The commit, whether the tree is clean, and a fingerprint of the package and this module.

    Example:
        >>> sorted(code_provenance(Path(".")))
        ['clean', 'commit', 'fingerprint']
    """
    from benchmarks import provenance

    files = {path.relative_to(root).as_posix(): provenance.file_hash(path)
             for path in sorted([*root.glob("tfprune/**/*.py"), root / "benchmarks" / "compress_family.py"])}
    # the clean check leaves out the results the runs append to (a tracked file), as the harness's does
    return {"commit": provenance.git_commit(), "clean": provenance.tree_clean(),
            "fingerprint": provenance.fingerprint(files)}


def run(method: str, budget_bytes: int, epochs: int, seed: int = 0, root: Path = Path(".")) -> dict[str, Any]:
    """One row: compress MLPerf's ResNet-8 to ``budget_bytes`` with ``method`` and measure the artifact."""
    import tfprune
    from tfprune.datasets import load_cifar10
    from tfprune.deploy.verify import tflite_accuracy, verify_micro
    from tfprune.models import resnet8

    provenance = code_provenance(root)
    (x_train, y_train), (x_test, y_test) = load_cifar10()
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    train = (x_train[:-VALIDATION_SAMPLES], y_train[:-VALIDATION_SAMPLES].astype(np.int64))
    val = (x_train[-VALIDATION_SAMPLES:], y_train[-VALIDATION_SAMPLES:].astype(np.int64))
    started = time.perf_counter()
    row: dict[str, Any] = {"family": "compress", "method": method, "budget_bytes": budget_bytes, "epochs": epochs,
                           "seed": seed, **provenance, "host": platform.machine(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        result = tfprune.compress(resnet8(weights="mlperf"), train, val, tfprune.Budget(flash=budget_bytes),
                                  epochs=epochs, seed=seed, representative=train[0][:500], **METHODS[method])
    except tfprune.BudgetError as error:
        row.update(fits=False, reason=str(error), seconds=round(time.perf_counter() - started, 1))
        return row
    artifact = result.artifact
    reference = artifact.reference_flatbuffer or artifact.flatbuffer
    agreement = verify_micro(artifact.flatbuffer, reference, x_test[:AGREEMENT_SAMPLES]).top1_agreement
    final = result.report["final"]
    row.update(
        fits=result.meets_budget, flash=final["flash"], arena=final["arena"], macs=final["macs"],
        time_macs_ratio=final["time"], accuracy=round(tflite_accuracy(reference, x_test, y_test), 6),
        val_accuracy=final["accuracy"], tflm_agreement=agreement,
        artifact_sha256=hashlib.sha256(artifact.flatbuffer).hexdigest()[:16],
        recipe=result.report["recipe"],
        stages=[{key: stage[key] for key in ("stage", "did", "epochs", "flash", "arena", "accuracy", "seconds")}
                for stage in result.report["stages"]],
        seconds=round(time.perf_counter() - started, 1))
    return row


def row_problems(row: dict[str, Any]) -> list[str]:
    """What is wrong with a compress row: a field out of range, or a row from a dirty tree.

    Example:
        >>> row_problems({"method": "compress", "budget_bytes": 1024, "fits": True, "flash": 2000,
        ...               "accuracy": 0.5, "tflm_agreement": 1.0, "seconds": 1.0, "clean": True, "commit": "abc"})
        ['flash 2000 is over the budget 1024 in a row that fits']
    """
    problems = []
    if row.get("method") not in METHODS:
        problems.append(f"method {row.get('method')!r} is not a compress method")
    if not row.get("clean") or str(row.get("commit", "")).endswith("-dirty") or not row.get("commit"):
        problems.append("ran on a tree with uncommitted changes; re-run it from a clean checkout")
    if not isinstance(row.get("seconds"), (int, float)) or row["seconds"] < 0:
        problems.append(f"seconds {row.get('seconds')!r} is not >= 0")
    if row.get("fits"):
        if not isinstance(row.get("flash"), int) or row["flash"] <= 0:
            problems.append(f"flash {row.get('flash')!r} is not a positive int")
        elif row["flash"] > row.get("budget_bytes", 0):
            problems.append(f"flash {row['flash']} is over the budget {row.get('budget_bytes')} in a row that fits")
        for name in ("accuracy", "tflm_agreement"):
            if not isinstance(row.get(name), (int, float)) or not 0 <= row[name] <= 1:
                problems.append(f"{name} {row.get(name)!r} is not in [0, 1]")
    return problems


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The compress rows under the results ``folder`` ([] when there are none)."""
    path = Path(folder) / RESULTS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def section(rows: list[dict[str, Any]], fingerprint: str) -> str:
    """The page's ``compress`` section: one table row per run, the goals marked met or not.

    A run whose code fingerprint differs from ``fingerprint`` (the checkout's) is marked with †.

    Example:
        >>> section([], "x")
        ''
    """
    if not rows:
        return ""
    ordered = sorted(rows, key=lambda r: (-r["budget_bytes"], list(METHODS).index(r["method"]), r["seed"]))
    lines = [
        "", "## compress: MLPerf's trained ResNet-8 fitted to a flash budget", "",
        "Every row starts from MLPerf Tiny's trained ResNet-8 and gets the same recipe and epochs "
        "(Adam, cosine decay, crop and flip; `recipe` in each row): 45,000 CIFAR-10 training images "
        "to fine-tune, the last 5,000 to measure sensitivity (MLPerf trained on them, so validation "
        "accuracy reads high); accuracy is the int8 artifact's on the 10,000 test images (TFLite "
        "interpreter on the artifact without DECODE; `TFLM` is TFLite Micro's agreement with it on 200 "
        "test images). Budget 1 KB = 1,024 B. MLPerf's own int8 file is 98,496 B; tfprune's dense int8 "
        "export of the same model is 85,968 B (lean) at 87.02%.", "",
        "| budget | method | epochs | fits | flash B | arena B | accuracy | TFLM | seconds | commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ordered:
        mark = ("" if row.get("fingerprint") == fingerprint else " †") + (" §" if row.get("ran_as") else "")
        if row.get("fits"):
            figures = (f"yes | {row['flash']:,} | {row['arena']:,} | {row['accuracy']:.2%} | "
                       f"{row['tflm_agreement']:.2f}")
        else:
            figures = "no | - | - | - | -"
        lines.append(f"| {row['budget_bytes'] // 1024} KB | {row['method']}{mark} | {row['epochs']} | {figures} | "
                     f"{row['seconds']:,.0f} | {row['commit']} |")
    lines += ["", *_goal_lines(rows),
              "", "† the code changed since the row ran (its fingerprint differs from this checkout's); refresh "
              "with `tools/bench-compress METHOD BUDGET_KB --epochs 8` from a clean checkout.",
              "§ recorded under another name before a default changed (`ran_as` in the row; its `recipe` states "
              "what ran): distillation was on by default until 2026-11-30, 16 values per channel until 2026-12-01.",
              "Reproduce a row: `tools/bench-compress compress 48 --epochs 8` (about 18 minutes on 2 busy cores)."]
    return "\n".join(lines) + "\n"


def _pipeline_rows(rows: list[dict[str, Any]], budget: int) -> tuple[str, list[float]]:
    """The default pipeline's accuracies at ``budget``; where it has no row yet, those of the earlier default
    (``compress-lut16``, then ``compress+distill``), with the method's name."""
    for method in ("compress", "compress-lut16", "compress+distill"):
        found = _accuracies(rows, method, budget)
        if found:
            return method, found
    return "compress", []


def _accuracies(rows: list[dict[str, Any]], method: str, budget: int) -> list[float]:
    """The accuracies of ``method``'s rows that fit ``budget`` (bytes)."""
    return [r["accuracy"] for r in rows if r["method"] == method and r["budget_bytes"] == budget and r.get("fits")]


def _goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["Goals (issue 16):", ""]
    for budget_kb, target in GOALS:
        method, runs = _pipeline_rows(rows, budget_kb * 1024)
        if not runs:
            lines.append(f"- >= {target:.0%} at <= {budget_kb} KB: not measured yet")
            continue
        best = max(runs)
        verdict = "met" if best >= target else f"not met, {100 * (target - best):.2f} points short"
        others = [r for r in rows if r["method"].startswith("compress") and r["budget_bytes"] == budget_kb * 1024
                  and r.get("fits") and r["accuracy"] > best]
        top = max(others, key=lambda r: r["accuracy"]) if others else None
        setting = f"; another setting of the pipeline: {top['accuracy']:.2%}, {top['method']}" if top else ""
        lines.append(f"- >= {target:.0%} at <= {budget_kb} KB: {verdict} ({best:.2%}, {method}{setting})")
    for budget in sorted({r["budget_bytes"] for r in rows}, reverse=True):
        method, ours = _pipeline_rows(rows, budget)
        if not ours:
            continue
        for baseline, name in (("l1-uniform", "L1 filters"), ("tfmot-cluster", "tfmot clustering alone")):
            theirs = _accuracies(rows, baseline, budget)
            if theirs:
                verdict = "above" if max(ours) > max(theirs) else "not above"
                lines.append(f"- {method} {verdict} {name} at {budget // 1024} KB, same epochs: "
                             f"{max(ours):.2%} vs {max(theirs):.2%}")
            elif baseline == "l1-uniform":
                lines.append(f"- L1 filters at {budget // 1024} KB with the same epochs: not measured yet")
    agreements = [r["tflm_agreement"] for r in rows if r.get("fits")]
    if agreements:
        lines.append(f"- TFLite Micro agreement 1.0 on every row: {'met' if min(agreements) == 1.0 else 'not met'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``tools/bench-compress METHOD BUDGET_KB [--epochs N] [--seed S] [--results FILE]``: one row, appended."""
    import argparse

    parser = argparse.ArgumentParser(prog="tools/bench-compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("budget_kb", type=int, help="flash budget in KB (1 KB = 1024 B)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(Path("tools/results") / RESULTS))
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    if not args.allow_dirty and not code_provenance(root)["clean"]:
        print("tools/bench-compress: the tree has uncommitted changes; commit first (results come from "
              "committed code) or pass --allow-dirty for a trial", flush=True)
        return 2
    row = run(args.method, args.budget_kb * 1024, args.epochs, args.seed, root)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as results:
        results.write(json.dumps(row) + "\n")
    print(json.dumps({key: row.get(key) for key in ("method", "budget_bytes", "fits", "flash", "accuracy",
                                                    "tflm_agreement", "seconds")}), flush=True)
    return 0
