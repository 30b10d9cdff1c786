"""Read any ``.tflite`` flatbuffer and describe what a device pays for it.

``read_model`` parses the bytes with the pure-Python flatbuffer schema shipped in
the ``tflite-micro`` package (TensorFlow is never imported), so it reads models
tfprune did not make too: the converter's int8 and float models, TFLite Micro
DECODE-compressed models (LUT and PRUNE) and Larq Compute Engine models
(custom ``Lce*`` operators).

What it reports, all read from the flatbuffer itself:

* ``size_bytes``: the length of the flatbuffer, what the device stores.
* ``weight_bytes``: the data of every constant buffer a tensor references
  (weights, biases, shape constants, LUT indices and value tables), each shared
  buffer counted once. Flatbuffer padding and metadata are not in it.
* ``macs``: multiply-accumulates of one inference, counted for ``CONV_2D``,
  ``DEPTHWISE_CONV_2D``, ``FULLY_CONNECTED``, ``TRANSPOSE_CONV`` and LCE's
  ``LceBconv2d`` (binary MACs, i.e. XNOR-popcount bit operations counted one per
  weight use). Every other operator counts 0 MACs.
* ``layers``: one row per such operator, with channel counts, weights and the
  zeros of the real-valued kernel, decoded for DECODE-compressed kernels.
* ``encoded``: one row per tensor a ``DECODE`` operator rebuilds: its encoding
  (LUT index bits, PRUNE density), the bytes stored and the bytes it saves.

Operators, tensors, MACs and layers describe subgraph 0 (the one an interpreter
invokes); ``op_names`` and ``weight_bytes`` cover every subgraph, since the op
resolver must register all operators and the flash holds all constants.

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> info = read_model(mlperf_path("pretrainedResnet_quant.tflite").read_bytes())
    >>> info.size_bytes, info.macs, info.weight_bytes
    (98496, 12501632, 78752)
    >>> print(format_table(info))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TensorInfo",
    "OperatorInfo",
    "LayerInfo",
    "ModelInfo",
    "EncodedTensorInfo",
    "DECODE_HEADER_BYTES",
    "LUT_DECODE_TYPE",
    "PRUNE_DECODE_TYPE",
    "check_flatbuffer",
    "constant_bytes",
    "read_model",
    "read_model_file",
    "format_table",
]

# Operators with a weight kernel, mapped to (data input position, kernel input position).
_LAYER_OPS = {
    "CONV_2D": (0, 1),
    "DEPTHWISE_CONV_2D": (0, 1),
    "FULLY_CONNECTED": (0, 1),
    "TRANSPOSE_CONV": (2, 1),  # inputs: output_shape, weights, input[, bias]
    "LceBconv2d": (0, 1),
}

# TFLite Micro registers DECODE as a custom operator under this code.
_DECODE_CUSTOM_CODE = "TFLM_DECODE"
#: DECODE Common Metadata byte 0: LUT and PRUNE (``DecodeState::kDcmTypeLUT``/``kDcmTypePrune``).
LUT_DECODE_TYPE = 0
PRUNE_DECODE_TYPE = 2
_DECODE_TYPE_NAMES = {LUT_DECODE_TYPE: "lut", 1: "huffman", PRUNE_DECODE_TYPE: "prune"}
#: The DECODE Common Metadata header that starts each DECODE ancillary tensor (TFLite Micro).
DECODE_HEADER_BYTES = 16
_LUT_PER_TENSOR_AXIS = 0xF
_LCE_WORD_BITS = 32  # LCE packs binary filters along input channels into int32 words

_NUMPY_DTYPES = {
    "float16", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "bool",
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of subgraph 0.

    ``dtype`` is a numpy-style name ("int8", "float32", ...; TFLite-only types
    keep their lower-cased schema name, e.g. "int4"). ``buffer_bytes`` is the
    constant data stored for it (0 for activations). ``scales`` and
    ``zero_points`` are empty for unquantized tensors.

    Example:
        >>> t = TensorInfo(0, "input", (1, 32, 32, 3), "int8", 0, (0.0078,), (-1,), 0)
        >>> t.is_constant, t.size
        (False, 3072)
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer_bytes: int
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    buffer: int = 0  # index into the model's buffer table

    @property
    def is_constant(self) -> bool:
        """True when the flatbuffer stores data for this tensor."""
        return self.buffer_bytes > 0

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar)."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of subgraph 0, in execution order.

    ``name`` is the builtin name ("CONV_2D") or, for custom operators, the custom
    code ("LceBconv2d"); TFLite Micro's DECODE, stored as the custom code
    ``TFLM_DECODE``, is named "DECODE" (``custom_code`` keeps the stored code).
    ``inputs``/``outputs`` are tensor indices, -1 for an omitted optional input.

    Example:
        >>> op = OperatorInfo(0, "CONV_2D", (0, 8, 3), (22,), 442368, False)
        >>> op.name, op.macs
        ('CONV_2D', 442368)
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int
    is_custom: bool
    custom_code: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """One weighted operator (conv, depthwise, fully connected, transpose conv, LCE bconv).

    ``name`` is the output tensor's name, where the converter records the Keras
    layer (often fused with BatchNorm/activation names); ``keras_name`` is a
    best-effort short Keras layer name. ``kernel_shape`` is the logical kernel in
    TFLite layout (OHWI conv, 1HWC depthwise, (units, in) dense, OHWI transpose
    conv; LCE's bit-packed filter is reported unpacked). ``weight_zeros`` counts
    zeros of the real-valued kernel (entries equal to the zero point), decoded
    from the LUT for a compressed kernel; None when unknown (e.g. LCE binary
    kernels, which have no zeros to skip, or non-constant kernels).
    ``kernel_bytes`` is what the flatbuffer stores for the kernel: for a
    DECODE-compressed kernel, its encoded data plus its ancillary tensor;
    ``encoding`` is then ``"lut"`` or ``"prune"`` (else "").

    Example:
        >>> layer = LayerInfo("conv", "CONV_2D", 3, 16, (16, 3, 3, 3), 432, 108, 442368)
        >>> layer.sparsity
        0.25
    """

    name: str
    op: str
    input_channels: int
    output_channels: int
    kernel_shape: tuple[int, ...]
    weight_count: int
    weight_zeros: int | None
    macs: int
    op_index: int = -1
    keras_name: str = ""
    weight_name: str = ""
    kernel_bytes: int = 0
    compressed: bool = False
    encoding: str = ""

    @property
    def sparsity(self) -> float | None:
        """Fraction of kernel entries that are zero, or None when unknown."""
        if self.weight_zeros is None or not self.weight_count:
            return None
        return self.weight_zeros / self.weight_count


@dataclass(frozen=True)
class EncodedTensorInfo:
    """A tensor of subgraph 0 that a ``DECODE`` operator rebuilds at every inference.

    ``encoding`` is ``"lut"`` (``bits`` per index, ``values_per_channel`` in
    each value table), ``"prune"`` (``density``: share of elements stored),
    or ``"huffman"``/``"type N"`` for decoders tfprune does not read.
    ``stored_bytes`` is the encoded data plus the ancillary tensor,
    ``decoded_bytes`` what DECODE writes into the arena; ``index`` is the
    encoded tensor's (the original constant's index, which DECODE insertion keeps).

    Example:
        >>> t = EncodedTensorInfo("conv", "prune", (16, 3, 3, 3), "int8", 102 + 54, 432, density=0.2)
        >>> t.bytes_saved
        276
    """

    name: str
    encoding: str
    shape: tuple[int, ...]
    dtype: str
    stored_bytes: int
    decoded_bytes: int
    bits: int | None = None
    values_per_channel: int | None = None
    density: float | None = None
    index: int = -1

    @property
    def bytes_saved(self) -> int:
        """Decoded bytes minus stored bytes (negative when the encoding costs more)."""
        return self.decoded_bytes - self.stored_bytes


@dataclass(frozen=True)
class ModelInfo:
    """What ``read_model`` found in a flatbuffer (see the module docstring).

    Example:
        >>> info = ModelInfo(100, (), (), (), (), (), 0, 0, (), False)
        >>> info.weight_count, info.subgraph_count
        (0, 1)
    """

    size_bytes: int
    operators: tuple[OperatorInfo, ...]
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_names: tuple[str, ...]
    weight_bytes: int
    macs: int
    layers: tuple[LayerInfo, ...]
    is_compressed: bool
    subgraph_count: int = 1
    description: str = ""
    encoded: tuple[EncodedTensorInfo, ...] = ()

    @property
    def weight_count(self) -> int:
        """Kernel entries over all layers (biases excluded)."""
        return sum(layer.weight_count for layer in self.layers)

    @property
    def weight_zeros(self) -> int | None:
        """Kernel zeros over all layers, or None when any layer's zeros are unknown."""
        zeros = [layer.weight_zeros for layer in self.layers]
        return None if any(z is None for z in zeros) else sum(zeros)


def read_model(flatbuffer: bytes | bytearray | memoryview) -> ModelInfo:
    """Describe a ``.tflite`` flatbuffer.

    Raises ``ValueError`` with one line for bytes that are not a TFLite flatbuffer
    or that cannot be parsed as one.

    Example:
        >>> read_model(b"definitely not a model")
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: file identifier is b'nite', expected b'TFL3'
    """
    data = check_flatbuffer(flatbuffer)
    model = unpack_model(data)
    try:
        return _describe(model, data)
    except (IndexError, KeyError, TypeError, ValueError, OverflowError) as error:
        # E.g. indices past a table's end: the file parsed but is inconsistent.
        raise ValueError(f"malformed TFLite flatbuffer: {_one_line(error)}") from error


def check_flatbuffer(flatbuffer: bytes | bytearray | memoryview) -> bytes:
    """The bytes of ``flatbuffer`` when they start like a TFLite model; ``ValueError`` otherwise.

    Every reader of flatbuffers in tfprune checks its input here first, so a
    wrong input gets the same one line whichever reader it reaches.

    Example:
        >>> check_flatbuffer(b"short")
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: 5 bytes is too short for a flatbuffer header
    """
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise TypeError("a flatbuffer must be the model's bytes (e.g. open('model.tflite', 'rb').read()), "
                        f"got {type(flatbuffer).__name__}")
    data = bytes(flatbuffer)
    if len(data) < 8:
        raise ValueError(f"not a TFLite flatbuffer: {len(data)} bytes is too short for a flatbuffer header")
    if data[4:8] != b"TFL3":
        raise ValueError(f"not a TFLite flatbuffer: file identifier is {data[4:8]!r}, expected b'TFL3'")
    return data


def constant_bytes(flatbuffer: bytes | bytearray | memoryview) -> int:
    """Bytes of all constant tensor data, each shared buffer counted once (``ModelInfo.weight_bytes``).

    This is the weight payload: filters, biases, and after compression the
    packed indices and value tables; the rest of the file is graph structure.

    Example:
        >>> constant_bytes(b"garbage!")
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: file identifier is b'age!', expected b'TFL3'
    """
    return read_model(flatbuffer).weight_bytes


def read_model_file(path: Any) -> ModelInfo:
    """``read_model`` on the bytes of a file (``str`` or ``os.PathLike``).

    Example:
        >>> read_model_file("missing.tflite")
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: 'missing.tflite'
    """
    with open(path, "rb") as handle:
        return read_model(handle.read())


def format_table(info: ModelInfo) -> str:
    """A compact per-layer table (name, op, in->out channels, MACs, sparsity) with totals.

    Example:
        >>> layer = LayerInfo("model/conv/Conv2D", "CONV_2D", 3, 16, (16, 3, 3, 3), 432, 108,
        ...                   442368, keras_name="conv")
        >>> info = ModelInfo(2000, (), (), (), (), ("CONV_2D",), 496, 442368, (layer,), False)
        >>> print(format_table(info))  # doctest: +NORMALIZE_WHITESPACE
        layer  op       in->out    weights  sparsity     MACs
        conv   CONV_2D   3->16         432     25.0%  442,368
        total: 1 layers, 432 weights, 25.0% zero, 442,368 MACs; weight buffers 496 B, flatbuffer 2,000 B
    """
    rows = [("layer", "op", "in->out", "weights", "sparsity", "MACs")]
    for layer in info.layers:
        label = _shorten(layer.keras_name or layer.name, 28)
        op = layer.op + (f" ({layer.encoding.upper() or 'DECODE'})" if layer.compressed else "")
        rows.append((label, op, f"{layer.input_channels}->{layer.output_channels}",
                     f"{layer.weight_count:,}", _percent(layer.sparsity), f"{layer.macs:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(_align(cell, width, i) for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.append(_totals_line(info))
    return "\n".join(lines)


# ---------------------------------------------------------------- parsing


@functools.cache
def schema() -> Any:
    """TFLite's generated flatbuffer schema module (the object API every reader and writer here uses).

    Imported on first use so that importing this module stays cheap.

    Example:
        >>> schema().BuiltinOperator.CONV_2D
        3
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@functools.cache
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(schema(), enum_name)
    return {value: name for name, value in vars(enum).items() if not name.startswith("_")}


def unpack_model(data: bytes) -> Any:
    """The flatbuffer as the schema's mutable ``ModelT`` object; ``ValueError`` in one line when it is not one.

    Example:
        >>> unpack_model(b"nope")
        Traceback (most recent call last):
        ...
        ValueError: not a TFLite flatbuffer: 4 bytes is too short for a flatbuffer header
    """
    check_flatbuffer(data)
    try:
        model = schema().ModelT.InitFromPackedBuf(data, 0)
    except Exception as error:  # the generated parser raises whatever struct/numpy raise
        raise ValueError(f"not a TFLite flatbuffer: truncated or corrupt ({_one_line(error)})") from error
    if not model.subgraphs:
        raise ValueError("not a usable TFLite flatbuffer: it has no subgraphs")
    return model


def _one_line(error: Exception, width: int = 120) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


class _Graph:
    """Subgraph 0 of a parsed model, with buffer access and producers."""

    def __init__(self, model: Any, data: bytes):
        self.model = model
        self.data = data
        self.subgraph = model.subgraphs[0]
        self.raw_tensors = list(self.subgraph.tensors or [])
        self.raw_operators = list(self.subgraph.operators or [])
        self.tensors = tuple(self._tensor_info(i, t) for i, t in enumerate(self.raw_tensors))
        self.op_names = [_op_name(model, op) for op in self.raw_operators]
        self.producers = {out: i for i, op in enumerate(self.raw_operators) for out in _ints(op.outputs)}

    def buffer(self, buffer_index: int) -> np.ndarray | None:
        """The constant data of a buffer as uint8, or None when it holds none."""
        buffers = self.model.buffers or []
        if not 0 <= buffer_index < len(buffers) or buffers[buffer_index] is None:
            return None
        buf = buffers[buffer_index]
        # offset > 1 marks data stored after the flatbuffer (models over 2 GB layout).
        if buf.offset > 1 and buf.size:
            return np.frombuffer(self.data, np.uint8, count=buf.size, offset=buf.offset)
        if buf.data is not None and len(buf.data):
            return np.asarray(buf.data, dtype=np.uint8)
        return None

    def tensor_data(self, index: int) -> np.ndarray | None:
        return self.buffer(self.raw_tensors[index].buffer) if index >= 0 else None

    def _tensor_info(self, index: int, tensor: Any) -> TensorInfo:
        data = self.buffer(tensor.buffer)
        quant = tensor.quantization
        scales = tuple(float(s) for s in quant.scale) if quant is not None and quant.scale is not None else ()
        zeros = tuple(int(z) for z in quant.zeroPoint) if quant is not None and quant.zeroPoint is not None else ()
        return TensorInfo(
            index=index,
            name=_text(tensor.name),
            shape=tuple(int(d) for d in tensor.shape) if tensor.shape is not None else (),
            dtype=_enum_names("TensorType").get(tensor.type, f"type_{tensor.type}").lower(),
            buffer_bytes=0 if data is None else int(data.size),
            scales=scales,
            zero_points=zeros,
            quantized_dimension=int(quant.quantizedDimension) if quant is not None else 0,
            buffer=int(tensor.buffer),
        )


def _ints(values: Any) -> tuple[int, ...]:
    return () if values is None else tuple(int(v) for v in values)


def _builtin_code(model: Any, op: Any) -> int | None:
    codes = model.operatorCodes or []
    if not 0 <= op.opcodeIndex < len(codes):
        return None
    code = codes[op.opcodeIndex]
    # Codes past 127 live only in builtinCode; older files only fill the deprecated byte.
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _custom_code(model: Any, op: Any) -> str | None:
    if _builtin_code(model, op) != schema().BuiltinOperator.CUSTOM:
        return None
    return _text(model.operatorCodes[op.opcodeIndex].customCode)


def _op_name(model: Any, op: Any) -> str:
    builtin = _builtin_code(model, op)
    if builtin is None:
        return "UNKNOWN"
    custom = _custom_code(model, op)
    if custom is not None:
        return "DECODE" if custom == _DECODE_CUSTOM_CODE else custom or "CUSTOM"
    return _enum_names("BuiltinOperator").get(builtin, f"BUILTIN_{builtin}")


def _custom_options(op: Any) -> dict[str, Any]:
    if op.customOptions is None or not len(op.customOptions):
        return {}
    try:
        from flatbuffers import flexbuffers

        options = flexbuffers.Loads(bytes(bytearray(op.customOptions)))
    except Exception:  # options of unknown custom ops need not be flexbuffers
        return {}
    return options if isinstance(options, dict) else {}


# ---------------------------------------------------------------- MACs


def _shape(graph: _Graph, index: int) -> tuple[int, ...]:
    return graph.tensors[index].shape if 0 <= index < len(graph.tensors) else ()


def _input(op: Any, position: int) -> int:
    inputs = _ints(op.inputs)
    return inputs[position] if position < len(inputs) else -1


def _output(op: Any) -> int:
    outputs = _ints(op.outputs)
    return outputs[0] if outputs else -1


def _lce_in_per_group(graph: _Graph, op: Any) -> tuple[int, int]:
    """(channels_in, channels_in per group) of an LceBconv2d."""
    kernel = _shape(graph, _input(op, 1))
    words = kernel[3] if len(kernel) == 4 else 0
    channels_in = int(_custom_options(op).get("channels_in", words * _LCE_WORD_BITS))
    # Grouped binary convs need a multiple of 32 channels per group, so a
    # filter with fewer packed words than channels_in needs is grouped.
    return channels_in, min(channels_in, words * _LCE_WORD_BITS)


def _op_macs(graph: _Graph, op: Any, name: str) -> int:
    if name not in _LAYER_OPS:
        return 0
    data_pos, kernel_pos = _LAYER_OPS[name]
    kernel = _shape(graph, _input(op, kernel_pos))
    out = _shape(graph, _output(op))
    if not kernel or not out:
        return 0
    if name == "CONV_2D" and len(kernel) == 4:
        return math.prod(out) * kernel[1] * kernel[2] * kernel[3]
    if name == "DEPTHWISE_CONV_2D" and len(kernel) == 4:
        return math.prod(out) * kernel[1] * kernel[2]
    if name == "FULLY_CONNECTED" and len(kernel) == 2:
        return math.prod(out) * kernel[1]
    if name == "TRANSPOSE_CONV" and len(kernel) == 4:
        # Each input pixel scatters kh*kw*out_c products.
        return math.prod(_shape(graph, _input(op, data_pos))) * kernel[0] * kernel[1] * kernel[2]
    if name == "LceBconv2d" and len(kernel) == 4 and len(out) == 4:
        # The output may itself be bit-packed, so channels come from the filter.
        return math.prod(out[:3]) * kernel[0] * kernel[1] * kernel[2] * _lce_in_per_group(graph, op)[1]
    return 0


# ---------------------------------------------------------------- kernels


@dataclass(frozen=True)
class _Kernel:
    values: np.ndarray | None  # stored values in the kernel's shape, None if unknown
    tensor: TensorInfo | None  # whose quantization gives the real value of ``values``
    stored_bytes: int
    name: str
    compressed: bool
    encoding: str = ""


def _kernel(graph: _Graph, index: int) -> _Kernel:
    """Where a kernel's values come from: a constant, a DECODE, or a DEQUANTIZE of a constant."""
    if index < 0:
        return _Kernel(None, None, 0, "", False)
    tensor = graph.tensors[index]
    data = graph.tensor_data(index)
    if data is not None:
        return _Kernel(_as_array(data, tensor), tensor, int(data.size), tensor.name, False)
    producer = graph.producers.get(index)
    if producer is None:
        return _Kernel(None, None, 0, tensor.name, False)
    op = graph.raw_operators[producer]
    if graph.op_names[producer] == "DECODE":
        return _decoded_kernel(graph, op, index)
    source = _input(op, 0)
    if graph.op_names[producer] == "DEQUANTIZE" and graph.tensor_data(source) is not None:
        src = graph.tensors[source]
        return _Kernel(_as_array(graph.tensor_data(source), src), src, src.buffer_bytes, src.name, False)
    return _Kernel(None, None, 0, tensor.name, False)


def _decoded_kernel(graph: _Graph, op: Any, index: int) -> _Kernel:
    # DECODE reads (encoded, ancillary) input pairs and writes one output per pair.
    pair = _ints(op.outputs).index(index)
    encoded, ancillary = _input(op, 2 * pair), _input(op, 2 * pair + 1)
    encoded_data, ancillary_data = graph.tensor_data(encoded), graph.tensor_data(ancillary)
    stored = sum(0 if d is None else int(d.size) for d in (encoded_data, ancillary_data))
    name = graph.tensors[encoded].name if encoded >= 0 else graph.tensors[index].name
    values, encoding = None, ""
    if encoded_data is not None and ancillary_data is not None and ancillary_data.size:
        encoding = _DECODE_TYPE_NAMES.get(int(ancillary_data[0]), f"type {int(ancillary_data[0])}")
        values = _decode(encoded_data, ancillary_data, graph.tensors[index])
    return _Kernel(values, graph.tensors[index], stored, name, True, encoding)


def _decode(encoded: np.ndarray, ancillary: np.ndarray, out: TensorInfo) -> np.ndarray | None:
    """The values DECODE writes for ``out``, or None for a decoder or format tfprune does not read."""
    if ancillary.size < DECODE_HEADER_BYTES or ancillary[1] != 1:
        return None
    if ancillary[0] == LUT_DECODE_TYPE:
        return _decode_lut(encoded, ancillary, out)
    if ancillary[0] == PRUNE_DECODE_TYPE:
        return _decode_prune(encoded, ancillary, out)
    return None


def _as_array(data: np.ndarray, tensor: TensorInfo) -> np.ndarray | None:
    if tensor.dtype == "int4":
        return _unpack_int4(data, tensor.size, tensor.shape)
    if tensor.dtype not in _NUMPY_DTYPES:
        return None
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    if data.size != tensor.size * dtype.itemsize:
        return None  # e.g. sparse (TFLite sparsity) tensors
    return np.frombuffer(data.tobytes(), dtype).reshape(tensor.shape)


def _unpack_int4(data: np.ndarray, size: int, shape: tuple[int, ...]) -> np.ndarray | None:
    if data.size != (size + 1) // 2:
        return None
    packed = data.astype(np.int8)
    # TFLite packs two int4 per byte, low nibble first.
    low = (packed << 4) >> 4
    high = packed >> 4
    return np.stack([low, high], axis=-1).reshape(-1)[:size].reshape(shape)


def _decode_lut(encoded: np.ndarray, ancillary: np.ndarray, out: TensorInfo) -> np.ndarray | None:
    """Values of a LUT-compressed tensor, or None for another decode type or format.

    Ancillary layout (TFLite Micro DECODE, LUT version 1): byte 0 decode type
    (0 = LUT), byte 4 LUT version, byte 5 ``axis << 4 | bitwidth`` (axis 15 = one
    table), byte 6 value-table stride; value tables from byte 16, ``stride``
    elements of the output dtype per channel. Indices are packed MSB first in
    the row-major order of the output shape.
    """
    if ancillary.size < DECODE_HEADER_BYTES or ancillary[0] != LUT_DECODE_TYPE or ancillary[4] != 1:
        return None
    if out.dtype not in _NUMPY_DTYPES or out.dtype == "bool":
        return None
    bitwidth, axis, stride = int(ancillary[5]) & 0x7, int(ancillary[5]) >> 4, int(ancillary[6])
    count = out.size
    if bitwidth == 0 or stride == 0 or encoded.size * 8 < count * bitwidth:
        return None
    bits = np.unpackbits(encoded)[: count * bitwidth].reshape(count, bitwidth).astype(np.int64)
    indices = bits @ (1 << np.arange(bitwidth - 1, -1, -1, dtype=np.int64))
    channels = 1 if axis == _LUT_PER_TENSOR_AXIS else (out.shape[axis] if axis < len(out.shape) else 0)
    dtype = np.dtype(out.dtype).newbyteorder("<")
    tables_bytes = ancillary[DECODE_HEADER_BYTES:].tobytes()
    if not channels or indices.max(initial=0) >= stride or len(tables_bytes) < channels * stride * dtype.itemsize:
        return None
    tables = np.frombuffer(tables_bytes, dtype, count=channels * stride).reshape(channels, stride)
    indices = indices.reshape(out.shape)
    if axis == _LUT_PER_TENSOR_AXIS:
        return tables[0][indices]
    channel = np.arange(channels).reshape([-1 if d == axis else 1 for d in range(len(out.shape))])
    return tables[np.broadcast_to(channel, out.shape), indices]


def _decode_prune(encoded: np.ndarray, ancillary: np.ndarray, out: TensorInfo) -> np.ndarray | None:
    """Values of a PRUNE-encoded tensor, or None for another format.

    Layout (TFLite Micro ``DecodeStatePrune``): byte 0 decode type (2), byte 4
    PRUNE version (1); the stored values from byte 16 in the output's type. The
    encoded tensor is a bitmask, one bit per output element in row-major order,
    most significant bit first: set = the next stored value, clear = the zero
    point (int8: of the element's channel on the quantized axis; other types: 0).
    """
    if ancillary.size < DECODE_HEADER_BYTES or ancillary[0] != PRUNE_DECODE_TYPE or ancillary[4] != 1:
        return None
    if out.dtype not in _NUMPY_DTYPES or out.dtype in ("bool", "float16", "float64", "uint8", "uint16",
                                                         "uint32", "uint64"):
        return None
    count = out.size
    if encoded.size * 8 < count:
        return None
    keep = np.unpackbits(encoded)[:count].astype(bool)
    dtype = np.dtype(out.dtype).newbyteorder("<")
    stored = ancillary[DECODE_HEADER_BYTES:].tobytes()
    kept = int(keep.sum())
    if len(stored) < kept * dtype.itemsize:
        return None
    values = np.empty(count, dtype)
    values[keep] = np.frombuffer(stored, dtype, count=kept)
    zeros = _zero_point_array(out, values.reshape(out.shape)) if out.dtype == "int8" else 0
    decoded = np.broadcast_to(np.asarray(zeros, dtype=np.int64), out.shape).astype(dtype).reshape(-1)
    decoded[keep] = values[keep]
    return decoded.reshape(out.shape)


def _zero_point_array(tensor: TensorInfo, values: np.ndarray) -> np.ndarray | int:
    """The zero point of each element, per channel when the tensor has several (else one)."""
    zero_points = np.asarray(tensor.zero_points or (0,), dtype=np.int64)
    axis = tensor.quantized_dimension
    if zero_points.size > 1 and values.ndim > axis and values.shape[axis] == zero_points.size:
        return zero_points.reshape([-1 if d == axis else 1 for d in range(values.ndim)])
    return int(zero_points.flat[0])


def _count_zeros(values: np.ndarray, tensor: TensorInfo) -> int:
    """Entries whose real (dequantized) value is 0: those equal to the zero point."""
    zero_points = np.asarray(tensor.zero_points or (0,), dtype=np.int64)
    if zero_points.size > 1 and values.ndim > tensor.quantized_dimension \
            and values.shape[tensor.quantized_dimension] == zero_points.size:
        shape = [-1 if d == tensor.quantized_dimension else 1 for d in range(values.ndim)]
        zero_points = zero_points.reshape(shape)
    elif zero_points.size > 1 and np.any(zero_points != zero_points.flat[0]):
        return int(np.count_nonzero(values == 0))  # unusable per-channel zero points
    else:
        zero_points = zero_points.flat[0]
    if np.issubdtype(values.dtype, np.floating):
        return int(np.count_nonzero(values == 0))
    return int(np.count_nonzero(values.astype(np.int64) == zero_points))


# ---------------------------------------------------------------- layers


def _layer(graph: _Graph, index: int, op: Any, name: str, macs: int) -> LayerInfo:
    data_pos, kernel_pos = _LAYER_OPS[name]
    kernel_index = _input(op, kernel_pos)
    kernel_shape = _shape(graph, kernel_index)
    in_shape = _shape(graph, _input(op, data_pos))
    source = _kernel(graph, kernel_index)
    in_c, out_c = _channels(graph, op, name, kernel_shape, in_shape)
    zeros = None
    if name == "LceBconv2d":
        kernel_shape = (*kernel_shape[:3], _lce_in_per_group(graph, op)[1]) if len(kernel_shape) == 4 else kernel_shape
    elif source.values is not None and source.tensor is not None:
        zeros = _count_zeros(source.values, source.tensor)
    out_name = _tensor_name(graph, _output(op))
    return LayerInfo(
        name=out_name,
        op=name,
        input_channels=in_c,
        output_channels=out_c,
        kernel_shape=kernel_shape,
        weight_count=math.prod(kernel_shape) if kernel_shape else 0,
        weight_zeros=zeros,
        macs=macs,
        op_index=index,
        keras_name=_keras_name(source.name, out_name, _tensor_name(graph, _input(op, data_pos))),
        weight_name=source.name,
        kernel_bytes=source.stored_bytes,
        compressed=source.compressed,
        encoding=source.encoding,
    )


def _tensor_name(graph: _Graph, index: int) -> str:
    return graph.tensors[index].name if 0 <= index < len(graph.tensors) else ""


def _channels(graph: _Graph, op: Any, name: str, kernel: tuple[int, ...],
              in_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(kernel) < 2:
        return 0, 0
    if name == "FULLY_CONNECTED":
        return kernel[1], kernel[0]
    if name == "DEPTHWISE_CONV_2D":
        return (in_shape[-1] if in_shape else kernel[-1]), kernel[-1]
    if name == "TRANSPOSE_CONV":
        return kernel[-1], kernel[0]
    if name == "LceBconv2d":
        return _lce_in_per_group(graph, op)[0], kernel[0]
    # Grouped CONV_2D: the filter holds in_c / groups; the input tensor has all of them.
    return (in_shape[-1] if in_shape else kernel[-1]), kernel[0]


# The converter names kernels "<model>/<layer>/<op>", e.g. "model/conv2d/Conv2D".
_KERNEL_OP_SUFFIXES = ("Conv2D", "MatMul", "depthwise", "conv2d_transpose", "BiasAdd", "Tensordot")


# Larq names binarized inputs "<model>/<layer>/<quantizer>/...", e.g. "model/bconv/ste_sign_1/Sign".
_LARQ_QUANTIZER_PREFIXES = ("ste_", "approx_sign", "swish_sign", "magnitude_aware_sign", "dorefa")


def _keras_name(kernel_name: str, output_name: str, input_name: str = "") -> str:
    for name in (kernel_name, output_name):
        for piece in name.split(";"):
            parts = piece.split("/")
            if len(parts) >= 2 and parts[-1].rstrip("0123456789").startswith(_KERNEL_OP_SUFFIXES):
                return parts[-2]
    # LCE names its (arith.constant) filters and truncates names to 50 characters.
    for piece in input_name.split(";"):
        parts = piece.split("/")
        for i in range(1, len(parts)):
            if parts[i].startswith(_LARQ_QUANTIZER_PREFIXES):
                return parts[i - 1]
    return ""


# ---------------------------------------------------------------- model


def _describe(model: Any, data: bytes) -> ModelInfo:
    graph = _Graph(model, data)
    operators, layers = [], []
    for i, op in enumerate(graph.raw_operators):
        name = graph.op_names[i]
        macs = _op_macs(graph, op, name)
        custom = _custom_code(model, op)
        operators.append(OperatorInfo(i, name, _ints(op.inputs), _ints(op.outputs), macs, custom is not None, custom))
        if name in _LAYER_OPS:
            layers.append(_layer(graph, i, op, name, macs))
    op_names = _all_op_names(model)
    return ModelInfo(
        size_bytes=len(data),
        operators=tuple(operators),
        tensors=graph.tensors,
        inputs=tuple(graph.tensors[i] for i in _ints(graph.subgraph.inputs)),
        outputs=tuple(graph.tensors[i] for i in _ints(graph.subgraph.outputs)),
        op_names=op_names,
        weight_bytes=_weight_bytes(model, graph),
        macs=sum(op.macs for op in operators),
        layers=tuple(layers),
        is_compressed="DECODE" in op_names,
        subgraph_count=len(model.subgraphs),
        description=_text(model.description),
        encoded=_encoded_tensors(graph),
    )


def _encoded_tensors(graph: _Graph) -> tuple[EncodedTensorInfo, ...]:
    rows: dict[int, EncodedTensorInfo] = {}
    for i, op in enumerate(graph.raw_operators):
        if graph.op_names[i] != "DECODE":
            continue
        for pair, output in enumerate(_ints(op.outputs)):
            encoded = _input(op, 2 * pair)
            if encoded in rows or output < 0:
                continue  # one DECODE per reader: count each encoded tensor once
            rows[encoded] = _encoded_tensor(graph, op, output, encoded)
    return tuple(rows.values())


def _encoded_tensor(graph: _Graph, op: Any, output: int, encoded: int) -> EncodedTensorInfo:
    kernel = _decoded_kernel(graph, op, output)
    out = graph.tensors[output]
    itemsize = np.dtype(out.dtype).itemsize if out.dtype in _NUMPY_DTYPES else 1
    pair = _ints(op.outputs).index(output)
    ancillary = graph.tensor_data(_input(op, 2 * pair + 1))
    bits = stride = density = None
    if kernel.encoding == "lut" and ancillary is not None and ancillary.size >= DECODE_HEADER_BYTES:
        bits, stride = int(ancillary[5]) & 0x7, int(ancillary[6])
    elif kernel.encoding == "prune" and ancillary is not None and out.size:
        density = round((ancillary.size - DECODE_HEADER_BYTES) / itemsize / out.size, 6)
    return EncodedTensorInfo(
        name=kernel.name or out.name, encoding=kernel.encoding or "unknown", shape=out.shape, dtype=out.dtype,
        stored_bytes=kernel.stored_bytes, decoded_bytes=out.size * itemsize, bits=bits,
        values_per_channel=stride, density=density, index=encoded,
    )


def _all_op_names(model: Any) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            names.setdefault(_op_name(model, op))
    return tuple(names)


def _weight_bytes(model: Any, graph: _Graph) -> int:
    # Distinct buffers: the converter and the compressor share identical constants.
    used = {int(t.buffer) for subgraph in model.subgraphs for t in subgraph.tensors or []}
    return sum(int(data.size) for data in map(graph.buffer, sorted(used)) if data is not None)


# ---------------------------------------------------------------- table


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _align(cell: str, width: int, column: int) -> str:
    return cell.ljust(width) if column < 2 else cell.rjust(width)


def _totals_line(info: ModelInfo) -> str:
    zeros = info.weight_zeros
    zero_text = "" if zeros is None or not info.weight_count else f", {zeros / info.weight_count:.1%} zero"
    return (f"total: {len(info.layers)} layers, {info.weight_count:,} weights{zero_text}, {info.macs:,} MACs; "
            f"weight buffers {info.weight_bytes:,} B, flatbuffer {info.size_bytes:,} B")
