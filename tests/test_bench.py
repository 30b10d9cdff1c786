"""The benchmark harness: resumable runs measured on artifacts, and a page generated from results."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import catalog, checks, harness, provenance, schema
from benchmarks.cli import main as bench_main
from benchmarks.markdown import render
from benchmarks.methods import BenchData, Budget, Method, fit_once
from benchmarks.tiers import Tier

ROOT = Path(__file__).resolve().parents[1]

TINY = Tier("tiny", train_samples=64, test_samples=40, agreement_samples=8,
            budget=Budget(finetune_epochs=1, scratch_epochs=1), seeds=(0,), description="test")


def fake_result(method: str, seed: int, accuracy: float, flatbuffer: int, settings: str = "{}") -> dict:
    """A result that passes the schema; its code is the harness as it is now."""
    return {"key": {"method": method, "settings": settings, "tier": "standard", "seed": seed},
            "model": "resnet8", "dataset": "cifar10", "start": "pretrained", "description": "", "accuracy": accuracy,
            "test_samples": 100, "tflm_agreement": 1.0, "agreement_samples": 10, "flatbuffer_bytes": flatbuffer,
            "weight_bytes": max(flatbuffer - 1000, 0), "arena_bytes": 50_000, "macs": 1_000, "quantization": "int8",
            "lut_compressed": False, "tflm_time_ratio": 1.0, "tflm_ms_host": 10.0, "tflm_ms_dense_same_run": 10.0,
            "prune_seconds": 1.0, "train_seconds": 100.0, "epochs_total": 510, "epochs_this_run": 10,
            "nonzero_weights": 5, "commit": "abc1234", "clean": True, "code": harness_code(), "versions": {},
            "host": "x86_64", "timestamp": "2026-01-01T00:00:00Z", **emulated(500_000)}


def emulated(ticks: int | None, dense: int = 1_000_000, error: str | None = None) -> dict:
    """A row's figures from the emulated Cortex-M4 (nulls and ``error`` when ``ticks`` is None)."""
    return {"cmsis_nn_ticks": ticks, "cmsis_nn_ticks_dense_same_run": dense,
            "cmsis_nn_time_ratio": round(ticks / dense, 4) if ticks else None,
            "arena_bytes_target": 45_000 if ticks else None, "emulated_on": "QEMU test" if ticks else None,
            "emulation_error": error}


def without_emulation(result: dict) -> dict:
    """The row as the benchmark recorded it before it ran the emulator."""
    return {name: value for name, value in result.items() if name not in schema.EMULATION}


def harness_code() -> dict:
    files = {path: provenance.file_hash(ROOT / path) for path in ("benchmarks/harness.py", "benchmarks/methods.py")}
    return {"fingerprint": provenance.fingerprint(files), "files": files}


def write_results(folder: Path, *results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "resnet8_cifar10_standard.jsonl"
    path.write_text("".join(json.dumps(result, sort_keys=True) + "\n" for result in results))
    return path


def check(capsys, folder: Path, page: Path) -> tuple[int, str]:
    code = bench_main(["--check", "--results", str(folder), "--markdown", str(page)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_harness_measures_artifacts_and_resumes(tmp_path):
    path = tmp_path / "results.jsonl"
    methods = catalog.methods(["mlperf-int8-reference", "dense-int8"])
    first = harness.run(methods, TINY, path, progress=False)
    assert [result["key"]["method"] for result in first] == ["mlperf-int8-reference", "dense-int8"]
    reference, dense = first
    assert reference["flatbuffer_bytes"] == 98_496 and reference["arena_bytes"] == 55_984
    assert dense["macs"] == reference["macs"] == 12_501_632
    assert dense["tflm_agreement"] == 1.0 and dense["test_samples"] == 40 and dense["agreement_samples"] == 8
    assert 0.6 < dense["accuracy"] <= 1.0, "MLPerf's trained ResNet-8 is far above chance"
    assert dense["epochs_total"] == 500 and dense["commit"] and dense["versions"]["tensorflow"] == importlib.metadata.version("tensorflow")
    # each row names its artifact, kept beside the results, and the code it ran
    artifact = harness.artifact_path(path, dense["flatbuffer_sha256"]).read_bytes()
    assert len(artifact) == dense["flatbuffer_bytes"] and hashlib.sha256(artifact).hexdigest() == dense[
        "flatbuffer_sha256"]
    assert reference["flatbuffer_sha256"] == hashlib.sha256(
        (ROOT.parent / "shared/data/mlperf_tiny/pretrainedResnet_quant.tflite").read_bytes()).hexdigest()
    files = dense["code"]["files"]
    assert {"benchmarks/harness.py", "benchmarks/catalog.py", "tfprune/deploy/pipeline.py"} <= set(files)
    assert dense["code"]["fingerprint"] == provenance.fingerprint(files) and isinstance(dense["clean"], bool)
    # time on the emulated Cortex-M4, against the dense model of the same run; the firmware is part of the code
    assert "firmware/cortex_m/harness.cc" in files
    for row in (reference, dense):
        assert row["cmsis_nn_ticks"] > 0 and row["emulation_error"] is None and "QEMU" in row["emulated_on"]
        assert row["cmsis_nn_ticks_dense_same_run"] == dense["cmsis_nn_ticks_dense_same_run"] > 0
        assert row["cmsis_nn_time_ratio"] == round(row["cmsis_nn_ticks"] / row["cmsis_nn_ticks_dense_same_run"], 4)
    assert 0 < dense["arena_bytes_target"] <= 1.1 * dense["arena_bytes"], "it ran in the export's kTensorArenaSize"
    assert harness.run(methods, TINY, path, progress=False) == [], "runs already present are skipped"
    assert len(harness.read_results(path)) == 2
    # stale_only: the row whose code is unknown runs again in place; a method with no row adds none
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in (reference, {**dense, "code": None})))
    again = harness.run(catalog.methods(["dense-float", "dense-int8"]), TINY, path, progress=False, stale_only=True)
    assert [result["key"]["method"] for result in again] == ["dense-int8"] and again[0]["code"]
    assert sorted(row["key"]["method"] for row in harness.read_results(path)) == ["dense-int8", "mlperf-int8-reference"]


def test_a_result_out_of_the_schema_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "results.jsonl"
    good = fake_result("dense-int8", 0, 0.87, 95_000)
    for field, value in [("prune_seconds", -207.4), ("accuracy", 1.2), ("tflm_agreement", -0.1),
                         ("flatbuffer_bytes", 0), ("epochs_total", -1), ("clean", "yes"), ("cmsis_nn_ticks", 0),
                         ("cmsis_nn_ticks", -744_414), ("cmsis_nn_ticks", 7.5e5), ("cmsis_nn_time_ratio", 0),
                         ("cmsis_nn_time_ratio", -0.6), ("cmsis_nn_ticks_dense_same_run", 0)]:
        with pytest.raises(ValueError, match=f"refused: {field}: "):
            harness.append_result(path, dict(good, **{field: value}))
    with pytest.raises(ValueError, match="flatbuffer_bytes: 95000 is not the artifact's 94999 B"):
        harness.append_result(path, good, artifact=b"x" * 94_999)
    for figures, problem in [({"cmsis_nn_time_ratio": 0.9}, "cmsis_nn_time_ratio: 0.9 is not 500000 / 1000000"),
                             (emulated(None), "cmsis_nn_ticks: null without an emulation_error"),
                             ({"emulation_error": "no QEMU"}, "emulation_error: given beside 500000 ticks")]:
        with pytest.raises(ValueError, match=f"refused: {problem}"):
            harness.append_result(path, dict(good, **figures))
    with pytest.raises(ValueError, match="refused: cmsis_nn_time_ratio: missing beside cmsis_nn_ticks"):
        harness.append_result(path, {k: v for k, v in good.items() if k != "cmsis_nn_time_ratio"})
    assert not path.exists(), "nothing was written"
    harness.append_result(path, dict(good, **emulated(None, error="this artifact has no C sources")))
    harness.append_result(path, without_emulation(good))  # a row recorded before the emulator
    harness.append_result(path, good)
    harness.append_result(path, dict(good, accuracy=0.5))
    assert [r["accuracy"] for r in harness.read_results(path)] == [0.5], "a row with the same key is replaced"


def test_rows_sharing_a_runs_training_book_it_as_reused_not_spent():
    import tensorflow as tf

    def model():
        tf.keras.utils.set_random_seed(0)
        return tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])

    x = np.random.default_rng(0).random((32, 4)).astype(np.float32)
    y = np.arange(32) % 3
    cache: dict = {}
    first, second = (BenchData(x, y, x, y, x, x, run_cache=cache) for _ in range(2))
    trained = fit_once(model(), first, 2, Budget(1, 2), 0, key="dense")
    loaded = fit_once(model(), second, 2, Budget(1, 2), 0, key="dense")
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), loaded.get_weights()))
    # bookkeeping, not timing: the second row spent no training, so the harness subtracts none from its
    # wall time; the training its artifact received is booked as reused, equal to what the first row spent
    assert first.ledger.reused_seconds == 0 and first.ledger.epochs == 2
    assert second.ledger.seconds == 0 and second.ledger.epochs == 2
    assert second.ledger.reused_seconds == first.ledger.seconds
    fresh = BenchData(x, y, x, y, x, x)  # another run: its own cache, so it trains
    fit_once(model(), fresh, 2, Budget(1, 2), 0, key="dense")
    assert fresh.ledger.reused_seconds == 0 and fresh.ledger.epochs == 2


def test_check_fails_on_a_negative_duration(tmp_path, capsys):
    folder, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_results(folder, fake_result("dense-int8", 0, 0.87, 95_000))
    assert bench_main(["--render", "--results", str(folder), "--markdown", str(page)]) == 0
    assert check(capsys, folder, page)[0] == 0
    write_results(folder, dict(fake_result("dense-int8", 0, 0.87, 95_000), prune_seconds=-207.4))
    code, output = check(capsys, folder, page)
    assert code == 1 and "resnet8_cifar10_standard.jsonl:1: prune_seconds: -207.4 is below 0" in output


def test_check_fails_on_a_byte_count_that_is_not_the_artifacts(tmp_path, capsys):
    folder, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    flatbuffer = (ROOT.parent / "shared/data/mlperf_tiny/pretrainedResnet_quant.tflite").read_bytes()
    result = dict(fake_result("mlperf-int8-reference", 0, 0.87, len(flatbuffer)),
                  flatbuffer_sha256=hashlib.sha256(flatbuffer).hexdigest())
    harness.append_result(write_results(folder), result, artifact=flatbuffer)
    assert bench_main(["--render", "--results", str(folder), "--markdown", str(page)]) == 0
    assert check(capsys, folder, page)[0] == 0
    write_results(folder, dict(result, flatbuffer_bytes=len(flatbuffer) - 16))
    code, output = check(capsys, folder, page)
    assert code == 1 and f"flatbuffer_bytes: {len(flatbuffer) - 16} is not its artifact's {len(flatbuffer)} B" in output
    write_results(folder, dict(result, weight_bytes=len(flatbuffer) + 1))
    code, output = check(capsys, folder, page)
    assert code == 1 and "weight_bytes" in output and "more than the whole flatbuffer" in output


def test_check_fails_on_a_row_from_a_dirty_tree(tmp_path, capsys):
    folder, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_results(folder, fake_result("dense-int8", 0, 0.87, 95_000))
    assert bench_main(["--render", "--results", str(folder), "--markdown", str(page)]) == 0
    for dirty in [{"clean": False}, {"commit": "1cb61bd-dirty", "clean": False}]:
        write_results(folder, dict(fake_result("dense-int8", 0, 0.87, 95_000), **dirty))
        code, output = check(capsys, folder, page)
        assert code == 1 and "ran on a tree with uncommitted changes" in output


def test_check_passes_on_the_committed_results(capsys):
    code = bench_main(["--check"])  # what CI runs: the repository's results and page
    output = capsys.readouterr()
    assert code == 0, output.err
    assert "resnet8 on cifar10, standard tier:" in output.out and f"{ROOT / 'BENCHMARKS.md'} matches" in output.out


def test_rows_whose_code_changed_are_marked_and_reported(tmp_path, capsys):
    folder, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    current = fake_result("dense-int8", 0, 0.87, 95_000)
    changed = fake_result("l1-filters", 0, 0.80, 40_000, '{"sparsity": 0.5}')
    changed["code"] = {"fingerprint": "0" * 16, "files": {"benchmarks/harness.py": "0" * 12}}
    unknown = dict(fake_result("tfmot-magnitude", 0, 0.86, 95_000, '{"sparsity": 0.5}'), code=None)
    write_results(folder, current, changed, unknown)
    assert bench_main(["--render", "--results", str(folder), "--markdown", str(page)]) == 0
    text = page.read_text()
    assert "| dense-int8 |" in text and "| l1-filters \u2020 |" in text and "| tfmot-magnitude \u2021 |" in text
    assert "Rows (3) by commit, oldest first: abc1234 (3)" in text
    assert "1 rows ran the code of this checkout, 1 code that has changed since" in text
    assert "refresh them with `tools/bench --tier standard --refresh`" in text
    code, output = check(capsys, folder, page)
    assert code == 0, "a stale row is reported, not a failure"
    assert 'changed since: l1-filters {"sparsity": 0.5} seed 0 (benchmarks/harness.py)' in output


def test_the_plot_has_a_panel_per_family(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks.plots import family, plot_pareto

    results = [fake_result("dense-int8", 0, 0.87, 95_000), dict(fake_result("dense-scratch", 0, 0.6, 95_000),
                                                                   start="scratch"),
               dict(fake_result("bnn-dense", 0, 0.55, 47_000, '{"model": "binary_resnet8"}'), start="scratch")]
    assert [family(r)[0] for r in results] == ["fine-tuned", "scratch", "binary"]
    path = plot_pareto(results, tmp_path / "plot.png", "test")
    image = matplotlib.pyplot.imread(path)
    assert image.shape[1] > 2 * image.shape[0], "three panels side by side"


def test_page_aggregates_seeds_and_is_a_function_of_the_results():
    results = [fake_result("dense-int8", 0, 0.87, 95_000),
               fake_result("l1-filters", 0, 0.80, 40_000, '{"sparsity": 0.5}'),
               fake_result("l1-filters", 1, 0.82, 42_000, '{"sparsity": 0.5}')]
    page = render(results)
    assert page == render(list(reversed(results)))
    row = next(line for line in page.splitlines() if line.startswith("| l1-filters"))
    assert "sparsity=0.5" in row and "| 2 |" in row and "81.00% [80.00%-82.00%]" in row
    assert "41,000 [40,000-42,000]" in row
    assert "## resnet8 on cifar10, standard tier" in page


def test_quick_tier_checks_what_users_rely_on():
    dense = fake_result("dense-int8", 0, 0.87, 95_000)
    tfmot = fake_result("tfmot-magnitude", 0, 0.86, 27_000, '{"sparsity": 0.9}')
    l1 = fake_result("l1-filters", 0, 0.7, 40_000)
    assert checks.quick_tier_failure([dense, tfmot, l1]) is None
    # tfmot's zeros are PRUNE-encoded: an artifact as large as the dense one means they were not
    assert "not smaller" in checks.quick_tier_failure([dense, dict(tfmot, flatbuffer_bytes=95_100)])
    assert "not smaller" in checks.quick_tier_failure([dense, dict(l1, flatbuffer_bytes=95_000)])
    assert "TFLite Micro" in checks.quick_tier_failure([dense, dict(l1, tflm_agreement=None)])
    assert "emulated Cortex-M4: no QEMU" in checks.quick_tier_failure([dense, dict(l1, **emulated(None, error="no QEMU"))])
    assert "no cmsis_nn_ticks" in checks.quick_tier_failure([dense, without_emulation(l1)])


def test_check_fails_on_a_stale_page(tmp_path, capsys):
    results = tmp_path / "results"
    write_results(results, fake_result("dense-int8", 0, 0.87, 1))
    page = tmp_path / "BENCHMARKS.md"
    assert bench_main(["--render", "--results", str(results), "--markdown", str(page)]) == 0
    assert (results / "pareto_resnet8_cifar10_standard.png").stat().st_size > 1000
    assert bench_main(["--check", "--results", str(results), "--markdown", str(page)]) == 0
    page.write_text(page.read_text().replace("87.00%", "99.00%"))
    assert bench_main(["--check", "--results", str(results), "--markdown", str(page)]) == 1
    assert "stale" in capsys.readouterr().err


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown benchmark method"):
        catalog.methods(["magic"])


def test_quick_tier_checks_that_reconvene_is_smaller_than_the_dense_model():
    dense = fake_result("dense-int8", 0, 0.87, 95_000)
    settings = '{"score": "synflow", "sparsity": 0.9}'
    assert checks.quick_tier_failure([dense, fake_result("reconvene", 0, 0.5, 30_000, settings)]) is None
    failure = checks.quick_tier_failure([dense, fake_result("reconvene", 0, 0.5, 96_000, settings)])
    assert failure and "not smaller than the dense 95000 B" in failure


def test_plugin_rows_build_their_own_model_and_name_their_tiers(tmp_path):
    rows = catalog.methods(["dense-scratch", "pai-unstructured", "reconvene"])
    assert {m.key_settings() for m in rows if "quick" in m.tiers and m.name != "dense-scratch"} == {
        '{"score": "synflow", "sparsity": 0.9}'}
    vgg = next(m for m in rows if m.model is not None and json.loads(m.key_settings()).get("model") == "small_vgg")
    assert vgg.tiers == ("full",) and vgg.model(0).name == "small_vgg"
    summary = catalog.summaries([
        fake_result("pai-unstructured", 0, 0.700, 95_000, '{"score": "snip", "sparsity": 0.75}'),
        fake_result("reconvene", 0, 0.705, 19_000, '{"score": "snip", "sparsity": 0.75}')])
    assert any("5.00x smaller" in text for text in summary)


def test_the_page_carries_the_drift_table_and_plot_and_goes_stale_when_it_changes(tmp_path):
    results, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    results.mkdir()
    (results / "x.jsonl").write_text(json.dumps(fake_result("dense-int8", 0, 0.87, 95_000)) + "\n")
    (results / "drift_cifar10_quick.md").write_text("| arm | clean |\n|---|---|\n| dense | 80.0% |\n")
    (results / "drift_cifar10_quick.png").write_bytes(b"png")
    assert bench_main(["--render", "--results", str(results), "--markdown", str(page)]) == 0
    text = page.read_text()
    assert "## QSAE drift scenario, quick tier" in text and "| dense | 80.0% |" in text
    assert "(results/drift_cifar10_quick.png)" in text
    (results / "drift_cifar10_quick.md").write_text("| arm | clean |\n|---|---|\n| dense | 70.0% |\n")
    assert bench_main(["--check", "--results", str(results), "--markdown", str(page)]) == 1


def test_the_time_column_is_the_emulated_ratio_and_never_estimated():
    dense = fake_result("dense-int8", 0, 0.87, 95_000)
    l1 = [dict(fake_result("l1-filters", seed, 0.8, 54_000, '{"sparsity": 0.5}'), **emulated(ticks))
          for seed, ticks in ((0, 451_705), (1, 451_801))]
    old = without_emulation(fake_result("tfmot-magnitude", 0, 0.86, 95_000, '{"sparsity": 0.5}'))
    lce = dict(fake_result("bnn-dense", 0, 0.55, 33_000), **emulated(None, error="this artifact has no C sources"))
    partial = [fake_result("qsae", 0, 0.7, 50_000), without_emulation(fake_result("qsae", 1, 0.7, 50_000))]
    page = render([dense, *l1, old, lce, *partial])
    assert "| arena | arena M4 | MACs | M4 ticks | time ratio | host ms |" in page
    rows = {line.split(" | ")[0][2:]: line for line in page.splitlines() if line.startswith("| ") and "---" not in line}
    assert "| 45,000 | 1,000 | 451,753 [451,705-451,801] | 0.45 [0.45-0.45] | 10.00 |" in rows["l1-filters"]
    assert "| not measured | 1,000 | not measured | not measured | 10.00 |" in rows["tfmot-magnitude"]
    assert "| n/a | 1,000 | n/a | n/a |" in rows["bnn-dense"]
    assert "| 500,000 (1 of 2 seeds) | 0.50 (1 of 2 seeds) |" in rows["qsae"]
    assert "Time ratios: 4 of 7 rows ran on the emulated Cortex-M4 (QEMU test)." in page
    assert "Not runnable there: bnn-dense (-, seed 0): this artifact has no C sources." in page


def test_a_row_gets_ticks_from_a_tiny_artifact_or_says_why_not(shared_data):
    import tensorflow as tf

    from tfprune.datasets import load_mnist

    tf.keras.utils.set_random_seed(0)
    (x, y), _ = load_mnist(shared_data / "mnist.npz")
    x, y = x[:64].astype(np.float32), y[:64].astype(np.int64)
    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Conv2D(4, 3, strides=2),
                                 tf.keras.layers.ReLU(), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
    data = BenchData(x, y, x[:40], y[:40], x[:32], x[:8])
    context = harness.RunContext(tier=TINY, data=data, dense_ms=1.0, dense_ticks=100_000)
    figures, flatbuffer = harness.measure(model, Method("tiny", "pretrained", lambda *a: a[0]), context)
    assert figures["cmsis_nn_ticks"] > 0 and figures["emulation_error"] is None
    assert figures["cmsis_nn_time_ratio"] == round(figures["cmsis_nn_ticks"] / 100_000, 4)
    assert figures["arena_bytes_target"] > 0 and figures["flatbuffer_sha256"] == hashlib.sha256(flatbuffer).hexdigest()
    result = {**fake_result("tiny", 0, 0.5, len(flatbuffer)), **figures, "test_samples": 40, "agreement_samples": 8}
    assert schema.problems(result) == []
    # an Android (LCE) artifact has no firmware: nulls, and the reason
    import larq as lq

    import tfprune

    binary = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Conv2D(8, 3),
                                  lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                                        use_bias=False),
                                  tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(10)])
    lce = tfprune.export(binary, target="android-lce", verify=False, progress=False)
    figures = harness.emulated_figures(lce, x[:1], 100_000)
    assert figures["cmsis_nn_ticks"] is None and figures["cmsis_nn_time_ratio"] is None
    assert "export it with target='cortex-m'" in figures["emulation_error"]
    assert schema.problems({**result, **figures}) == []


def test_without_the_emulator_the_benchmark_fails_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFPRUNE_TFLM", str(tmp_path / "no-tflm"))
    code = bench_main(["--tier", "quick", "--methods", "dense-int8", "--quiet", "--results", str(tmp_path / "r"),
                       "--markdown", str(tmp_path / "BENCHMARKS.md")])
    error = capsys.readouterr().err
    assert code == 1 and "emulated Cortex-M4" in error and "not found" in error
    assert "make arm-toolchain" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "BENCHMARKS.md").exists()
