"""What the quick tier asserts about a benchmark run, end to end.

Example:
    >>> quick_tier_failure([])
    'no dense-int8 row in the results'
"""

from __future__ import annotations

from typing import Any

UNSTRUCTURED = ("tfmot-magnitude",)
CHANNEL_PRUNING = ("l1-filters", "random-channels")


def quick_tier_failure(results: list[dict[str, Any]]) -> str | None:
    """None when the run shows what users must be able to rely on, else what went wrong.

    Unstructured tfmot sparsity keeps the dense flatbuffer's bytes (TFLite Micro
    stores zeros like any weight, within 1%); channel pruning makes it smaller;
    every artifact ran in TFLite Micro, and on the emulated Cortex-M4 (its time); a
    Reconvene artifact is smaller than the unstructured PaI artifact of the same settings.
    """
    dense = [r for r in results if r["key"]["method"] == "dense-int8"]
    if not dense:
        return "no dense-int8 row in the results"
    dense_bytes = dense[0]["flatbuffer_bytes"]
    for result in results:
        method, bytes_ = result["key"]["method"], result["flatbuffer_bytes"]
        if method in UNSTRUCTURED and abs(bytes_ - dense_bytes) > 0.01 * dense_bytes:
            return f"{method} {result['key']['settings']}: {bytes_} B, not the dense {dense_bytes} B"
        if method in CHANNEL_PRUNING and bytes_ >= dense_bytes:
            return f"{method} {result['key']['settings']}: {bytes_} B, not smaller than the dense {dense_bytes} B"
        if result.get("tflm_agreement") is None or result.get("arena_bytes") is None:
            return f"{method} {result['key']['settings']}: did not run in TFLite Micro"
        if result.get("cmsis_nn_ticks") is None:
            why = result.get("emulation_error") or "no cmsis_nn_ticks in the row"
            return f"{method} {result['key']['settings']}: did not run on the emulated Cortex-M4: {why}"
    return _reconvene_failure(results)


def _reconvene_failure(results: list[dict[str, Any]]) -> str | None:
    pai = {r["key"]["settings"]: r["flatbuffer_bytes"] for r in results if r["key"]["method"] == "pai-unstructured"}
    for result in results:
        settings = result["key"]["settings"]
        if result["key"]["method"] == "reconvene" and settings in pai and result["flatbuffer_bytes"] >= pai[settings]:
            return f"reconvene {settings}: {result['flatbuffer_bytes']} B, not smaller than PaI's {pai[settings]} B"
    return None
