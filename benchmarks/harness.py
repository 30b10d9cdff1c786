"""The benchmark harness: prune, train, export, and measure every method the same way.

Each run is keyed by (method, settings, tier, seed) and appended as one JSON line
to a results file; a key already there is skipped, so an interrupted benchmark
resumes. Every figure is measured on the deployed artifact: accuracy of the
int8 flatbuffer in the TFLite interpreter on the test split, agreement of the
TFLite Micro interpreter with it on a subset, bytes, arena and time from
``tfprune.export``'s report.

Example:
    >>> from benchmarks.tiers import TIERS
    >>> result_key(Method("dense-int8", "pretrained", lambda *a: a[0]), TIERS["quick"], 0)
    {'method': 'dense-int8', 'settings': '{}', 'tier': 'quick', 'seed': 0}
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from benchmarks.methods import BenchData, Method, TrainingLedger
from benchmarks.tiers import MLPERF_PRETRAINING_EPOCHS, Tier

MODEL = "resnet8"
DATASET = "cifar10"


@dataclass
class RunContext:
    """What one benchmark invocation shares across its runs."""

    tier: Tier
    data: BenchData
    dense_ms: float | None = None


def result_key(method: Method, tier: Tier, seed: int) -> dict[str, Any]:
    """The identity of a run; the git commit is recorded beside it, not in it."""
    return {"method": method.name, "settings": method.key_settings(), "tier": tier.name, "seed": seed}


def load_data(tier: Tier, seed: int = 0) -> BenchData:
    """CIFAR-10 for ``tier``: raw 0..255 float32 pixels, as MLPerf's ResNet-8 takes them.

    Subsets are the first images of each split (the splits are already shuffled);
    500 training images calibrate int8.
    """
    from tfprune.datasets import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10()
    x_train, y_train = x_train[: tier.train_samples], y_train[: tier.train_samples]
    x_test, y_test = x_test[: tier.test_samples], y_test[: tier.test_samples]
    return BenchData(
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.int64),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.int64),
        x_calibration=x_train[:500].astype(np.float32),
        x_agreement=x_test[: tier.agreement_samples].astype(np.float32),
    )


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every result line of a results file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_result(path: str | os.PathLike, result: dict[str, Any]) -> None:
    """Add one result line; the file is rewritten through a temporary file so it is never torn."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text() if path.exists() else ""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        out.write(lines + json.dumps(result, sort_keys=True) + "\n")
    os.replace(temporary, path)


def run(
    methods: Iterable[Method],
    tier: Tier,
    results_path: str | os.PathLike,
    seeds: Iterable[int] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every (method, seed) not yet in ``results_path``; returns the new results."""
    methods = list(methods)
    done = {json.dumps(result["key"], sort_keys=True) for result in read_results(results_path)}
    todo = [(method, seed) for method in methods for seed in (seeds or tier.seeds if method.seeded else (0,))
            if json.dumps(result_key(method, tier, seed), sort_keys=True) not in done]
    if not todo:
        return []
    context = RunContext(tier=tier, data=load_data(tier))
    context.dense_ms = _dense_int8_ms(context)
    new = []
    bar = tqdm(todo, desc=f"bench {tier.name}", disable=not progress)
    for method, seed in bar:
        bar.set_postfix_str(f"{method.name} {method.key_settings()} seed {seed}")
        result = run_one(method, seed, context)
        append_result(results_path, result)
        new.append(result)
    return new


def run_one(method: Method, seed: int, context: RunContext) -> dict[str, Any]:
    """Prune, train and measure one (method, seed)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    ledger = TrainingLedger()
    data = dataclasses.replace(context.data, ledger=ledger, figures={})
    model = _starting_model(method, seed)
    start = time.perf_counter()
    candidate = method.prune(model, data, context.tier.budget, seed)
    total_seconds = time.perf_counter() - start
    figures = measure(candidate, method, context)
    return {
        "key": result_key(method, context.tier, seed),
        "model": MODEL,
        "dataset": DATASET,
        "start": method.start,
        "description": method.description,
        "prune_seconds": round(total_seconds - ledger.seconds, 2),
        "train_seconds": round(ledger.seconds, 2),
        "epochs_total": ledger.epochs + (0 if method.start == "scratch" else MLPERF_PRETRAINING_EPOCHS),
        "epochs_this_run": ledger.epochs,
        **figures,
        **({"extra": data.figures} if data.figures else {}),
        "commit": _git_commit(),
        "versions": _versions(),
        "host": platform.machine(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _starting_model(method: Method, seed: int) -> Any:
    from tfprune.models import resnet8

    if method.model is not None:
        return method.model(seed)
    if method.start == "pretrained":
        return resnet8(weights="mlperf")
    if method.start == "scratch":
        return resnet8(seed=seed)
    return None


def measure(candidate: Any, method: Method, context: RunContext) -> dict[str, Any]:
    """Export ``candidate`` (a Keras model or a flatbuffer) and measure the artifact.

    Accuracy runs in the TFLite interpreter on the test split; for a
    LUT-compressed artifact (which the stock interpreter cannot load) on the same
    model exported without compression, whose outputs TFLite Micro reproduces
    exactly. Agreement runs the deployed artifact in TFLite Micro against it.
    """
    import tfprune
    from tfprune.deploy import verify
    from tfprune.deploy.tflite import convert

    data = context.data
    if isinstance(candidate, (bytes, bytearray)):
        flatbuffer = reference = bytes(candidate)
        report = tfprune.inspect_flatbuffer(flatbuffer)
        agreement = _micro_agreement(flatbuffer, data.x_agreement)
    elif method.quantization == "float32":
        flatbuffer = reference = convert(candidate, quantization="float32")
        report = tfprune.inspect_flatbuffer(flatbuffer)
        agreement = _micro_agreement(flatbuffer, data.x_agreement)
    else:
        artifact = tfprune.export(candidate, data.x_calibration, verify_data=data.x_agreement, progress=False)
        flatbuffer, report = artifact.flatbuffer, artifact.report
        agreement = report["verification"]["top1_agreement"]
        reference = artifact.reference_flatbuffer or flatbuffer
    tflm_ms = report["tflm"].get("ms_per_inference")
    return {
        "accuracy": round(verify.tflite_accuracy(reference, data.x_test, data.y_test), 6),
        "test_samples": len(data.x_test),
        "tflm_agreement": agreement,
        "agreement_samples": len(data.x_agreement),
        "flatbuffer_bytes": report["flatbuffer_bytes"],
        "weight_bytes": report["weight_bytes"],
        "arena_bytes": report["tflm"].get("arena_bytes"),
        "macs": report["macs"],
        "nonzero_weights": _nonzero_weights(report),
        "quantization": report["quantization"],
        "lut_compressed": bool((report.get("compression") or {}).get("applied")),
        "tflm_ms_host": tflm_ms,
        "tflm_ms_dense_same_run": context.dense_ms,
        "tflm_time_ratio": round(tflm_ms / context.dense_ms, 4) if tflm_ms and context.dense_ms else None,
    }


def _micro_agreement(flatbuffer: bytes, x: np.ndarray) -> float:
    from tfprune.deploy.verify import verify_micro

    return verify_micro(flatbuffer, flatbuffer, x).top1_agreement


def _nonzero_weights(report: dict[str, Any]) -> int | None:
    layers = report["layers"]
    if any(layer["weight_zeros"] is None for layer in layers):
        return None
    return int(sum(layer["weights"] - layer["weight_zeros"] for layer in layers))


def _dense_int8_ms(context: RunContext) -> float:
    """TFLite Micro time of the dense int8 ResNet-8, measured in this invocation, for ratios."""
    import tfprune
    from tfprune.models import resnet8

    artifact = tfprune.export(resnet8(weights="mlperf"), context.data.x_calibration, verify=False, progress=False)
    return artifact.report["tflm"]["ms_per_inference"]


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["tfprune", "tensorflow", "tensorflow-model-optimization", "larq", "larq-compute-engine",
             "tflite-micro", "numpy"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
