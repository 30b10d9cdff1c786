"""The benchmark harness: resumable runs measured on artifacts, and a page generated from results."""

from __future__ import annotations

import json

import pytest

from benchmarks import catalog, checks, harness
from benchmarks.cli import main as bench_main
from benchmarks.markdown import render
from benchmarks.methods import Budget
from benchmarks.tiers import Tier

TINY = Tier("tiny", train_samples=64, test_samples=40, agreement_samples=8,
            budget=Budget(finetune_epochs=1, scratch_epochs=1), seeds=(0,), description="test")


def fake_result(method: str, seed: int, accuracy: float, flatbuffer: int, settings: str = "{}") -> dict:
    return {"key": {"method": method, "settings": settings, "tier": "standard", "seed": seed},
            "model": "resnet8", "dataset": "cifar10", "start": "pretrained", "accuracy": accuracy,
            "tflm_agreement": 1.0, "flatbuffer_bytes": flatbuffer, "weight_bytes": flatbuffer - 1000,
            "arena_bytes": 50_000, "macs": 1_000, "tflm_time_ratio": 1.0, "tflm_ms_host": 10.0,
            "prune_seconds": 1.0, "train_seconds": 100.0, "epochs_total": 510, "nonzero_weights": 5,
            "commit": "abc123", "host": "x86_64"}


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
    assert dense["tflm_time_ratio"] == pytest.approx(1.0, abs=0.5)
    assert dense["epochs_total"] == 500 and dense["commit"] and dense["versions"]["tensorflow"] == "2.15.1"
    assert harness.run(methods, TINY, path, progress=False) == [], "runs already present are skipped"
    assert len(harness.read_results(path)) == 2


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
    tfmot = fake_result("tfmot-magnitude", 0, 0.86, 95_100, '{"sparsity": 0.9}')
    l1 = fake_result("l1-filters", 0, 0.7, 40_000)
    assert checks.quick_tier_failure([dense, tfmot, l1]) is None
    assert "not the dense" in checks.quick_tier_failure([dense, dict(tfmot, flatbuffer_bytes=60_000)])
    assert "not smaller" in checks.quick_tier_failure([dense, dict(l1, flatbuffer_bytes=95_000)])
    assert "TFLite Micro" in checks.quick_tier_failure([dense, dict(l1, tflm_agreement=None)])


def test_check_fails_on_a_stale_page(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "resnet8_cifar10_standard.jsonl").write_text(json.dumps(fake_result("dense-int8", 0, 0.87, 1)) + "\n")
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


def test_quick_tier_checks_that_reconvene_is_smaller_than_its_pai_model():
    dense = fake_result("dense-int8", 0, 0.87, 95_000)
    settings = '{"score": "synflow", "sparsity": 0.9}'
    pai = fake_result("pai-unstructured", 0, 0.5, 95_000, settings)
    assert checks.quick_tier_failure([dense, pai, fake_result("reconvene", 0, 0.5, 30_000, settings)]) is None
    failure = checks.quick_tier_failure([dense, pai, fake_result("reconvene", 0, 0.5, 96_000, settings)])
    assert failure and "not smaller than PaI's 95000 B" in failure


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
