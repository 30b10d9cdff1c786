"""TFLite Micro DECODE compression of int8 flatbuffers: LUT and PRUNE, chosen per tensor.

A flatbuffer stores one byte per int8 weight whatever the weights are.
TFLite Micro's DECODE operator (custom op ``TFLM_DECODE``) rebuilds a constant
tensor in the tensor arena just before the operator that reads it, from a
compact encoding and an ancillary tensor (a 16-byte DECODE header, then the
encoding's tables). Two of its decoders pay for pruned and quantized networks:

- **LUT** (decode type 0): a binary, ternary or clustered filter holds only a
  few distinct values per output channel; it is stored as 1-7 bit indices plus
  a small value table per channel.
- **PRUNE** (decode type 2): an unstructured-sparse tensor is stored as a
  bitmask (one bit per element, most significant bit first, set = a stored
  value) plus the kept values in order; the decoder writes the zero point
  elsewhere (per channel for int8, on axis 0 or the last axis). For int8
  weights that is 1/8 + (1 - sparsity) bytes a weight: 0.625 at 50%, 0.375 at
  75%, 0.225 at 90% sparsity, plus 16 bytes a tensor. TFLite Micro's Python
  compressor has only a stub for it (``compression/pruning.py``); this module
  writes the format ``kernels/decode_state_prune.cc`` reads.

``compress_weights`` picks per tensor the smallest of plain, LUT and PRUNE,
counting the DECODE header, the buffers' 16-byte alignment and the graph
structure each DECODE adds (:data:`DECODE_TENSOR_OVERHEAD`), and keeps the
result only if the whole file shrinks. The encoded tensors go through TFLM's
own DECODE insertion and aligner (``tflite_micro.compression``).

The trade-off (see DESIGN.md section 4): flash shrinks, but every inference
decodes the tensors into the arena (more RAM and time), the firmware needs a
TFLM build with DECODE, and the stock TFLite interpreter cannot load the file.

What TFLM's decoders support, checked against ``DecodeStateLut`` and
``DecodeStatePrune`` in the pinned ``tflite-micro`` build:

- LUT index widths 1 to 7 bits (fast int8 paths for 2, 3 and 4 bits, a generic
  path for the others), so 2 values take 1 bit, 3-4 take 2, 5-8 take 3,
  9-16 take 4, up to 128 values in 7 bits;
- both decoders take the channel count from the tensor's *quantization*, not
  from the encoding: a per-channel quantized tensor must be quantized on axis
  0 or the last axis, and a single-scale one on axis 0 (else Setup fails). The
  LUT compressor accepts a mismatching table layout and the decoded weights
  come out wrong, so this module always derives the layout from the
  quantization. With TF 2.15's default per-tensor quantization of Dense
  kernels, a Dense layer is a LUT candidate only when its whole kernel has few
  distinct values;
- PRUNE decodes int8 (per-channel zero points), int16, int32, int64 and
  float32 tensors; any zero point but int8's must be 0.

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
    >>> ramp = np.arange(64 * 64).reshape(64, 64) % 251 - 125  # many values, 3 in 4 zero
    >>> weights.array = np.where(ramp % 4 == 0, ramp, 0).astype(np.int8)
    >>> model = bytes(me.Model(subgraphs=[graph]).build())
    >>> result = compress_weights(model)
    >>> [(t.encoding, t.density, t.bytes_before, t.bytes_after) for t in result.tensors]
    [('prune', 0.24707, 4096, 1540)]
    >>> result.bytes_before, result.bytes_after
    (5344, 2960)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from tfprune.deploy.flatbuffer import (
    DECODE_HEADER_BYTES,
    PRUNE_DECODE_TYPE,
    check_flatbuffer,
    constant_bytes,
)
from tfprune.deploy.lean import align_flatbuffer

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

__all__ = [
    "DECODE_TENSOR_OVERHEAD",
    "ENCODINGS",
    "LUT_OPERATORS",
    "MAX_INDEX_BITS",
    "MAX_VALUES",
    "MODES",
    "PRUNE_INPUTS",
    "CompressedTensor",
    "CompressionResult",
    "LutCandidate",
    "PruneCandidate",
    "SkippedTensor",
    "compress_weights",
    "find_lut_candidates",
    "find_prune_candidates",
    "index_bits",
    "lut_compress",
    "prune_bytes",
    "prune_encode",
]

# Operators whose filter input (position 1) is LUT-compressed. The portable TFLM
# kernels of these read the filter only in Eval, so a decoded (arena) filter is
# fine; shape/parameter inputs that must stay constant are never filters.
LUT_OPERATORS: dict[str, int] = {
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 1,
    "FULLY_CONNECTED": 1,
}

#: Inputs PRUNE may encode: the filters (forced by ``mode="prune"``) and the
#: biases (only where it pays). Other operators are left alone: some TFLM
#: kernels (LSTM, SVDF) read their weights in Prepare, before DECODE has run.
PRUNE_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
}

# DecodeStateLut::kMaxBitWidth and LutAncillaryData.MAX_BITWIDTH in tflite-micro.
MAX_INDEX_BITS = 7
MAX_VALUES = 1 << MAX_INDEX_BITS
ENCODINGS = ("lut", "prune")
MODES = ("auto", "lut", "prune", "off")

#: Bytes one DECODE-encoded tensor adds to the file besides its encoded data
#: and ancillary data: the DECODE operator, the ancillary tensor and its
#: buffer (length prefix, 16-byte alignment), the decoded output tensor (shape
#: and quantization copied). Measured on the pinned compressor and aligner
#: over the filters and biases of ResNet-8 and DS-CNN without tensor names:
#: 128-188 B. A tensor name is written twice more (``_ancillary``,
#: ``_decoded``): 2 x name + 50 B on top, measured 259-606 B with names.
DECODE_TENSOR_OVERHEAD = 190

_DECODE_OP = "TFLM_DECODE"
_LUT_MODES = ("auto", "lut", "off")
# DecodeStatePrune decodes these output types (Decode's switch); bool has no zero point to skip.
_PRUNE_DTYPES = ("int8", "int16", "int32", "int64", "float32")
_PRUNE_VERSION = 1  # DecodeStatePrune::kDcmVersionOffset (byte 4) must hold 1

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

    encoding = "lut"

    @property
    def ratio(self) -> float:
        """Bytes before divided by bytes after (above 1 means smaller)."""
        return self.bytes_before / self.bytes_after


@dataclass(frozen=True)
class PruneCandidate:
    """A constant tensor that PRUNE can store as a bitmask plus its ``kept`` values.

    ``axis`` is the channel axis the decoder walks (the quantized dimension of
    a per-channel tensor) or None for a single-scale one. ``bytes_after`` is the
    exact size written: the bitmask (one bit an element) plus the 16-byte
    DECODE header and the kept values.

    Example:
        >>> c = PruneCandidate(subgraph=0, index=5, name="conv", operator="CONV_2D",
        ...                    shape=(32, 3, 3, 32), axis=0, kept=922, elements=9216,
        ...                    bytes_before=9216, bytes_after=2090)
        >>> round(c.density, 3), round(c.ratio, 2)
        (0.1, 4.41)
    """

    subgraph: int
    index: int
    name: str
    operator: str
    shape: tuple[int, ...]
    axis: Optional[int]
    kept: int
    elements: int
    bytes_before: int
    bytes_after: int

    encoding = "prune"

    @property
    def density(self) -> float:
        """Share of elements stored (not equal to the zero point)."""
        return self.kept / self.elements if self.elements else 0.0

    @property
    def ratio(self) -> float:
        """Bytes before divided by bytes after (above 1 means smaller)."""
        return self.bytes_before / self.bytes_after


Candidate = Union[LutCandidate, PruneCandidate]


@dataclass(frozen=True)
class SkippedTensor:
    """A tensor that an encoding could have stored but that was left as it is, and why.

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
    """One tensor as stored in the compressed flatbuffer.

    ``encoding`` is ``"lut"`` (``bits`` per index, ``values_per_channel``) or
    ``"prune"`` (``density``: share of elements stored; ``bits`` and
    ``values_per_channel`` are None). ``bytes_after`` counts the encoded data
    and the ancillary tensor (DECODE header plus tables), measured in the
    output model.

    Example:
        >>> t = CompressedTensor(name="conv", index=5, bits=1, values_per_channel=2,
        ...                      bytes_before=9216, bytes_after=1232)
        >>> round(t.ratio, 2), t.bytes_saved, t.encoding
        (7.48, 7984, 'lut')
    """

    name: str
    index: int
    bits: Optional[int]
    values_per_channel: Optional[int]
    bytes_before: int
    bytes_after: int
    subgraph: int = 0
    axis: Optional[int] = None
    encoding: str = "lut"
    density: Optional[float] = None

    @property
    def ratio(self) -> float:
        """Bytes before divided by bytes after (above 1 means smaller)."""
        return self.bytes_before / self.bytes_after

    @property
    def bytes_saved(self) -> int:
        """Bytes of tensor data the encoding saves (negative when it grew)."""
        return self.bytes_before - self.bytes_after


@dataclass(frozen=True)
class CompressionResult:
    """The flatbuffer to deploy and what DECODE compression did to it.

    ``bytes_before``/``bytes_after`` are file sizes; ``constant_bytes_*`` sum
    every constant buffer (filters, biases, value tables, indices, bitmasks),
    the weight payload a device stores. ``note`` says why nothing was applied.

    Example:
        >>> r = CompressionResult(flatbuffer=b"...", tensors=(), bytes_before=3,
        ...                       bytes_after=3, note="mode 'off'")
        >>> r.applied, r.needs_decode, r.encodings
        (False, False, ())
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

    @property
    def encodings(self) -> tuple[str, ...]:
        """The encodings used, in ``ENCODINGS`` order."""
        used = {t.encoding for t in self.tensors}
        return tuple(e for e in ENCODINGS if e in used)

    def summary(self) -> str:
        """One line for logs and reports.

        Example:
            >>> CompressionResult(b"", (), 10, 10, note="no candidates").summary()
            'DECODE compression not applied: no candidates'
        """
        if not self.tensors:
            return f"DECODE compression not applied: {self.note or 'nothing compressed'}"
        parts = []
        lut = [t for t in self.tensors if t.encoding == "lut"]
        prune = [t for t in self.tensors if t.encoding == "prune"]
        if lut:
            parts.append(f"{len(lut)} LUT tensor(s) at {sorted({t.bits for t in lut})} bit(s)")
        if prune:
            low, high = min(t.density for t in prune), max(t.density for t in prune)
            parts.append(f"{len(prune)} PRUNE tensor(s) at density {low:.0%}-{high:.0%}")
        return (
            f"DECODE compression: {', '.join(parts)}, file {self.bytes_before} -> {self.bytes_after} B, "
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


def prune_bytes(elements: int, kept: int, itemsize: int = 1) -> int:
    """Bytes PRUNE stores for a tensor: bitmask, 16-byte DECODE header, kept values.

    Example (int8 weights at 50, 75 and 90% sparsity, per weight):
        >>> [prune_bytes(8000, k) / 8000 for k in (4000, 2000, 800)]
        [0.627, 0.377, 0.227]
    """
    return math.ceil(elements / 8) + DECODE_HEADER_BYTES + kept * itemsize


def prune_encode(
    values: np.ndarray, zero_points: Union[int, np.ndarray] = 0, axis: Optional[int] = None
) -> tuple[bytes, bytes]:
    """PRUNE-encode ``values``: (bitmask, ancillary data) as TFLite Micro's DECODE reads them.

    An element is pruned when it equals its zero point: ``zero_points[c]`` of
    its channel ``c`` along ``axis`` (int8 per-channel quantization), else the
    single zero point. The bitmask has one bit per element in row-major order,
    most significant bit first, set for a stored value; the ancillary data is
    the 16-byte DECODE header (type 2, version 1, PRUNE version 1) followed by
    the stored values in the same order, in the tensor's own type. Float
    elements are compared bitwise, so -0.0 is stored (the decoder writes +0.0).

    Example:
        >>> mask, ancillary = prune_encode(np.array([[0, 5, 0, 7], [3, 0, 0, 0]], np.int8))
        >>> mask.hex(), ancillary[:6].hex(), ancillary[16:].hex()
        ('58', '020100000100', '050703')
        >>> mask, ancillary = prune_encode(np.array([[1, 5], [2, 2]], np.int8),
        ...                                zero_points=np.array([1, 2]), axis=0)
        >>> mask.hex(), ancillary[16:].hex()
        ('40', '05')
    """
    array = np.ascontiguousarray(values)
    zero = np.asarray(zero_points).astype(array.dtype)
    if zero.size > 1:
        if axis is None or array.shape[axis] != zero.size:
            raise ValueError(f"{zero.size} zero points do not match the tensor's shape "
                             f"{array.shape} on axis {axis}")
        zero = zero.reshape([-1 if d == axis else 1 for d in range(array.ndim)])
    elif zero.size == 1:
        zero = zero.reshape(())
    if array.dtype.kind == "f":
        # bitwise: -0.0 and NaN payloads are values to keep
        width = np.dtype(f"u{array.dtype.itemsize}")
        keep = array.view(width) != np.broadcast_to(zero, array.shape).astype(array.dtype).view(width)
    else:
        keep = array != zero
    keep = keep.reshape(-1)
    header = bytearray(DECODE_HEADER_BYTES)
    header[0], header[1], header[4] = PRUNE_DECODE_TYPE, 1, _PRUNE_VERSION
    stored = array.reshape(-1)[keep].astype(array.dtype.newbyteorder("<"))
    return np.packbits(keep).tobytes(), bytes(header) + stored.tobytes()


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
    candidates, skipped = _scan_lut(model, _check_max_values(max_values))
    return _drop_shared_buffers(model, candidates, skipped)[0]


def find_prune_candidates(flatbuffer: Flatbuffer) -> list[PruneCandidate]:
    """Constant filters and biases TFLite Micro's PRUNE decoder can rebuild, with their sizes.

    Every such tensor is listed, sparse or not (``density`` and ``bytes_after``
    say whether PRUNE pays); tensors the decoder cannot handle or that must
    stay constant are left out (``compress_weights(..., mode="prune").skipped``
    says why).

    Example:
        >>> model = open("build/model.tflite", "rb").read()  # doctest: +SKIP
        >>> [(c.operator, round(c.density, 2)) for c in find_prune_candidates(model)]  # doctest: +SKIP
        [('CONV_2D', 0.1), ('CONV_2D', 1.0), ('FULLY_CONNECTED', 0.1), ('FULLY_CONNECTED', 1.0)]
    """
    model = _read_model(flatbuffer)
    candidates, skipped = _scan_prune(model)
    return _drop_shared_buffers(model, candidates, skipped)[0]


def compress_weights(
    flatbuffer: Flatbuffer,
    mode: str = "auto",
    max_values: int = 16,
    encodings: tuple[str, ...] = ENCODINGS,
) -> CompressionResult:
    """Store constant tensors with TFLite Micro's DECODE: LUT, PRUNE, or the smaller per tensor.

    Modes: ``"auto"`` stores each filter (and bias) in the smallest of plain,
    LUT and PRUNE, counting the DECODE header, alignment and the graph
    structure a DECODE adds, and keeps the result only if the whole file is
    smaller, else returns the input unchanged; ``"lut"`` LUT-compresses every
    LUT candidate and ``"prune"`` PRUNE-encodes every filter, even where the
    file grows (ValueError if there is nothing to encode); ``"off"`` returns
    the input unchanged. ``encodings`` restricts ``"auto"`` (e.g. ``("lut",)``
    to see what the file would be without PRUNE). The output runs only on a
    TFLM build with DECODE.

    Example (see the module docstring for one that runs end to end):
        >>> result = compress_weights(open("build/model.tflite", "rb").read())  # doctest: +SKIP
        >>> result.summary()  # doctest: +SKIP
        'DECODE compression: 9 PRUNE tensor(s) at density 10%-10%, file 98496 -> 41280 B, ...'
        >>> compress_weights(b"", mode="zip")
        Traceback (most recent call last):
        ...
        ValueError: mode must be one of 'auto', 'lut', 'prune', 'off'; got 'zip'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    unknown = [e for e in encodings if e not in ENCODINGS] if isinstance(encodings, (tuple, list)) else [encodings]
    if unknown or not encodings:
        raise ValueError(f"encodings must be a non-empty tuple of {', '.join(map(repr, ENCODINGS))}; "
                         f"got {encodings!r}")
    if mode in ENCODINGS:
        encodings = (mode,)
    return _compress(flatbuffer, mode, _check_max_values(max_values), tuple(encodings))


def lut_compress(
    flatbuffer: Flatbuffer, max_values: int = 16, mode: str = "auto"
) -> CompressionResult:
    """Store low-cardinality filters with TFLM LUT compression (DECODE operators).

    Modes: ``"auto"`` compresses the candidates that shrink and keeps the
    result only if the whole file is smaller, else returns the input unchanged;
    ``"lut"`` compresses every candidate and returns the result even if it is
    not smaller (ValueError if there is nothing to compress); ``"off"`` returns
    the input unchanged. The output runs only on a TFLM build with DECODE.
    :func:`compress_weights` also weighs PRUNE.

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
    if mode not in _LUT_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _LUT_MODES))}; got {mode!r}")
    return _compress(flatbuffer, mode, _check_max_values(max_values), ("lut",))


# ---------------------------------------------------------------- internals


def _compress(flatbuffer: Flatbuffer, mode: str, max_values: int, encodings: tuple[str, ...]) -> CompressionResult:
    data = check_flatbuffer(flatbuffer)
    model = _read_model(data)
    unchanged = _unchanged_result(data, mode)
    if mode == "off":
        return unchanged(note="mode 'off'")

    lut, lut_skipped = _scan_lut(model, max_values) if "lut" in encodings else ([], [])
    prune, prune_skipped = _scan_prune(model) if "prune" in encodings else ([], [])
    skipped = lut_skipped + prune_skipped
    if mode == "auto":
        chosen, losing = _choose(lut + prune)
        skipped += losing
    elif mode == "lut":
        chosen = lut
    else:
        chosen = [c for c in prune if c.operator in LUT_OPERATORS and _position(model, c) == 1]
    chosen, skipped = _drop_shared_buffers(model, chosen, skipped)
    if not chosen:
        note = _no_candidates_note(encodings, max_values, skipped)
        if mode != "auto":
            raise ValueError(f"mode {mode!r} has nothing to compress: {note}")
        return unchanged(note=note, skipped=tuple(skipped))

    compressed = _encode(data, chosen)
    result = _describe(data, compressed, chosen, skipped, mode)
    if mode == "auto" and not result.applied:
        return unchanged(
            note=f"compressed file not smaller ({len(data)} -> {len(compressed)} B)",
            skipped=result.skipped,
        )
    return result


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


def _unchanged_result(data: bytes, mode: str):
    payload = constant_bytes(data)

    def make(note: str, skipped: tuple[SkippedTensor, ...] = ()) -> CompressionResult:
        return CompressionResult(
            flatbuffer=data, tensors=(), bytes_before=len(data), bytes_after=len(data),
            constant_bytes_before=payload, constant_bytes_after=payload,
            skipped=tuple(skipped), mode=mode, note=note,
        )

    return make


def _operands(subgraph: "model_editor.Subgraph", positions: dict[str, tuple[int, ...]]):
    """Yield (operator name, tensor) once per distinct constant tensor read at ``positions``."""
    seen: set[int] = set()
    for op in subgraph.operators:
        for position in positions.get(op.opcode_name, ()):
            if len(op.inputs) <= position:
                continue
            tensor = op.inputs[position]
            if tensor is None or id(tensor) in seen or tensor.buffer is None or not tensor.buffer.data:
                continue
            seen.add(id(tensor))
            yield op.opcode_name, tensor


def _position(model: "model_editor.Model", candidate: Candidate) -> int:
    """The input position at which the first reader of ``candidate`` takes it."""
    subgraph = model.subgraphs[candidate.subgraph]
    tensor = subgraph.tensors[candidate.index]
    for op in subgraph.operators:
        for position, operand in enumerate(op.inputs):
            if operand is tensor:
                return position
    return -1


def _table_axis(tensor: "model_editor.Tensor") -> tuple[Optional[int], str]:
    """(value-table axis the decoder will use, reason it cannot decode or '').

    The axis is None for one table over the whole tensor. When there is a
    reason, the axis is still the one to count values along, so the tensor is
    reported as skipped rather than silently ignored.
    """
    quant = tensor.quantization
    if quant is None or not quant.scales:
        return None, "has no quantization parameters"
    return _quantized_axis(tensor)


def _quantized_axis(tensor: "model_editor.Tensor") -> tuple[Optional[int], str]:
    """(channel axis DecodeState::Setup derives from the quantization, reason it fails or '')."""
    quant = tensor.quantization
    if quant is None or not quant.scales:
        return None, ""
    rank, scales = len(tensor.shape), len(quant.scales)
    axis = quant.axis
    in_range = axis if axis is not None and 0 <= axis < rank else None
    if scales == 1:
        # DecodeStateLut/Prune::Setup error on a single-scale tensor on a nonzero axis.
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


def _lut_candidate(
    subgraph: int, operator: str, tensor: "model_editor.Tensor", max_values: int
) -> tuple[Optional[LutCandidate], str]:
    """The candidate for one filter, or (None, reason); reason '' = not low-cardinality."""
    if tensor.numpy_dtype != np.int8:
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


def _zero_points(tensor: "model_editor.Tensor") -> tuple[np.ndarray, Optional[int], str]:
    """(zero points PRUNE writes, their axis or None, reason the decoder cannot or '')."""
    axis, problem = _quantized_axis(tensor)
    quant = tensor.quantization
    zeros = np.zeros(1, np.int64)
    if quant is not None and quant.scales:
        zeros = np.atleast_1d(np.asarray(quant.zero_points, dtype=np.int64))
    if problem:
        return zeros, axis, problem
    if tensor.numpy_dtype != np.int8:
        # DecodeStatePrune::Setup: "zero-point is not 0" for every type but int8
        if np.any(zeros != 0):
            return zeros, axis, f"{tensor.numpy_dtype} tensor with a nonzero zero point, which PRUNE rejects"
        return np.zeros(1, np.int64), None, ""
    if zeros.size > 1 and axis is not None and zeros.size != tensor.shape[axis]:
        return zeros, axis, f"has {zeros.size} zero points for {tensor.shape[axis]} channels"
    if zeros.size == 1 or np.all(zeros == zeros[0]):
        return zeros[:1], None, ""
    return zeros, axis, ""


def _prune_candidate(
    subgraph: int, operator: str, tensor: "model_editor.Tensor"
) -> tuple[Optional[PruneCandidate], str]:
    dtype = np.dtype(tensor.numpy_dtype)
    if dtype.name not in _PRUNE_DTYPES:
        return None, ""
    zeros, axis, problem = _zero_points(tensor)
    if problem:
        return None, problem
    array = tensor.array
    encoded, ancillary = prune_encode(array, zeros, axis)
    kept = (len(ancillary) - DECODE_HEADER_BYTES) // dtype.itemsize
    return PruneCandidate(
        subgraph=subgraph, index=tensor.index, name=tensor.name or f"tensor {tensor.index}",
        operator=operator, shape=tuple(tensor.shape), axis=_quantized_axis(tensor)[0], kept=kept,
        elements=array.size,
        bytes_before=len(tensor.buffer.data), bytes_after=len(encoded) + len(ancillary),
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
    if any(op.custom_code == _DECODE_OP for op in subgraph.consumers_of(tensor)):
        return "is already DECODE-encoded"
    return ""


def _scan_lut(
    model: "model_editor.Model", max_values: int
) -> tuple[list[LutCandidate], list[SkippedTensor]]:
    candidates: list[LutCandidate] = []
    skipped: list[SkippedTensor] = []
    for s, subgraph in enumerate(model.subgraphs):
        for operator, tensor in _operands(subgraph, {op: (p,) for op, p in LUT_OPERATORS.items()}):
            candidate, reason = _lut_candidate(s, operator, tensor, max_values)
            reason = reason or (_blocker(subgraph, tensor) if candidate else "")
            if reason:
                skipped.append(SkippedTensor(s, tensor.index, tensor.name or "", reason))
            elif candidate is not None:
                candidates.append(candidate)
    return candidates, skipped


def _scan_prune(model: "model_editor.Model") -> tuple[list[PruneCandidate], list[SkippedTensor]]:
    candidates: list[PruneCandidate] = []
    skipped: list[SkippedTensor] = []
    for s, subgraph in enumerate(model.subgraphs):
        for operator, tensor in _operands(subgraph, PRUNE_INPUTS):
            if _blocker(subgraph, tensor):
                continue  # the LUT scan names filters that must stay constant; biases need no word
            candidate, reason = _prune_candidate(s, operator, tensor)
            if reason:
                skipped.append(SkippedTensor(s, tensor.index, tensor.name or "", f"PRUNE: {reason}"))
            elif candidate is not None:
                candidates.append(candidate)
    return candidates, skipped


def _overhead(candidate: Candidate) -> int:
    # A name is written again twice, with "_ancillary" and "_decoded" (decode_insert.py).
    named = candidate.name and candidate.name != f"tensor {candidate.index}"
    return DECODE_TENSOR_OVERHEAD + (2 * len(candidate.name) + 50 if named else 0)


def _choose(candidates: list[Candidate]) -> tuple[list[Candidate], list[SkippedTensor]]:
    """Per tensor the encoding with the smallest estimated file cost, if it beats plain."""
    by_tensor: dict[tuple[int, int], list[Candidate]] = {}
    for c in candidates:
        by_tensor.setdefault((c.subgraph, c.index), []).append(c)
    chosen, losing = [], []
    for options in by_tensor.values():
        best = min(options, key=lambda c: c.bytes_after + _overhead(c))
        if best.bytes_after + _overhead(best) < best.bytes_before:
            chosen.append(best)
            continue
        for c in options:
            if c.encoding == "lut" or c.density <= 7 / 8:  # a tensor with zeros to spare: say why not
                losing.append(SkippedTensor(c.subgraph, c.index, c.name, _loses(c)))
    return chosen, losing


def _loses(c: Candidate) -> str:
    what = (f"{c.values_per_channel} values per {'tensor' if c.axis is None else 'channel'}"
            if c.encoding == "lut" else f"density {c.density:.0%}")
    extra = f" plus about {_overhead(c)} B of DECODE structure" if c.bytes_after < c.bytes_before else ""
    return (f"{c.encoding.upper()} would not shrink it ({c.bytes_before} -> {c.bytes_after} B{extra} "
            f"with {what})")


def _drop_shared_buffers(
    model: "model_editor.Model", candidates: list, skipped: list[SkippedTensor]
) -> tuple[list, list[SkippedTensor]]:
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

    def tensor_of(c: Candidate):
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


def _no_candidates_note(encodings: tuple[str, ...], max_values: int, skipped: list[SkippedTensor]) -> str:
    wanted = []
    if "lut" in encodings:
        wanted.append(f"no int8 {'/'.join(LUT_OPERATORS)} filter has <= {max_values} distinct values "
                      "per value table that TFLM can compress")
    if "prune" in encodings:
        wanted.append("no filter or bias is sparse enough for PRUNE to pay")
    note = "; ".join(wanted)
    if skipped:
        note += f" ({len(skipped)} skipped: " + "; ".join(
            f"{s.name}: {s.reason}" for s in skipped[:3]) + ")"
    return note


def _encode(data: bytes, chosen: list[Candidate]) -> bytes:
    """The flatbuffer with ``chosen`` tensors encoded and DECODE operators inserted before their readers."""
    from tflite_micro.tensorflow.lite.micro.compression import (
        compressor,
        decode_insert,
        lut,
        model_editor,
        spec,
    )

    model = model_editor.read(data)
    results = {}
    try:
        for c in chosen:
            tensor = model.subgraphs[c.subgraph].tensors[c.index]
            if c.encoding == "lut":
                method = spec.LookUpTableCompression(
                    index_bitwidth=c.bits,
                    mode=spec.PerTensor() if c.axis is None else spec.PerChannel(axis=c.axis))
                results[(c.subgraph, c.index)] = lut.LutCompressor().compress(tensor, method)
            else:
                zeros, axis, _ = _zero_points(tensor)
                encoded, ancillary = prune_encode(tensor.array, zeros, axis)
                results[(c.subgraph, c.index)] = compressor.CompressionResult(encoded, ancillary)
        # Its warnings (expansion, dropped aliases) are what the scans already report.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decode_insert.insert_decode_operators(model, results)
        return align_flatbuffer(_without_encoded_quantization(bytes(model.build())))
    except compressor.CompressionError as exc:
        raise ValueError(
            f"TFLM DECODE compression failed: {exc}; use compress='off' to export uncompressed"
        ) from exc
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(
            f"TFLM DECODE compression failed ({type(exc).__name__}: {exc}); "
            "use compress='off' to export uncompressed"
        ) from exc


def _without_encoded_quantization(data: bytes) -> bytes:
    """Drop the quantization parameters the encoded (uint8) DECODE inputs keep.

    TFLM's DECODE insertion copies the original tensor's quantization onto the
    decoded output but, through ``model_editor``, leaves it on the encoded
    tensor too: a second copy (12 B a channel) that no kernel reads.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    decode = {i for i, code in enumerate(model.operatorCodes or []) if code.customCode == _DECODE_OP.encode()}
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            if op.opcodeIndex in decode:
                for position, index in enumerate(op.inputs):
                    if position % 2 == 0 and index >= 0:
                        subgraph.tensors[index].quantization = None
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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
    data: bytes, compressed: bytes, chosen: list[Candidate], skipped: list[SkippedTensor], mode: str,
) -> CompressionResult:
    sizes = _decoded_sizes(_read_model(compressed))
    done, dropped = [], []
    for c in chosen:
        size = sizes.get((c.subgraph, c.index))
        if size is None:
            dropped.append(SkippedTensor(c.subgraph, c.index, c.name,
                                         "dropped by TFLM's compressor (no DECODE reads it)"))
            continue
        lut = c.encoding == "lut"
        done.append(CompressedTensor(
            name=c.name, index=c.index, bits=c.bits if lut else None,
            values_per_channel=c.values_per_channel if lut else None,
            bytes_before=c.bytes_before, bytes_after=size, subgraph=c.subgraph, axis=c.axis,
            encoding=c.encoding, density=None if lut else round(c.density, 6),
        ))
    return CompressionResult(
        flatbuffer=compressed, tensors=tuple(done), bytes_before=len(data),
        bytes_after=len(compressed), constant_bytes_before=constant_bytes(data),
        constant_bytes_after=constant_bytes(compressed), skipped=tuple(skipped + dropped),
        mode=mode, note="" if done else "TFLM's compressor compressed nothing",
    )
