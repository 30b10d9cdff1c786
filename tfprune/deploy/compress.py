"""TFLite Micro LUT weight compression for int8 flatbuffers.

A binary, ternary or clustered network quantized to int8 still stores one byte
per weight, although each output channel holds only a few distinct values.
TFLite Micro's LUT compression stores such a filter as 1-7 bit indices plus a
small value table per channel, and a DECODE operator (custom op
``TFLM_DECODE``) rebuilds the int8 filter in the tensor arena just before the
operator that reads it. This module finds the filters worth compressing, runs
TFLM's own compressor (``tflite_micro.compression``) on them, and keeps the
result only where the file gets smaller.

The trade-off (see DESIGN.md section 4): flash shrinks, but every inference
decodes the filters into the arena (more RAM and time), the firmware needs a
TFLM build with DECODE, and the stock TFLite interpreter cannot load the file.

What TFLM's DECODE supports, checked against ``DecodeStateLut`` in the pinned
``tflite-micro`` build:

- index widths 1 to 7 bits (fast int8 paths for 2, 3 and 4 bits, a generic
  path for the others), so 2 values take 1 bit, 3-4 take 2, 5-8 take 3,
  9-16 take 4, up to 128 values in 7 bits;
- the decoder takes its channel count from the tensor's *quantization*, not
  from the compression spec: a per-channel quantized tensor must use one
  value table per channel along its quantized dimension (axis 0 or the last
  axis), and a per-tensor quantized one a single table. The compressor accepts
  a mismatch and the decoded weights come out wrong, so this module always
  derives the table layout from the quantization. With TF 2.15's default
  per-tensor quantization of Dense kernels, a Dense layer is therefore a
  candidate only when its whole kernel has few distinct values.

Example (a one-operator model built in memory; a real one comes from
``tf.lite.TFLiteConverter``):

    >>> import numpy as np
    >>> from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    >>> from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    >>> signs = np.where(np.arange(64 * 64).reshape(64, 64) % 3, 127, -127)
    >>> weights = me.Tensor(shape=(64, 64), dtype=fb.TensorType.INT8,
    ...                     data=signs.astype(np.int8),
    ...                     quantization=me.Quantization(scales=[0.01] * 64,
    ...                                                  zero_points=[0] * 64, axis=0))
    >>> x = me.Tensor(shape=(1, 64), dtype=fb.TensorType.INT8,
    ...               quantization=me.Quantization(scales=0.1))
    >>> y = me.Tensor(shape=(1, 64), dtype=fb.TensorType.INT8,
    ...               quantization=me.Quantization(scales=0.1))
    >>> graph = me.Subgraph(operators=[me.Operator(
    ...     opcode=fb.BuiltinOperator.FULLY_CONNECTED, inputs=[x, weights, None],
    ...     outputs=[y])], inputs=[x], outputs=[y])
    >>> model = bytes(me.Model(subgraphs=[graph]).build())
    >>> [(c.bits, c.values_per_channel) for c in find_lut_candidates(model)]
    [(1, 2)]
    >>> result = lut_compress(model)
    >>> result.applied, result.tensors[0].bytes_before, result.tensors[0].bytes_after
    (True, 4096, 656)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from tfprune.deploy.flatbuffer import DECODE_HEADER_BYTES, check_flatbuffer, constant_bytes

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

__all__ = [
    "LUT_OPERATORS",
    "MAX_INDEX_BITS",
    "MAX_VALUES",
    "CompressedTensor",
    "CompressionResult",
    "LutCandidate",
    "SkippedTensor",
    "find_lut_candidates",
    "index_bits",
    "lut_compress",
]

# Operators whose filter input (position 1) is compressed. The portable TFLM
# kernels of these read the filter only in Eval, so a decoded (arena) filter is
# fine; shape/parameter inputs that must stay constant are never filters.
LUT_OPERATORS: dict[str, int] = {
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 1,
    "FULLY_CONNECTED": 1,
}

# DecodeStateLut::kMaxBitWidth and LutAncillaryData.MAX_BITWIDTH in tflite-micro.
MAX_INDEX_BITS = 7
MAX_VALUES = 1 << MAX_INDEX_BITS
_DECODE_OP = "TFLM_DECODE"
_MODES = ("auto", "lut", "off")

Flatbuffer = Union[bytes, bytearray, memoryview]


@dataclass(frozen=True)
class LutCandidate:
    """A constant filter that LUT compression can store in ``bits`` per weight.

    ``axis`` is the channel axis of the value tables (the quantized dimension),
    or None for one table over the whole (per-tensor quantized) tensor.
    ``bytes_after`` is the exact size TFLM's compressor will write: packed
    indices plus the 16-byte DECODE header and the value tables.

    Example:
        >>> c = LutCandidate(subgraph=0, index=5, name="conv", operator="CONV_2D",
        ...                  shape=(32, 3, 3, 32), axis=0, values_per_channel=2,
        ...                  bits=1, bytes_before=9216, bytes_after=1232)
        >>> round(c.ratio, 2)
        7.48
    """

    subgraph: int
    index: int
    name: str
    operator: str
    shape: tuple[int, ...]
    axis: Optional[int]
    values_per_channel: int
    bits: int
    bytes_before: int
    bytes_after: int

    @property
    def ratio(self) -> float:
        """Bytes before divided by bytes after (above 1 means smaller)."""
        return self.bytes_before / self.bytes_after


@dataclass(frozen=True)
class SkippedTensor:
    """A tensor with few enough values that was left uncompressed, and why.

    Example:
        >>> SkippedTensor(0, 7, "dw", "quantized on axis 1; DECODE supports axis 0 "
        ...               "or the last axis").reason.startswith("quantized")
        True
    """

    subgraph: int
    index: int
    name: str
    reason: str


@dataclass(frozen=True)
class CompressedTensor:
    """One filter as stored in the compressed flatbuffer.

    ``bytes_after`` counts the packed indices and the ancillary tensor (DECODE
    header plus value tables), measured in the output model.

    Example:
        >>> t = CompressedTensor(name="conv", index=5, bits=1, values_per_channel=2,
        ...                      bytes_before=9216, bytes_after=1232)
        >>> round(t.ratio, 2)
        7.48
    """

    name: str
    index: int
    bits: int
    values_per_channel: int
    bytes_before: int
    bytes_after: int
    subgraph: int = 0
    axis: Optional[int] = None

    @property
    def ratio(self) -> float:
        """Bytes before divided by bytes after (above 1 means smaller)."""
        return self.bytes_before / self.bytes_after


@dataclass(frozen=True)
class CompressionResult:
    """The flatbuffer to deploy and what LUT compression did to it.

    ``bytes_before``/``bytes_after`` are file sizes; ``constant_bytes_*`` sum
    every constant buffer (filters, biases, value tables, indices), the weight
    payload a device stores. ``note`` says why nothing was applied.

    Example:
        >>> r = CompressionResult(flatbuffer=b"...", tensors=(), bytes_before=3,
        ...                       bytes_after=3, note="mode 'off'")
        >>> r.applied, r.needs_decode
        (False, False)
    """

    flatbuffer: bytes
    tensors: tuple[CompressedTensor, ...]
    bytes_before: int
    bytes_after: int
    constant_bytes_before: int = 0
    constant_bytes_after: int = 0
    skipped: tuple[SkippedTensor, ...] = ()
    mode: str = "auto"
    note: str = ""

    @property
    def applied(self) -> bool:
        """True when at least one tensor was compressed and the file got smaller."""
        return bool(self.tensors) and self.bytes_after < self.bytes_before

    @property
    def needs_decode(self) -> bool:
        """True when the flatbuffer holds DECODE operators (TFLM with DECODE only)."""
        return bool(self.tensors)

    def summary(self) -> str:
        """One line for logs and reports.

        Example:
            >>> CompressionResult(b"", (), 10, 10, note="no candidates").summary()
            'LUT compression not applied: no candidates'
        """
        if not self.tensors:
            return f"LUT compression not applied: {self.note or 'nothing compressed'}"
        bits = sorted({t.bits for t in self.tensors})
        return (
            f"LUT compression: {len(self.tensors)} tensor(s) at {bits} bit(s), "
            f"file {self.bytes_before} -> {self.bytes_after} B, "
            f"constants {self.constant_bytes_before} -> {self.constant_bytes_after} B"
            + (f", {len(self.skipped)} skipped" if self.skipped else "")
        )


def index_bits(values: int) -> int:
    """Smallest DECODE index width, in bits, for ``values`` distinct values.

    Example:
        >>> [index_bits(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 128)]
        [1, 1, 2, 2, 3, 3, 4, 4, 7]
    """
    if not 1 <= values <= MAX_VALUES:
        raise ValueError(f"values must be 1..{MAX_VALUES} for LUT compression, got {values}")
    return max(1, (values - 1).bit_length())


def find_lut_candidates(flatbuffer: Flatbuffer, max_values: int = 16) -> list[LutCandidate]:
    """Filters that LUT compression can store with at most ``max_values`` per channel.

    Looks at the int8 constant filters of CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED. A filter qualifies when each of its value tables (one per
    output channel for per-channel quantization, one for the whole tensor for
    per-tensor quantization) holds at most ``max_values`` distinct values and
    TFLM can decode it safely; tensors TFLM's compressor would refuse or drop
    (shared buffers, inputs that must stay constant, unsupported axes) are left
    out; ``lut_compress(...).skipped`` says why.

    Example (the module docstring has a binary model, whose kernels are 1-bit candidates):
        >>> from tfprune.datasets import mlperf_path
        >>> model = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> [(c.name, c.bits) for c in find_lut_candidates(model)]
        [('model/conv2d_5/Conv2D', 4)]
        >>> find_lut_candidates(b"TFL3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: ...
    """
    model = _read_model(flatbuffer)
    candidates, _ = _scan(model, _check_max_values(max_values))
    return candidates


def lut_compress(
    flatbuffer: Flatbuffer, max_values: int = 16, mode: str = "auto"
) -> CompressionResult:
    """Store low-cardinality filters with TFLM LUT compression (DECODE operators).

    Modes: ``"auto"`` compresses the candidates that shrink and keeps the
    result only if the whole file is smaller, else returns the input unchanged;
    ``"lut"`` compresses every candidate and returns the result even if it is
    not smaller (ValueError if there is nothing to compress); ``"off"`` returns
    the input unchanged. The output runs only on a TFLM build with DECODE.

    Example (the module docstring has one that compresses):
        >>> from tfprune.datasets import mlperf_path
        >>> result = lut_compress(mlperf_path("pretrainedResnet_quant.tflite").read_bytes())
        >>> result.applied, result.skipped[0].name
        (False, 'model/conv2d_5/Conv2D')
        >>> lut_compress(b"\\x00" * 64, mode="auto")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: ...
        >>> lut_compress(b"", mode="zip")
        Traceback (most recent call last):
        ...
        ValueError: mode must be one of 'auto', 'lut', 'off'; got 'zip'
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}; got {mode!r}")
    max_values = _check_max_values(max_values)
    data = check_flatbuffer(flatbuffer)
    model = _read_model(data)
    unchanged = _unchanged_result(data, model, mode)
    if mode == "off":
        return unchanged(note="mode 'off'")

    candidates, skipped = _scan(model, max_values)
    if mode == "auto":
        candidates, growing = _split_shrinking(candidates)
        skipped = skipped + growing
    if not candidates:
        note = _no_candidates_note(max_values, skipped)
        if mode == "lut":
            raise ValueError(f"mode 'lut' has nothing to compress: {note}")
        return unchanged(note=note, skipped=tuple(skipped))

    compressed = _run_compressor(data, candidates)
    result = _describe(data, model, compressed, candidates, skipped, mode)
    if mode == "auto" and not result.applied:
        return unchanged(
            note=f"compressed file not smaller ({len(data)} -> {len(compressed)} B)",
            skipped=result.skipped,
        )
    return result


# ---------------------------------------------------------------- internals


def _read_model(flatbuffer: object) -> "model_editor.Model":
    # the identifier check first turns most wrong inputs into one clear line, not a flatbuffers IndexError
    data = check_flatbuffer(flatbuffer)
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    try:
        model = model_editor.read(data)
    except Exception as exc:  # the flatbuffers reader raises anything on bad offsets
        raise ValueError(
            f"not a TFLite flatbuffer: it has the 'TFL3' identifier but cannot "
            f"be parsed ({type(exc).__name__}: {exc})"
        ) from exc
    if not model.subgraphs:
        raise ValueError("not a usable TFLite flatbuffer: it has no subgraphs")
    return model


def _check_max_values(max_values: object) -> int:
    if isinstance(max_values, bool) or not isinstance(max_values, (int, np.integer)):
        raise TypeError(f"max_values must be an int, got {type(max_values).__name__}")
    if not 2 <= int(max_values) <= MAX_VALUES:
        raise ValueError(
            f"max_values must be 2..{MAX_VALUES} (TFLM DECODE indices are 1-{MAX_INDEX_BITS} "
            f"bits), got {max_values}"
        )
    return int(max_values)


def _unchanged_result(data: bytes, model: "model_editor.Model", mode: str):
    payload = constant_bytes(data)

    def make(note: str, skipped: tuple[SkippedTensor, ...] = ()) -> CompressionResult:
        return CompressionResult(
            flatbuffer=data, tensors=(), bytes_before=len(data), bytes_after=len(data),
            constant_bytes_before=payload, constant_bytes_after=payload,
            skipped=tuple(skipped), mode=mode, note=note,
        )

    return make


def _filters(subgraph: "model_editor.Subgraph"):
    """Yield (operator name, tensor) once per distinct filter tensor."""
    seen: set[int] = set()
    for op in subgraph.operators:
        position = LUT_OPERATORS.get(op.opcode_name)
        if position is None or len(op.inputs) <= position:
            continue
        tensor = op.inputs[position]
        if tensor is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        yield op.opcode_name, tensor


def _table_axis(tensor: "model_editor.Tensor") -> tuple[Optional[int], str]:
    """(value-table axis the decoder will use, reason it cannot decode or '').

    The axis is None for one table over the whole tensor. When there is a
    reason, the axis is still the one to count values along, so the tensor is
    reported as skipped rather than silently ignored.
    """
    quant = tensor.quantization
    if quant is None or not quant.scales:
        return None, "has no quantization parameters"
    rank, scales = len(tensor.shape), len(quant.scales)
    axis = quant.axis
    in_range = axis if axis is not None and 0 <= axis < rank else None
    if scales == 1:
        # DecodeStateLut::Setup errors on a single-scale tensor on a nonzero axis.
        if axis not in (None, 0):
            return None, f"single-scale quantization on axis {axis}, which DECODE rejects"
        return None, ""
    axis = 0 if axis is None else axis
    if axis not in (0, rank - 1):
        return in_range, f"quantized on axis {axis}; DECODE supports axis 0 or the last axis"
    if tensor.shape[axis] != scales:
        return axis, f"has {scales} scales for {tensor.shape[axis]} channels on axis {axis}"
    return axis, ""


def _distinct_per_table(array: np.ndarray, axis: Optional[int]) -> int:
    if axis is None:
        rows = array.reshape(1, -1)
    else:
        rows = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    ordered = np.sort(rows, axis=1)
    return int((1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)).max())


def _lut_bytes(elements: int, tables: int, stride: int, bits: int) -> int:
    return math.ceil(elements * bits / 8) + DECODE_HEADER_BYTES + tables * stride


def _candidate(
    subgraph: int, operator: str, tensor: "model_editor.Tensor", max_values: int
) -> tuple[Optional[LutCandidate], str]:
    """The candidate for one filter, or (None, reason); reason '' = not low-cardinality."""
    if tensor.buffer is None or not tensor.buffer.data or tensor.numpy_dtype != np.int8:
        return None, ""
    axis, problem = _table_axis(tensor)
    array = tensor.array
    distinct = _distinct_per_table(array, axis)
    if distinct > max_values:
        return None, ""
    if problem:
        return None, problem
    bits = index_bits(distinct)
    tables = 1 if axis is None else tensor.shape[axis]
    return LutCandidate(
        subgraph=subgraph, index=tensor.index, name=tensor.name or f"tensor {tensor.index}",
        operator=operator, shape=tuple(tensor.shape), axis=axis, values_per_channel=distinct,
        bits=bits, bytes_before=len(tensor.buffer.data),
        bytes_after=_lut_bytes(array.size, tables, distinct, bits),
    ), ""


def _blocker(subgraph: "model_editor.Subgraph", tensor: "model_editor.Tensor") -> str:
    """Why TFLM's compressor would refuse this tensor, or ''."""
    from tflite_micro.tensorflow.lite.micro.compression import constant_inputs

    if tensor.is_variable:
        return "is a variable tensor"
    if tensor in subgraph.inputs:
        return "is a subgraph input"
    uses = constant_inputs.find_uses(subgraph, tensor)
    if uses:
        return "must stay constant: " + "; ".join(use.describe() for use in uses)
    return ""


def _scan(
    model: "model_editor.Model", max_values: int
) -> tuple[list[LutCandidate], list[SkippedTensor]]:
    candidates: list[LutCandidate] = []
    skipped: list[SkippedTensor] = []
    for s, subgraph in enumerate(model.subgraphs):
        for operator, tensor in _filters(subgraph):
            candidate, reason = _candidate(s, operator, tensor, max_values)
            reason = reason or (_blocker(subgraph, tensor) if candidate else "")
            if reason:
                skipped.append(SkippedTensor(s, tensor.index, tensor.name or "", reason))
            elif candidate is not None:
                candidates.append(candidate)
    return _drop_shared_buffers(model, candidates, skipped)


def _drop_shared_buffers(
    model: "model_editor.Model", candidates: list[LutCandidate], skipped: list[SkippedTensor]
) -> tuple[list[LutCandidate], list[SkippedTensor]]:
    """Skip candidates whose buffer an uncompressed tensor also reads.

    That tensor keeps the int8 data in the file, so compressing the alias only
    adds bytes; TFLM's compressor drops such tensors with a warning, we say so.
    Dropping one candidate can expose another alias, hence the loop.
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    aliases: dict[int, list] = {}
    for tensor in model_editor.iter_tensors(model):
        if tensor.buffer is not None:
            aliases.setdefault(id(tensor.buffer), []).append(tensor)

    def tensor_of(c: LutCandidate):
        return model.subgraphs[c.subgraph].tensors[c.index]

    while True:
        covered = {id(tensor_of(c)) for c in candidates}
        blocked = []
        for c in candidates:
            others = [t for t in aliases[id(tensor_of(c).buffer)] if id(t) not in covered]
            if others:
                names = ", ".join(repr(t.name) for t in others[:3])
                blocked.append(SkippedTensor(
                    c.subgraph, c.index, c.name,
                    f"shares its buffer with uncompressed tensor(s) {names}, so compressing "
                    "it cannot shrink the file",
                ))
        if not blocked:
            return candidates, skipped
        gone = {(b.subgraph, b.index) for b in blocked}
        candidates = [c for c in candidates if (c.subgraph, c.index) not in gone]
        skipped = skipped + blocked


def _split_shrinking(
    candidates: list[LutCandidate],
) -> tuple[list[LutCandidate], list[SkippedTensor]]:
    keep = [c for c in candidates if c.bytes_after < c.bytes_before]
    grow = [
        SkippedTensor(
            c.subgraph, c.index, c.name,
            f"LUT would not shrink it ({c.bytes_before} -> {c.bytes_after} B with "
            f"{c.values_per_channel} values per "
            f"{'tensor' if c.axis is None else 'channel'})",
        )
        for c in candidates if c.bytes_after >= c.bytes_before
    ]
    return keep, grow


def _no_candidates_note(max_values: int, skipped: list[SkippedTensor]) -> str:
    note = (
        f"no int8 {'/'.join(LUT_OPERATORS)} filter has <= {max_values} distinct values "
        "per value table that TFLM can compress"
    )
    if skipped:
        note += f" ({len(skipped)} skipped: " + "; ".join(
            f"{s.name}: {s.reason}" for s in skipped[:3]) + ")"
    return note


def _run_compressor(data: bytes, candidates: list[LutCandidate]) -> bytes:
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import compressor, spec

    specs = [
        spec.Tensor(
            subgraph=c.subgraph, tensor=c.index,
            compression=[spec.LookUpTableCompression(
                index_bitwidth=c.bits,
                mode=spec.PerTensor() if c.axis is None else spec.PerChannel(axis=c.axis),
            )],
        )
        for c in candidates
    ]
    try:
        # Its warnings (expansion, dropped aliases) are what _scan already reports.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(compression.compress(data, specs))
    except compressor.CompressionError as exc:
        raise ValueError(
            f"TFLM LUT compression failed: {exc}; use mode='off' to export uncompressed"
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"TFLM LUT compression failed ({type(exc).__name__}: {exc}); "
            "use mode='off' to export uncompressed"
        ) from exc


def _decoded_sizes(model: "model_editor.Model") -> dict[tuple[int, int], int]:
    """(subgraph, encoded tensor index) -> encoded + ancillary bytes, from DECODE ops."""
    sizes: dict[tuple[int, int], int] = {}
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            if op.custom_code != _DECODE_OP:
                continue
            for encoded, ancillary in zip(op.inputs[0::2], op.inputs[1::2]):
                sizes[(s, encoded.index)] = len(encoded.buffer.data) + len(ancillary.buffer.data)
    return sizes


def _describe(
    data: bytes, model: "model_editor.Model", compressed: bytes,
    candidates: list[LutCandidate], skipped: list[SkippedTensor], mode: str,
) -> CompressionResult:
    out_model = _read_model(compressed)
    sizes = _decoded_sizes(out_model)
    done, dropped = [], []
    for c in candidates:
        size = sizes.get((c.subgraph, c.index))
        if size is None:
            dropped.append(SkippedTensor(c.subgraph, c.index, c.name,
                                         "dropped by TFLM's compressor (no DECODE reads it)"))
            continue
        done.append(CompressedTensor(
            name=c.name, index=c.index, bits=c.bits, values_per_channel=c.values_per_channel,
            bytes_before=c.bytes_before, bytes_after=size, subgraph=c.subgraph, axis=c.axis,
        ))
    return CompressionResult(
        flatbuffer=compressed, tensors=tuple(done), bytes_before=len(data),
        bytes_after=len(compressed), constant_bytes_before=constant_bytes(data),
        constant_bytes_after=constant_bytes(compressed), skipped=tuple(skipped + dropped),
        mode=mode, note="" if done else "TFLM's compressor compressed nothing",
    )
