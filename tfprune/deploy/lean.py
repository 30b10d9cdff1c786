"""A lean flatbuffer: only what TensorFlow Lite Micro reads.

A small model's ``.tflite`` is mostly not weights. MLPerf Tiny's int8 ResNet-8
is 98,496 B, of which 78,752 B are constant data; the rest is graph structure,
and much of it TFLite Micro never looks at. ``lean_flatbuffer`` drops that and
rewrites the file through TFLite Micro's own aligner (buffers 16-byte aligned),
so the device stores fewer bytes and runs the same model.

What TFLite Micro reads, checked in its sources (``micro_interpreter.cc``,
``micro_allocator.cc``, ``micro_allocation_info.cc``, ``kernels/decode*.cc``):
the schema version, operator codes, per subgraph the tensors (type, shape,
buffer, quantization scale / zero point / quantized dimension, is_variable),
operators (opcode, inputs, outputs, options, intermediates), inputs and
outputs, the buffers tensors use, and two metadata entries:
``OfflineMemoryAllocation`` (an offline memory plan) and
``COMPRESSION_METADATA`` (TFLite Micro's older compressed-tensor path).

What it never reads, and this module drops:

- tensor and subgraph names, ``shape_signature``, the model description;
- ``signature_defs`` (TFLite Micro has no signature runner);
- every other metadata entry (``min_runtime_version``, ``CONVERSION_METADATA``);
- quantization ``min``/``max`` (only scale and zero point reach the kernels);
- buffers no tensor or kept metadata uses; every tensor without data points at
  the empty buffer 0 instead of an empty buffer of its own.

And the quantization parameters shrink to what the runtime needs: a
per-channel tensor whose zero points are all equal (every int8 filter and
int32 bias: zero points are 0) keeps one zero point instead of one int64 per
channel. ``micro_allocator.cc`` expands a single stored zero point to every
channel ("zero point arrays for weights can be reduced to a single value"),
so the kernels, DECODE's per-channel PRUNE decoder included, see the same
parameters. The stock TFLite interpreter refuses such a tensor (it wants one
zero point per scale) and needs the names of signatures: a lean file is for
TFLite Micro only; ``tfprune.export`` keeps the converter's file as
``Artifact.reference_flatbuffer`` for TFLite.

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
    >>> result = lean_flatbuffer(fb)
    >>> result.bytes_before, result.bytes_after < 90_000
    (98496, True)
    >>> result.removed["tensor names"], result.removed["zero points"]
    (38, 654)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from tfprune.deploy.flatbuffer import check_flatbuffer, schema, unpack_model

__all__ = ["KEPT_METADATA", "LeanResult", "align_flatbuffer", "lean_flatbuffer"]

#: Metadata entries TFLite Micro reads (micro_allocator.cc, micro_compression.h); all others go.
KEPT_METADATA = ("OfflineMemoryAllocation", "COMPRESSION_METADATA")

Flatbuffer = Union[bytes, bytearray, memoryview]


@dataclass(frozen=True)
class LeanResult:
    """The lean flatbuffer and what was dropped from it.

    ``removed`` counts items, not bytes (names, zero points, min/max values,
    buffers, signature definitions, metadata entries); ``saved`` is the byte
    difference of the files. ``note`` says why the input came back unchanged.

    Example:
        >>> r = LeanResult(b"lean", 100, 80, {"tensor names": 3})
        >>> r.saved, r.applied
        (20, True)
    """

    flatbuffer: bytes
    bytes_before: int
    bytes_after: int
    removed: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def saved(self) -> int:
        """Bytes the lean file saves (0 when it was not smaller and the input was kept)."""
        return self.bytes_before - self.bytes_after

    @property
    def applied(self) -> bool:
        """True when the returned flatbuffer is the lean one (and smaller)."""
        return self.bytes_after < self.bytes_before

    def as_dict(self) -> dict[str, Any]:
        """The report entry: applied, bytes before/after, saved, removed, note."""
        return {"applied": self.applied, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "bytes_saved": self.saved, "removed": dict(self.removed), "note": self.note}


def lean_flatbuffer(flatbuffer: Flatbuffer) -> LeanResult:
    """Drop from ``flatbuffer`` what TFLite Micro never reads (see the module docstring).

    Returns the input unchanged (with a ``note``) when the lean file would not
    be smaller or the model stores buffers outside the flatbuffer. The
    operators, tensors and their order are untouched, so tensor indices (and
    an offline memory plan that names them) stay valid.

    Example:
        >>> lean_flatbuffer(b"not a model")
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: file identifier is b'a mo', expected b'TFL3'
    """
    data = check_flatbuffer(flatbuffer)
    model = unpack_model(data)
    if any(buffer is not None and buffer.offset > 1 for buffer in model.buffers or []):
        return LeanResult(data, len(data), len(data), note="buffers stored outside the flatbuffer are kept as they are")
    removed: dict[str, int] = {}
    _drop_model_fields(model, removed)
    for subgraph in model.subgraphs:
        _drop_subgraph_fields(subgraph, removed)
    _compact_buffers(model, removed)
    lean = align_flatbuffer(_pack(model))
    if len(lean) >= len(data):
        return LeanResult(data, len(data), len(data), removed, note=f"lean file not smaller ({len(data)} -> {len(lean)} B)")
    return LeanResult(lean, len(data), len(lean), {key: count for key, count in removed.items() if count})


def align_flatbuffer(flatbuffer: Flatbuffer) -> bytes:
    """Repack a flatbuffer with TFLite Micro's aligner: every buffer 16-byte aligned.

    The Python flatbuffers builder ignores the schema's ``force_align: 16`` on
    buffer data, which TFLite Micro's kernels rely on for wider types; the
    ``tflite-micro`` package ships the C++ repacker its own compressor uses.

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> len(align_flatbuffer(fb)) > 0
        True
    """
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    data = check_flatbuffer(flatbuffer)
    # The wrapper reads and writes files only.
    with tempfile.TemporaryDirectory(prefix="tfprune_align_") as directory:
        source, target = os.path.join(directory, "in.tflite"), os.path.join(directory, "out.tflite")
        with open(source, "wb") as handle:
            handle.write(data)
        tflite_flatbuffer_align_wrapper.align_tflite_model(source, target)
        with open(target, "rb") as handle:
            return handle.read()


# ---------------------------------------------------------------- internals


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _count(key: str, removed: dict[str, int], amount: int = 1) -> None:
    removed[key] = removed.get(key, 0) + amount


def _drop_model_fields(model: Any, removed: dict[str, int]) -> None:
    if model.description:
        _count("description", removed)
    model.description = None
    _count("signature definitions", removed, len(model.signatureDefs or []))
    model.signatureDefs = None
    model.metadataBuffer = None  # deprecated field, never read
    kept = [entry for entry in model.metadata or [] if _text(entry.name) in KEPT_METADATA]
    _count("metadata entries", removed, len(model.metadata or []) - len(kept))
    model.metadata = kept or None


def _drop_subgraph_fields(subgraph: Any, removed: dict[str, int]) -> None:
    if subgraph.name:
        _count("subgraph names", removed)
    subgraph.name = None
    for tensor in subgraph.tensors or []:
        if tensor.name:
            _count("tensor names", removed)
        tensor.name = None
        tensor.shapeSignature = None
        tensor.quantization = _lean_quantization(tensor.quantization, removed)


def _lean_quantization(quant: Any, removed: dict[str, int]) -> Any:
    if quant is None:
        return None
    for bound in ("min", "max"):
        values = getattr(quant, bound)
        if values is not None:
            _count("quantization min/max values", removed, len(values))
        setattr(quant, bound, None)
    scales = 0 if quant.scale is None else len(quant.scale)
    zero_points = None if quant.zeroPoint is None else np.asarray(quant.zeroPoint, dtype=np.int64)
    if scales > 1 and zero_points is not None and zero_points.size == scales and np.all(zero_points == zero_points[0]):
        # micro_allocator.cc copies zero_point[0] to every channel when one is stored.
        _count("zero points", removed, scales - 1)
        quant.zeroPoint = zero_points[:1]
    if not scales and (zero_points is None or not zero_points.size) and quant.details is None:
        return None
    return quant


def _compact_buffers(model: Any, removed: dict[str, int]) -> None:
    """Keep buffer 0 (empty) and the buffers with data that tensors or kept metadata use."""
    old = list(model.buffers or [])
    new = [schema().BufferT()]
    remap: dict[int, int] = {}

    def keep(index: int) -> int:
        if not 0 <= index < len(old) or old[index] is None or old[index].data is None or not len(old[index].data):
            return 0
        if index not in remap:
            remap[index] = len(new)
            new.append(old[index])
        return remap[index]

    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors or []:
            tensor.buffer = keep(int(tensor.buffer))
    for entry in model.metadata or []:
        entry.buffer = keep(int(entry.buffer))
    _count("buffers", removed, len(old) - len(new))
    model.buffers = new


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value or "")
