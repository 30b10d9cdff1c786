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

    Unstructured tfmot sparsity makes the artifact smaller than the dense one
    (its zeros are stored with DECODE PRUNE since issue 15; before, TFLite Micro
    stored them like any weight); channel pruning makes it smaller; every
    artifact ran in TFLite Micro; a Reconvene artifact is smaller than the dense
    one. (Reconvene was once checked against unstructured PaI of the same
    settings; with PRUNE an unstructured mask pays too, so that is a
    measurement for the table, not a rule.)
    """
    dense = [r for r in results if r["key"]["method"] == "dense-int8"]
    if not dense:
        return "no dense-int8 row in the results"
    dense_bytes = dense[0]["flatbuffer_bytes"]
    for result in results:
        method, bytes_ = result["key"]["method"], result["flatbuffer_bytes"]
        if method in (*UNSTRUCTURED, *CHANNEL_PRUNING, "reconvene") and bytes_ >= dense_bytes:
            return f"{method} {result['key']['settings']}: {bytes_} B, not smaller than the dense {dense_bytes} B"
        if result.get("tflm_agreement") is None or result.get("arena_bytes") is None:
            return f"{method} {result['key']['settings']}: did not run in TFLite Micro"
    return None
