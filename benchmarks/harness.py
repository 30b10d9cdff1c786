"""The benchmark harness: prune, train, export, and measure every method the same way.

Each run is keyed by (method, settings, tier, seed) and appended as one JSON line
to a results file; a key already there is skipped, so an interrupted benchmark
resumes (``refresh=True`` re-runs the rows whose code changed since, or is unknown).
Every figure is measured on the deployed artifact: accuracy of the
int8 flatbuffer in the TFLite interpreter on the test split, agreement of the
TFLite Micro interpreter with it on a subset, bytes, arena and host time from
``tfprune.export``'s report, and the timer ticks per inference and the arena of
the firmware on an emulated Cortex-M4 with CMSIS-NN kernels (:func:`tfprune.emulate`),
as a ratio to the dense int8 model's ticks measured in the same run. The artifact is kept beside the results as
``artifacts/<sha256>.tflite``; the row names it by that hash. A result is checked
against :mod:`benchmarks.schema` before it is written, and records the commit,
whether the tree was clean and the code it ran (:mod:`benchmarks.provenance`).

Example:
    >>> from benchmarks.tiers import TIERS
    >>> result_key(Method("dense-int8", "pretrained", lambda *a: a[0]), TIERS["quick"], 0)
    {'method': 'dense-int8', 'settings': '{}', 'tier': 'quick', 'seed': 0}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from benchmarks import provenance, schema
from benchmarks.methods import BenchData, Method, TrainingLedger
from benchmarks.tiers import MLPERF_PRETRAINING_EPOCHS, Tier

MODEL = "resnet8"
DATASET = "cifar10"


#: The folder, beside a results file, that keeps the artifacts its rows were measured on.
ARTIFACTS = "artifacts"

#: Test images each artifact runs on the emulated Cortex-M4; a row records the median ticks. With
#: CMSIS-NN kernels the ticks of one inference differ by under 0.02% between images.
EMULATED_SAMPLES = 3


@dataclass
class RunContext:
    """What one benchmark invocation shares across its runs.

    ``outputs`` are the paths the run writes (results, artifacts): their changes do not
    make the tree unclean. ``code`` holds the hashes of every file the run's methods can
    execute, taken when the run started (what the process may have loaded).
    """

    tier: Tier
    data: BenchData
    dense_ms: float | None = None
    dense_ticks: int | None = None
    outputs: list[Path] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)


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


def artifact_path(results_path: str | os.PathLike, sha256: str) -> Path:
    """Where the artifact of a row of ``results_path`` with this ``flatbuffer_sha256`` is kept."""
    return Path(results_path).parent / ARTIFACTS / f"{sha256}.tflite"


def append_result(path: str | os.PathLike, result: dict[str, Any], artifact: bytes | None = None) -> None:
    """Add one result line, after :func:`benchmarks.schema.validate` (ValueError naming the field).

    With ``artifact`` (the deployed flatbuffer), the row's bytes and hash must be the
    artifact's; it is kept under :data:`ARTIFACTS`. A row with the same key is replaced.
    Files are rewritten through a temporary file, so they are never torn.
    """
    schema.validate(result)
    path = Path(path)
    if artifact is not None:
        _check_artifact(result, artifact)
        write_atomically(artifact_path(path, result["flatbuffer_sha256"]), bytes(artifact))
    key = json.dumps(result["key"], sort_keys=True)
    kept = [line for line in (path.read_text().splitlines() if path.exists() else [])
            if line.strip() and json.dumps(json.loads(line)["key"], sort_keys=True) != key]
    write_atomically(path, "".join(line + "\n" for line in kept + [json.dumps(result, sort_keys=True)]).encode())


def _check_artifact(result: dict[str, Any], artifact: bytes) -> None:
    if result["flatbuffer_bytes"] != len(artifact):
        raise ValueError(f"benchmark result refused: flatbuffer_bytes: {result['flatbuffer_bytes']} is not the "
                         f"artifact's {len(artifact)} B")
    if result.get("flatbuffer_sha256") != hashlib.sha256(artifact).hexdigest():
        raise ValueError("benchmark result refused: flatbuffer_sha256: not the artifact's hash")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder, so it is never torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, path.stat().st_mode if path.exists() else 0o644)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run(
    methods: Iterable[Method],
    tier: Tier,
    results_path: str | os.PathLike,
    seeds: Iterable[int] | None = None,
    progress: bool = True,
    refresh: bool = False,
    stale_only: bool = False,
) -> list[dict[str, Any]]:
    """Run every (method, seed) not yet in ``results_path``; returns the new results.

    ``refresh`` also re-runs the rows whose code changed since, or is unknown; each old row
    is replaced when its new one is written. ``stale_only`` re-runs only those, in the order
    of ``methods``, and adds no new row. Progress is a bar on a terminal and one line
    per row otherwise (``progress=False``: nothing).
    """
    methods = list(methods)
    results_path = Path(results_path)
    recorded = read_results(results_path)
    done = {json.dumps(result["key"], sort_keys=True) for result in recorded
            if not ((refresh or stale_only) and provenance.code_status(result) != "current")}
    wanted = {json.dumps(result["key"], sort_keys=True) for result in recorded} if stale_only else None
    todo = [(method, seed) for method in methods for seed in (seeds or tier.seeds if method.seeded else (0,))
            if (key := json.dumps(result_key(method, tier, seed), sort_keys=True)) not in done
            and (wanted is None or key in wanted)]
    if not todo:
        return []
    require_emulator()
    context = RunContext(tier=tier, data=load_data(tier), outputs=[results_path, results_path.parent / ARTIFACTS],
                         code=_code_files([m for method, _ in todo for m in _modules(method)]))
    context.dense_ms, context.dense_ticks = _dense_int8_reference(context)
    new = []
    bar = tqdm(todo, desc=f"bench {tier.name}", disable=None if progress else True)
    for index, (method, seed) in enumerate(bar, 1):
        bar.set_postfix_str(f"{method.name} {method.key_settings()} seed {seed}")
        result, artifact = run_one(method, seed, context)
        append_result(results_path, result, artifact)
        new.append(result)
        if progress and bar.disable:
            print(f"bench {tier.name} [{index}/{len(todo)}] {_summary_line(result)}", file=sys.stderr, flush=True)
    return new


def require_emulator() -> None:
    """Raise :class:`~tfprune.deploy.emulate.EmulatorUnavailable` unless the emulated Cortex-M4 runs here.

    A benchmark row's time is measured there, so a run without it would write rows
    without their time; the one-line message says what is missing and how to install it.

    Example:
        >>> require_emulator()  # the cross compiler, QEMU and ../shared/tflm are here
    """
    from tfprune.deploy.emulate import EmulatorUnavailable, unavailable_reason

    reason = unavailable_reason("cmsis_nn")
    if reason is not None:
        raise EmulatorUnavailable(f"the benchmark times every artifact on an emulated Cortex-M4, which cannot run "
                                  f"here: {reason} (`make arm-toolchain` installs the compiler and QEMU)")


def _summary_line(result: dict[str, Any]) -> str:
    key = result["key"]
    ratio = result.get("cmsis_nn_time_ratio")
    return (f"{key['method']} {key['settings']} seed {key['seed']}: {result['accuracy']:.2%}, "
            f"{result['flatbuffer_bytes']:,} B, Cortex-M4 time ratio "
            f"{f'{ratio:.2f}' if ratio is not None else 'not measured'}, prune {result['prune_seconds']:.1f} s, "
            f"train {result['train_seconds']:.0f} s")


def run_one(method: Method, seed: int, context: RunContext) -> tuple[dict[str, Any], bytes]:
    """Prune, train and measure one (method, seed): the result and the deployed flatbuffer.

    The commit, the tree's state and the code's file hashes are taken before the method
    runs and again after: a row whose code changed since the run started, or whose tree
    was not clean, is recorded unclean.
    """
    import tensorflow as tf

    modules = _modules(method)
    before = _provenance(modules, context)
    tf.keras.utils.set_random_seed(seed)
    ledger = TrainingLedger()
    data = dataclasses.replace(context.data, ledger=ledger, figures={})
    model = _starting_model(method, seed)
    start = time.perf_counter()
    candidate = method.prune(model, data, context.tier.budget, seed)
    total_seconds = time.perf_counter() - start
    figures, flatbuffer = measure(candidate, method, context)
    after = _provenance(modules, context)
    train_seconds = ledger.seconds + ledger.reused_seconds
    return {
        "key": result_key(method, context.tier, seed),
        "model": MODEL,
        "dataset": DATASET,
        "start": method.start,
        "description": method.description,
        "prune_seconds": round(total_seconds - ledger.seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "train_seconds_reused": round(ledger.reused_seconds, 2),
        "epochs_total": ledger.epochs + (0 if method.start == "scratch" else MLPERF_PRETRAINING_EPOCHS),
        "epochs_this_run": ledger.epochs,
        **figures,
        **({"extra": data.figures} if data.figures else {}),
        "commit": before["commit"],
        "clean": before["clean"] and after["clean"] and before["code"] == after["code"]
                 and all(context.code.get(path) == digest for path, digest in before["code"]["files"].items()),
        "code": before["code"],
        "versions": _versions(),
        "host": platform.machine(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, flatbuffer


def _modules(method: Method) -> list[str]:
    """The modules whose import closure is a row's code: the harness and the method's own."""
    return ["benchmarks.harness", method.prune.__module__] + ([method.model.__module__] if method.model else [])


def _code_files(modules: list[str]) -> dict[str, str]:
    """The files a row's figures depend on: its modules' code and the firmware the emulator compiles."""
    return {**provenance.code_files(modules), **provenance.firmware_files()}


def _provenance(modules: list[str], context: RunContext) -> dict[str, Any]:
    files = _code_files(modules)
    return {"commit": provenance.git_commit(), "clean": provenance.tree_clean(context.outputs),
            "code": {"fingerprint": provenance.fingerprint(files), "files": files}}


def _starting_model(method: Method, seed: int) -> Any:
    from tfprune.models import resnet8

    if method.model is not None:
        return method.model(seed)
    if method.start == "pretrained":
        return resnet8(weights="mlperf")
    if method.start == "scratch":
        return resnet8(seed=seed)
    return None


def measure(candidate: Any, method: Method, context: RunContext) -> tuple[dict[str, Any], bytes]:
    """Export ``candidate`` (a Keras model or a flatbuffer) and measure the artifact.

    Returns the figures and the deployed flatbuffer they were measured on.

    Accuracy runs in the TFLite interpreter on the test split; for a
    LUT-compressed artifact (which the stock interpreter cannot load) on the same
    model exported without compression, whose outputs TFLite Micro reproduces
    exactly. Agreement runs the deployed artifact in TFLite Micro against it.
    Time and the on-target arena come from the artifact's firmware on the
    emulated Cortex-M4 (:func:`emulated_figures`).
    """
    import tfprune
    from tfprune.deploy import verify
    from tfprune.deploy.tflite import convert

    data = context.data
    if isinstance(candidate, (bytes, bytearray)):
        flatbuffer = reference = deployed = bytes(candidate)
        report = tfprune.inspect_flatbuffer(flatbuffer)
        agreement = _micro_agreement(flatbuffer, data.x_agreement)
    elif method.quantization == "float32":
        flatbuffer = reference = deployed = convert(candidate, quantization="float32")
        report = tfprune.inspect_flatbuffer(flatbuffer)
        agreement = _micro_agreement(flatbuffer, data.x_agreement)
    else:
        artifact = tfprune.export(candidate, data.x_calibration, verify_data=data.x_agreement, progress=False)
        flatbuffer, report = artifact.flatbuffer, artifact.report
        agreement = report["verification"]["top1_agreement"]
        reference = artifact.reference_flatbuffer or flatbuffer
        deployed = artifact  # its C sources, so the firmware runs in the arena the export sized
    tflm_ms = report["tflm"].get("ms_per_inference")
    return {
        "accuracy": round(verify.tflite_accuracy(reference, data.x_test, data.y_test), 6),
        "test_samples": len(data.x_test),
        "tflm_agreement": agreement,
        "agreement_samples": len(data.x_agreement),
        "flatbuffer_bytes": report["flatbuffer_bytes"],
        "flatbuffer_sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "weight_bytes": report["weight_bytes"],
        "arena_bytes": report["tflm"].get("arena_bytes"),
        "macs": report["macs"],
        "nonzero_weights": _nonzero_weights(report),
        "quantization": report["quantization"],
        "lut_compressed": bool((report.get("compression") or {}).get("applied")),
        "tflm_ms_host": tflm_ms,
        "tflm_ms_dense_same_run": context.dense_ms,
        "tflm_time_ratio": round(tflm_ms / context.dense_ms, 4) if tflm_ms and context.dense_ms else None,
        **emulated_figures(deployed, data.x_test[:EMULATED_SAMPLES], context.dense_ticks),
    }, bytes(flatbuffer)


def emulated_figures(artifact: Any, x: np.ndarray, dense_ticks: int | None) -> dict[str, Any]:
    """A row's figures from the firmware on the emulated Cortex-M4 with CMSIS-NN kernels.

    ``cmsis_nn_ticks``: median timer ticks per inference over ``x`` (40 emulated
    instructions each: work, not a real core's cycles, so rows are compared by
    ``cmsis_nn_time_ratio``, the ticks over ``dense_ticks``); ``arena_bytes_target``: the
    arena TFLite Micro used there. An artifact the emulator cannot run (another
    target's, or one that does not fit its arena there) gets nulls and
    ``emulation_error`` says why; a missing emulator raises (:func:`require_emulator`).

    Example:
        >>> from tfprune.datasets import data_dir
        >>> fb = (data_dir() / "mlperf_tiny" / "pretrainedResnet_quant.tflite").read_bytes()
        >>> figures = emulated_figures(fb, np.zeros((1, 32, 32, 3), np.float32), dense_ticks=744_414)
        >>> figures["arena_bytes_target"], 0.9 < figures["cmsis_nn_time_ratio"] < 1.1
        (54996, True)
        >>> emulated_figures(b"not a model", np.zeros((1, 32, 32, 3), np.float32), 744_414)["cmsis_nn_ticks"] is None
        True
    """
    from tfprune.deploy.emulate import emulate

    try:
        result = emulate(artifact, x, "cmsis_nn")
    except (ValueError, TypeError, RuntimeError) as err:  # not EmulatorUnavailable: that fails the run
        return {"cmsis_nn_ticks": None, "cmsis_nn_ticks_dense_same_run": dense_ticks, "cmsis_nn_time_ratio": None,
                "arena_bytes_target": None, "emulated_on": None,
                "emulation_error": " ".join(str(err).split()) or type(err).__name__}
    ticks = result.ticks_per_inference
    return {"cmsis_nn_ticks": ticks, "cmsis_nn_ticks_dense_same_run": dense_ticks,
            "cmsis_nn_time_ratio": round(ticks / dense_ticks, 4) if ticks and dense_ticks else None,
            "arena_bytes_target": result.arena_bytes, "emulated_on": result.measured_on, "emulation_error": None}


def _micro_agreement(flatbuffer: bytes, x: np.ndarray) -> float:
    from tfprune.deploy.verify import verify_micro

    return verify_micro(flatbuffer, flatbuffer, x).top1_agreement


def _nonzero_weights(report: dict[str, Any]) -> int | None:
    layers = report["layers"]
    if any(layer["weight_zeros"] is None for layer in layers):
        return None
    return int(sum(layer["weights"] - layer["weight_zeros"] for layer in layers))


def _dense_int8_reference(context: RunContext) -> tuple[float, int]:
    """The dense int8 ResNet-8's host TFLite Micro time and emulated CMSIS-NN ticks, measured in this
    invocation (the same code, firmware and library as every row of it), for ratios."""
    import tfprune
    from tfprune.deploy.emulate import emulate
    from tfprune.models import resnet8

    artifact = tfprune.export(resnet8(weights="mlperf"), context.data.x_calibration, verify=False, progress=False)
    ticks = emulate(artifact, context.data.x_test[:EMULATED_SAMPLES], "cmsis_nn").ticks_per_inference
    return artifact.report["tflm"]["ms_per_inference"], ticks


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
