"""The ``compress`` benchmark family: MLPerf's trained ResNet-8 fitted to flash budgets.

Every row starts from MLPerf Tiny's trained ResNet-8 and gets the same recipe
and the same number of fine-tuning epochs (Adam, cosine decay, crop and flip),
so methods compare fairly:

- ``compress``: :func:`tfprune.compress` as a user calls it (L1 selector,
  sensitivity widths, distillation, 4-bit LUT weights).
- ``compress-taylor``, ``compress-qsae``: the same with another channel selector.
- ablation, one stage at a time: ``channels`` (sensitivity widths, no
  distillation, no weight encoding), ``channels+distill``, then ``compress``.
- baselines: ``l1-uniform`` (L1 filters, one share for every group, the classic
  Li et al. recipe) with and without distillation (``l1-uniform+distill``).

Data: CIFAR-10's training images, 45,000 to train and the last 5,000 as the
validation split that sensitivity and selection read; accuracy is the int8
artifact's on the 10,000 test images (the TFLite interpreter on the artifact
without LUT, which TFLite Micro reproduces: ``tflm_agreement`` on 200 test images).

Example:
    >>> sorted(METHODS)[:3]
    ['channels', 'channels+distill', 'compress']
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

#: method -> keyword arguments of tfprune.compress
METHODS: dict[str, dict[str, Any]] = {
    "compress": {},
    "compress-taylor": {"selector": "taylor"},
    "compress-qsae": {"selector": "qsae"},
    "channels": {"distill": False, "weights": "off"},
    "channels+distill": {"weights": "off"},
    "l1-uniform": {"allocation": "uniform", "distill": False, "weights": "off"},
    "l1-uniform+distill": {"allocation": "uniform", "weights": "off"},
}
VALIDATION_SAMPLES = 5000
AGREEMENT_SAMPLES = 200


def code_provenance(root: Path) -> dict[str, Any]:
    """The commit, whether the tree is clean, and a fingerprint of the package and this module.

    Example:
        >>> sorted(code_provenance(Path(".")))
        ['clean', 'commit', 'fingerprint']
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    digest = hashlib.sha256()
    for path in sorted([*root.glob("tfprune/**/*.py"), root / "benchmarks" / "compress_family.py"]):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "clean": git("status", "--porcelain", "--untracked-files=no") == "",
            "fingerprint": digest.hexdigest()[:16]}


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


def main(argv: list[str] | None = None) -> int:
    """``tools/bench-compress METHOD BUDGET_KB [--epochs N] [--seed S] [--results FILE]``: one row, appended."""
    import argparse

    parser = argparse.ArgumentParser(prog="tools/bench-compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("budget_kb", type=int, help="flash budget in KB (1 KB = 1024 B)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="tools/results/compress_resnet8_cifar10.jsonl")
    parser.add_argument("--allow-dirty", action="store_true", help="run from a tree with uncommitted changes")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    if not args.allow_dirty and not code_provenance(root)["clean"]:
        print("tools/bench-compress: the tree has uncommitted changes; commit first (results come from "
              "committed code) or pass --allow-dirty for a trial", flush=True)
        return 2
    row = run(args.method, args.budget_kb * 1024, args.epochs, args.seed, root)
    with open(args.results, "a") as results:
        results.write(json.dumps(row) + "\n")
    print(json.dumps({key: row.get(key) for key in ("method", "budget_bytes", "fits", "flash", "accuracy",
                                                    "tflm_agreement", "seconds")}), flush=True)
    return 0
