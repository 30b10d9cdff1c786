"""The compress benchmark family's page section: rows, marks and the issue's goals, from the rows alone."""

from __future__ import annotations

from benchmarks.compress_family import row_problems, section


def _row(method: str, kb: int, accuracy: float, **extra) -> dict:
    return {"method": method, "budget_bytes": kb * 1024, "epochs": 8, "seed": 0, "fits": True,
            "flash": kb * 1000, "arena": 50_000, "accuracy": accuracy, "tflm_agreement": 1.0, "seconds": 60.0,
            "commit": "abc1234", "clean": True, "fingerprint": "now", **extra}


def test_goals_are_marked_from_the_default_pipeline_and_name_a_better_setting():
    rows = [_row("compress", 48, 0.8632), _row("l1-uniform", 48, 0.8073), _row("tfmot-cluster", 48, 0.8621),
            _row("compress", 24, 0.7727), _row("compress-lut8", 24, 0.7956), _row("l1-uniform", 24, 0.7127)]
    text = section(rows, "now")
    assert "- >= 86% at <= 48 KB: met (86.32%, compress)" in text
    assert ("- >= 85% at <= 24 KB: not met, 7.73 points short (77.27%, compress; another setting of the "
            "pipeline: 79.56%, compress-lut8)") in text
    assert "compress above L1 filters at 48 KB, same epochs: 86.32% vs 80.73%" in text
    assert "compress above tfmot clustering alone at 48 KB, same epochs: 86.32% vs 86.21%" in text
    assert "TFLite Micro agreement 1.0 on every row: met" in text


def test_a_budget_without_the_default_pipeline_falls_back_to_the_distilled_rows_and_says_so():
    rows = [_row("compress+distill", 24, 0.7519, ran_as="compress"), _row("l1-uniform", 24, 0.7127)]
    text = section(rows, "later")
    assert "| 24 KB | compress+distill † § |" in text, "changed code and a renamed row are both marked"
    assert "- >= 85% at <= 24 KB: not met, 9.81 points short (75.19%, compress+distill)" in text
    assert "compress+distill above L1 filters at 24 KB" in text


def test_a_row_that_does_not_fit_or_came_from_a_dirty_tree_is_a_problem():
    assert row_problems(_row("compress", 24, 0.77)) == []
    assert row_problems(_row("compress", 24, 0.77, clean=False)) == [
        "ran on a tree with uncommitted changes; re-run it from a clean checkout"]
    assert row_problems(_row("magic", 24, 0.77)) == ["method 'magic' is not a compress method"]
