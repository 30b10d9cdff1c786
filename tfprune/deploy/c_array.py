"""C/C++ sources a Cortex-M firmware compiles: the model array, its facts, its op resolver.

Three files come out of :func:`c_sources`:

``model_data.h`` / ``model_data.cc``
    The flatbuffer as ``alignas(16) const unsigned char g_model_data[]`` plus
    ``g_model_data_len``, the input/output shapes, types, scales and zero
    points, the expected preprocessing, and ``kTensorArenaSize``. They need
    nothing but a C++17 compiler, so ``arm-none-eabi-g++ -c model_data.cc``
    works without TensorFlow Lite Micro and ``arm-none-eabi-size`` of the
    object is the flash the model really takes.
``model_ops.h``
    ``ModelOpResolver`` (a ``tflite::MicroMutableOpResolver`` sized to the
    model) and ``RegisterModelOps()``, which registers exactly the model's
    operators. The method names were checked against TFLite Micro's
    ``tensorflow/lite/micro/micro_mutable_op_resolver.h`` at commit
    ``85be6dfd650ecfe20d0f3b24154dd8012fc4c8d2`` (2025 sources, the newest
    stored copy found; it has ``AddDecode()``, which registers the
    ``TFLM_DECODE`` custom operator that LUT compression inserts). The pinned
    ``tflite-micro`` package is built from TFLite Micro of 2026-10-23.

Example:
    >>> op_resolver_calls(["CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"])
    ['AddConv2D()', 'AddMean()', 'AddFullyConnected()', 'AddSoftmax()']
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tfprune.deploy.flatbuffer import check_flatbuffer

#: Bytes every array, arena and flash figure is aligned to: TFLite Micro reads
#: weights in place from the array and wants 16-byte aligned tensor buffers.
ALIGNMENT = 16

#: Default share added to the measured arena. The figure comes from the TFLite
#: Micro interpreter on the host (reference kernels, 64-bit pointers); the
#: firmware's optimized kernels (CMSIS-NN) ask for scratch buffers the
#: reference kernels do not, and the arena start may need realigning. The
#: firmware prints ``arena_used_bytes()`` so the margin can be trimmed later.
ARENA_MARGIN = 0.1

_BYTES_PER_LINE = 12

#: How ``firmware/cortex_m/Makefile`` compiles ``model_data.cc`` (its ``model-size``):
#: the firmware's architecture flags and one section per object, so that the
#: report's flash figure is ``make model-size``'s to the byte.
MODEL_DATA_FLAGS = ("-std=c++17", "-Os", "-ffunction-sections", "-fdata-sections",
                    "-mcpu=cortex-m4+nofp", "-mfpu=fpv4-sp-d16", "-mfloat-abi=soft", "-mthumb",
                    "-mlittle-endian", "-funsigned-char")

#: dtype name -> C type, for the constants in model_data.h.
_C_TYPES = {"int8": "std::int8_t", "uint8": "std::uint8_t", "int16": "std::int16_t", "float32": "float"}

#: TFLite builtin operator name -> MicroMutableOpResolver method (no arguments).
_BUILTIN_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv", "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "ELU": "AddElu", "EQUAL": "AddEqual",
    "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D", "MIRROR_PAD": "AddMirrorPad", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad",
    "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound", "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin",
    "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQUEEZE": "AddSqueeze",
    "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum",
    "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

#: Custom operator names TFLite Micro itself registers (the name its Add*()
#: method passes to AddCustom), plus "DECODE" as a spelling of TFLM_DECODE.
#: AddEthosU() is left out: its name depends on the Ethos-U driver build.
#: Every method here exists in the prebuilt TFLite Micro's resolver (tests check).
_CUSTOM_METHODS = {
    "TFLM_DECODE": "AddDecode", "DECODE": "AddDecode",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "SignalDelay": "AddDelay", "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale", "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "SignalFramer": "AddFramer", "SignalIrfft": "AddIrfft",
    "SignalOverlapAdd": "AddOverlapAdd", "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft", "SignalStacker": "AddStacker", "SignalWindow": "AddWindow",
}

#: Every operator name :func:`op_resolver_calls` can register (builtins, then custom ones).
OPERATORS = (*_BUILTIN_METHODS, *_CUSTOM_METHODS)


@dataclass(frozen=True)
class TensorSpec:
    """Shape, type and quantization of one model input or output.

    ``dtype`` is ``"int8"``, ``"uint8"``, ``"int16"`` or ``"float32"``; float
    tensors carry ``scale=0.0, zero_point=0``.

    Example:
        >>> TensorSpec((1, 32, 32, 3), "int8", 0.0039215689, -128).elements
        3072
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        if self.dtype not in _C_TYPES:
            raise ValueError(f"tensor dtype {self.dtype!r} is not one of {', '.join(_C_TYPES)}")
        try:  # numpy integers from a report are welcome; store plain ints
            shape = tuple(operator.index(d) for d in self.shape)
            zero_point = operator.index(self.zero_point)
        except TypeError as error:
            raise ValueError(f"tensor shape {self.shape!r} and zero_point {self.zero_point!r} must be integers") from error
        if not shape or min(shape) < 1:
            raise ValueError(f"tensor shape {self.shape!r} must be positive integers")
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"tensor scale {self.scale!r} must be a finite number >= 0")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "zero_point", zero_point)
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def elements(self) -> int:
        """Number of values in the tensor."""
        return math.prod(self.shape)


def op_resolver_calls(op_names: Sequence[str]) -> list[str]:
    """The ``MicroMutableOpResolver`` calls registering these operators, duplicates dropped.

    ``op_names`` are TFLite builtin names as in the flatbuffer (``"CONV_2D"``)
    or custom operator names (``"TFLM_DECODE"``, also accepted as
    ``"DECODE"``). Raises ``ValueError`` naming the first operator TFLite
    Micro has no registration for, such as a Larq Compute Engine binary op.

    Example:
        >>> op_resolver_calls(["CONV_2D", "TFLM_DECODE", "CONV_2D"])
        ['AddConv2D()', 'AddDecode()']
        >>> op_resolver_calls(["LceBconv2d"])
        Traceback (most recent call last):
        ...
        ValueError: operator 'LceBconv2d' cannot run on TFLite Micro: MicroMutableOpResolver has no registration for it
    """
    if isinstance(op_names, (str, bytes)):
        raise TypeError("op_names must be a sequence of operator names, not one string")
    calls: list[str] = []
    for name in op_names:
        method = _BUILTIN_METHODS.get(name) or _CUSTOM_METHODS.get(name)
        if method is None:
            raise ValueError(
                f"operator {name!r} cannot run on TFLite Micro: MicroMutableOpResolver has no registration for it"
            )
        if f"{method}()" not in calls:
            calls.append(f"{method}()")
    return calls


def model_op_names(flatbuffer: bytes) -> list[str]:
    """Operators a ``.tflite`` flatbuffer runs, in first-use order.

    Builtins by their schema name, custom operators by their custom code.

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> model_op_names(fb)[:2]
        ['CONV_2D', 'ADD']
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    check_flatbuffer(flatbuffer)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    model = schema.Model.GetRootAs(bytes(flatbuffer), 0)
    seen: list[str] = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(o).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = code.CustomCode().decode() if builtin == schema.BuiltinOperator.CUSTOM else names[builtin]
            if name not in seen:
                seen.append(name)
    return seen


def c_sources(
    flatbuffer: bytes,
    *,
    op_names: Sequence[str],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    arena_bytes: int,
    arena_margin: float = ARENA_MARGIN,
    preprocessing: str,
    variable: str = "g_model",
    target_arena_bytes: int | None = None,
) -> dict[str, str]:
    """``model_data.h``, ``model_data.cc`` and ``model_ops.h`` for a firmware (name -> text).

    Args:
        flatbuffer: the ``.tflite`` bytes the device runs.
        op_names: its operators (see :func:`op_resolver_calls`); checked
            against the flatbuffer, so the resolver registers exactly those.
        inputs, outputs: the model's I/O tensors, in order.
        arena_bytes: the arena TFLite Micro allocated for this model, measured
            by its interpreter on the host.
        arena_margin: share added on top of ``arena_bytes`` in
            ``kTensorArenaSize`` (see :data:`ARENA_MARGIN` for why).
        preprocessing: how raw data becomes the input, written as a comment
            and as ``kPreprocessing``.
        variable: C name stem: ``{variable}_data`` and ``{variable}_data_len``.
        target_arena_bytes: the arena the firmware used on a Cortex-M4 with
            CMSIS-NN kernels (:func:`tfprune.emulate`), when measured:
            ``kTensorArenaSize`` then starts from the larger of it and
            ``arena_bytes`` (the host's reference kernels, 64-bit pointers: more
            than a Cortex-M4 reference build needs), so both kernel sets fit.

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> files = c_sources(fb, op_names=model_op_names(fb),
        ...     inputs=[TensorSpec((1, 32, 32, 3), "int8", 0.0039215689, -128)],
        ...     outputs=[TensorSpec((1, 10), "int8", 0.00390625, -128)],
        ...     arena_bytes=55984, preprocessing="RGB pixels / 255")
        >>> sorted(files)
        ['model_data.cc', 'model_data.h', 'model_ops.h']
        >>> "constexpr unsigned int kTensorArenaSize = 61584;" in files["model_data.h"]
        True
    """
    check_flatbuffer(flatbuffer)
    _check_c_name(variable)
    if not isinstance(preprocessing, str):
        raise TypeError(f"preprocessing must be a string describing the input, not {type(preprocessing).__name__}")
    calls = op_resolver_calls(op_names)
    _check_ops_match(flatbuffer, calls)
    _check_tensors("inputs", inputs)
    _check_tensors("outputs", outputs)
    if target_arena_bytes is not None:
        tensor_arena_size(target_arena_bytes)  # the same checks as arena_bytes
    arena = tensor_arena_size(max(arena_bytes, target_arena_bytes or 0), arena_margin)
    source = _source_line(bytes(flatbuffer))
    arena_comment = _arena_comment(arena_bytes, target_arena_bytes, arena_margin)
    return {
        "model_data.h": _model_data_h(source, variable, inputs, outputs, arena_bytes, arena_comment, arena,
                                      preprocessing),
        "model_data.cc": _model_data_cc(source, variable, bytes(flatbuffer)),
        "model_ops.h": _model_ops_h(source, calls),
    }


def declared_arena_size(sources: dict[str, str]) -> int:
    """The ``kTensorArenaSize`` that :func:`c_sources`' ``model_data.h`` declares.

    Example:
        >>> declared_arena_size({"model_data.h": "constexpr unsigned int kTensorArenaSize = 1104;"})
        1104
    """
    match = re.search(r"constexpr unsigned int kTensorArenaSize = (\d+);", sources.get("model_data.h", ""))
    if match is None:
        raise ValueError("no kTensorArenaSize in model_data.h: regenerate the sources with tfprune")
    return int(match.group(1))


def tensor_arena_size(arena_bytes: int, arena_margin: float = ARENA_MARGIN) -> int:
    """Measured arena plus the margin, rounded up to 16 bytes.

    Example:
        >>> tensor_arena_size(1000, 0.1)
        1104
    """
    if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes <= 0:
        raise ValueError(f"arena_bytes must be a positive integer (bytes TFLite Micro allocated), not {arena_bytes!r}")
    if not math.isfinite(arena_margin) or arena_margin < 0:
        raise ValueError(f"arena_margin must be a share >= 0, not {arena_margin!r}")
    padded = math.ceil(arena_bytes * (1 + arena_margin))
    return -(-padded // ALIGNMENT) * ALIGNMENT


def compile_flash_bytes(cc_path: str | Path) -> dict[str, int] | None:
    """Compile ``model_data.cc`` for a Cortex-M4 and return its ``arm-none-eabi-size`` figures.

    Returns ``{"text", "data", "bss", "flash"}`` in bytes (flash = text +
    data: a ``const`` array lands in ``.rodata``, counted under text), or
    ``None`` when ``arm-none-eabi-g++``/``arm-none-eabi-size`` are not
    installed; the caller decides whether that is an error. A compile error
    raises ``RuntimeError`` with the compiler's message.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "m.cc").write_text("alignas(16) extern const unsigned char a[] = {1, 2, 3};")
        >>> compile_flash_bytes(d / "m.cc")["flash"] >= 3
        True
    """
    cc_path = Path(cc_path)
    if not cc_path.is_file():
        raise ValueError(f"{cc_path}: no such file")
    compiler, size_tool = shutil.which("arm-none-eabi-g++"), shutil.which("arm-none-eabi-size")
    if compiler is None or size_tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tfprune_flash_") as directory:
        obj = Path(directory) / (cc_path.stem + ".o")
        command = [compiler, *MODEL_DATA_FLAGS, f"-I{cc_path.parent}", "-c", str(cc_path), "-o", str(obj)]
        _run(command, f"arm-none-eabi-g++ could not compile {cc_path.name}")
        sizes = _run([size_tool, str(obj)], "arm-none-eabi-size failed")
    return _parse_size(sizes)


def _run(command: list[str], failure: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{failure}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _parse_size(output: str) -> dict[str, int]:
    # Berkeley format: a header line, then "text data bss dec hex filename".
    text, data, bss = (int(field) for field in output.strip().splitlines()[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data}


def _check_c_name(name: str) -> None:
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"variable {name!r} is not a C identifier")


def _check_ops_match(flatbuffer: bytes, calls: list[str]) -> None:
    # Compare registrations, not names, so "DECODE" and "TFLM_DECODE" agree.
    in_model = op_resolver_calls(model_op_names(flatbuffer))
    missing = [call for call in in_model if call not in calls]
    extra = [call for call in calls if call not in in_model]
    if missing or extra:
        raise ValueError(f"op_names do not match the flatbuffer's operators: missing {missing}, not in model {extra}")


def _check_tensors(what: str, tensors: Sequence[TensorSpec]) -> None:
    if not tensors:
        raise ValueError(f"{what} must list at least one TensorSpec")
    for tensor in tensors:
        if not isinstance(tensor, TensorSpec):
            raise TypeError(f"{what} must be TensorSpec objects, not {type(tensor).__name__}")


def _source_line(flatbuffer: bytes) -> str:
    from importlib import metadata

    try:
        version = metadata.version("tfprune")
    except metadata.PackageNotFoundError:
        version = "(source tree)"
    digest = hashlib.sha256(flatbuffer).hexdigest()[:16]
    return (f"Generated by tfprune {version} from a {len(flatbuffer)}-byte .tflite flatbuffer "
            f"(sha256 {digest}...). Do not edit: regenerate it.")


def _model_data_h(
    source: str,
    variable: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    arena_bytes: int,
    arena_comment: list[str],
    arena: int,
    preprocessing: str,
) -> str:
    guard = f"TFPRUNE_{variable.upper()}_DATA_H_"
    lines = [
        f"// {source}",
        "// The model flatbuffer and the facts a firmware needs to run it. Needs only",
        "// a C++17 compiler: no TensorFlow Lite Micro header.",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cstdint>",
        "",
        "// 16-byte aligned: TFLite Micro reads weights in place from this array.",
        f"alignas({ALIGNMENT}) extern const unsigned char {variable}_data[];",
        f"extern const unsigned int {variable}_data_len;",
        "",
        "// Expected preprocessing (how raw data becomes input 0):",
        *(f"//   {line}" for line in _comment_lines(preprocessing)),
        f"constexpr char kPreprocessing[] = \"{_c_string(preprocessing)}\";",
        "",
        *arena_comment,
        f"constexpr unsigned int kMeasuredArenaBytes = {arena_bytes};",
        f"constexpr unsigned int kTensorArenaSize = {arena};",
        "",
        *_tensor_constants("Input", inputs),
        "",
        *_tensor_constants("Output", outputs),
        "",
        f"#endif  // {guard}",
        "",
    ]
    return "\n".join(lines)


def _arena_comment(arena_bytes: int, target_arena_bytes: int | None, arena_margin: float) -> list[str]:
    if target_arena_bytes is None:
        return [
            f"// Tensor arena: {arena_bytes} bytes measured by the TFLite Micro interpreter on the",
            f"// host (tflite-micro Python package), plus {arena_margin:.0%} margin for the firmware's",
            "// optimized kernels' scratch buffers and alignment, rounded up to 16 bytes.",
        ]
    return [
        f"// Tensor arena: the larger of {target_arena_bytes} bytes TFLite Micro used on an emulated",
        "// Cortex-M4 with CMSIS-NN kernels (tfprune.emulate) and the",
        f"// {arena_bytes} bytes its interpreter measured on the host (reference kernels), plus",
        f"// {arena_margin:.0%} margin, rounded up to 16 bytes.",
    ]


def _tensor_constants(kind: str, tensors: Sequence[TensorSpec]) -> list[str]:
    count = len(tensors)
    lines = [f"constexpr int kModel{kind}Count = {count};"]
    for i, t in enumerate(tensors):
        dims = ", ".join(str(d) for d in t.shape)
        meaning = ("float, no quantization" if t.dtype == "float32"
                   else f"real = (q - ({t.zero_point})) * {_c_float(t.scale)}")
        lines += [
            f"// {kind.lower()} {i}: {t.dtype}{list(t.shape)}, {meaning}",
            f"using {kind}{i}Type = {_C_TYPES[t.dtype]};",
            f"constexpr int k{kind}{i}Rank = {len(t.shape)};",
            f"constexpr int k{kind}{i}Shape[k{kind}{i}Rank] = {{{dims}}};",
        ]
    lines += [
        f"constexpr const char* k{kind}Types[{count}] = {{{', '.join(chr(34) + t.dtype + chr(34) for t in tensors)}}};",
        f"constexpr int k{kind}Elements[{count}] = {{{', '.join(str(t.elements) for t in tensors)}}};",
        f"constexpr float k{kind}Scales[{count}] = {{{', '.join(_c_float(t.scale) for t in tensors)}}};",
        f"constexpr int k{kind}ZeroPoints[{count}] = {{{', '.join(str(t.zero_point) for t in tensors)}}};",
    ]
    return lines


def _model_data_cc(source: str, variable: str, flatbuffer: bytes) -> str:
    rows = [
        "    " + " ".join(f"0x{b:02x}," for b in flatbuffer[i:i + _BYTES_PER_LINE])
        for i in range(0, len(flatbuffer), _BYTES_PER_LINE)
    ]
    return "\n".join([
        f"// {source}",
        "// The model flatbuffer as a C array, compiled into flash.",
        '#include "model_data.h"',
        "",
        f"alignas({ALIGNMENT}) const unsigned char {variable}_data[] = {{",
        *rows,
        "};",
        f"const unsigned int {variable}_data_len = {len(flatbuffer)};",
        "",
    ])


def _model_ops_h(source: str, calls: list[str]) -> str:
    decode = any(call == "AddDecode()" for call in calls)
    checks = [f"  if ((status = resolver.{call}) != kTfLiteOk) return status;" for call in calls]
    return "\n".join([
        f"// {source}",
        "// The op resolver registering exactly the model's operators.",
        "// Method names checked against TFLite Micro's micro_mutable_op_resolver.h.",
        *(["// The model has DECODE operators (LUT compression): build TFLite Micro with the",
           "// DECODE kernel (tensorflow/lite/micro/kernels/decode.cc), or AddDecode() will not link."]
          if decode else []),
        "#ifndef TFPRUNE_MODEL_OPS_H_",
        "#define TFPRUNE_MODEL_OPS_H_",
        "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"constexpr int kModelOpCount = {len(calls)};",
        "using ModelOpResolver = tflite::MicroMutableOpResolver<kModelOpCount>;",
        "",
        "// Registers the model's operators; returns the first failing status.",
        "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {",
        "  TfLiteStatus status = kTfLiteOk;",
        *checks,
        "  return status;",
        "}",
        "",
        "#endif  // TFPRUNE_MODEL_OPS_H_",
        "",
    ])


def _c_float(value: float) -> str:
    # Round to float32 first so the literal is exactly the value the model stores.
    single = struct.unpack("f", struct.pack("f", float(value)))[0]
    text = repr(single)
    return (text if ("." in text or "e" in text) else text + ".0") + "f"


def _c_string(text: str) -> str:
    # Octal escapes (always 3 digits) cannot run into a following digit.
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\?' else f"\\{byte:03o}")
    return "".join(out)


def _comment_lines(text: str) -> list[str]:
    # Line comments only: a "*/" or a trailing backslash must not end or extend them.
    lines = [line.rstrip().rstrip("\\") for line in text.replace("\r", "").split("\n")]
    return [line.replace("\t", " ") for line in lines if line.strip()] or ["(none given)"]
