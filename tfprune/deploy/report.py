"""The report: what a flatbuffer costs on the device, measured on the flatbuffer.

``report.json`` is a plain dict with a ``schema_version``. Keys and units:

==========================  ==========================================================
key                         meaning (unit)
==========================  ==========================================================
schema_version              integer, bumped when a key changes meaning
tfprune_version             the tfprune that wrote it
target                      ``cortex-m``, ``android``, ``android-lce`` or ``inspect``
quantization, io            ``int8``/``float16``/``float32``/``binary``; I/O type
flatbuffer_bytes            bytes of ``model.tflite`` (what the device stores)
weight_bytes                bytes of every constant buffer: weights, biases, LUT
                            indices and value tables
macs                        multiply-accumulates per inference, from the graph
operators                   distinct operators, in order of first use
inputs, outputs             shape, dtype, scale, zero_point of each
tflm                        ``arena_bytes`` (bytes TFLite Micro allocates) and
                            ``ms_per_inference`` (milliseconds, on ``measured_on``,
                            this host: compare only as ratios) or ``error``
compression                 ``mode``, ``applied``, ``encodings`` (``lut``,
                            ``prune``), ``tensors`` (name, encoding, LUT bits or
                            PRUNE density, bytes before/after/saved),
                            ``skipped``, ``uncompressed``: flatbuffer_bytes,
                            weight_bytes and tflm of the model without DECODE,
                            and ``without``: the same figures without each
                            encoding when two are used (export only)
lean                        ``applied``, ``bytes_before`` (the converter's file),
                            ``bytes_after``, ``bytes_saved``, ``removed`` (counts
                            of what TFLite Micro never reads), ``note`` (export)
encoded_tensors             each tensor a DECODE rebuilds: ``encoding``, ``bits``
                            (LUT), ``density`` (PRUNE), ``stored_bytes``,
                            ``decoded_bytes``, ``bytes_saved``
flash                       ``arm-none-eabi-size`` of the compiled model array for
                            Cortex-M4 (``text``, ``data``, ``bss`` bytes), or null
layers                      per conv/dense layer: channels in/out, weights, zeros
                            (``weight_sparsity`` = zeros / weights), MACs
verification                ``samples``, ``reference``, ``top1_agreement`` (0-1),
                            ``max_abs_diff`` (in ``unit``), ``accuracy`` (0-1 or null)
emulated                    null unless exported with ``emulate=True``: the firmware
                            on an emulated Cortex-M4 with CMSIS-NN kernels
                            (:func:`tfprune.emulate`): ``arena_bytes`` used there,
                            ``ticks_per_inference`` (CMSDK timer ticks, 40
                            emulated instructions each: compare as ratios),
                            ``tensor_arena_size`` (the ``kTensorArenaSize`` sized
                            from it), ``image_flash_bytes``/``image_ram_bytes`` of
                            the emulated image, ``measured_on``; or ``error``
larq                        only for larq models: ``rewritten_by``, ``summary`` and
                            for cortex-m ``automatic``, ``sign_activation_layers``,
                            ``emulation`` (what was emulated and how); for
                            android-lce ``binary_layers`` and ``float_layers``
==========================  ==========================================================

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
    >>> report = build_report(fb, target="inspect")
    >>> report["flatbuffer_bytes"], report["tflm"]["arena_bytes"]
    (98496, 55984)
"""

from __future__ import annotations

import platform
from typing import Any

from tfprune import __version__
from tfprune.deploy.flatbuffer import ModelInfo, read_model
from tfprune.deploy.micro import MicroRunner

SCHEMA_VERSION = 1


def measure_micro(flatbuffer: bytes) -> dict[str, Any]:
    """Arena bytes and host time per inference in TFLite Micro, or the reason it cannot run.

    Example:
        >>> measure_micro(b"not a model")["error"].startswith("TFLite Micro cannot load")
        True
    """
    try:
        runner = MicroRunner(flatbuffer)
    except ValueError as error:
        return {"error": str(error)}
    return {
        "arena_bytes": runner.arena_bytes,
        "ms_per_inference": round(runner.seconds_per_inference(runner.zero_input()) * 1e3, 4),
        "measured_on": f"this host: {platform.machine()}, TFLite Micro Python interpreter",
    }


def build_report(
    flatbuffer: bytes,
    *,
    target: str,
    quantization: str | None = None,
    io: str | None = None,
    compression: dict[str, Any] | None = None,
    flash: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    emulated: dict[str, Any] | None = None,
    run_micro: bool = True,
    lean: dict[str, Any] | None = None,
    names_from: bytes | None = None,
) -> dict[str, Any]:
    """Measure ``flatbuffer`` and assemble the report dict (keys in the module docstring).

    ``names_from`` is the same model with its tensor names (a lean flatbuffer
    has none): layer and I/O names are read from it.
    """
    info = read_model(flatbuffer)
    named = _named(info, names_from)
    return {
        "schema_version": SCHEMA_VERSION,
        "tfprune_version": __version__,
        "target": target,
        "quantization": quantization or _guess_quantization(info),
        "io": io or info.inputs[0].dtype,
        "flatbuffer_bytes": info.size_bytes,
        "weight_bytes": info.weight_bytes,
        "macs": info.macs,
        "operators": list(info.op_names),
        "inputs": [_tensor_entry(tensor, name.name) for tensor, name in zip(info.inputs, named.inputs)],
        "outputs": [_tensor_entry(tensor, name.name) for tensor, name in zip(info.outputs, named.outputs)],
        "tflm": measure_micro(flatbuffer) if run_micro else {"error": "not run: LCE models need LCE's runtime"},
        "compression": compression,
        "lean": lean,
        "encoded_tensors": [_encoded_entry(tensor, named) for tensor in info.encoded],
        "flash": flash,
        "layers": [_layer_entry(layer, name) for layer, name in zip(info.layers, named.layers)],
        "verification": verification,
        "emulated": emulated,
    }


def _named(info: ModelInfo, names_from: bytes | None) -> ModelInfo:
    if names_from is None:
        return info
    named = read_model(names_from)
    same = (len(named.layers) == len(info.layers) and len(named.inputs) == len(info.inputs)
            and len(named.outputs) == len(info.outputs) and len(named.tensors) <= len(info.tensors))
    return named if same else info


def format_report(report: dict[str, Any]) -> str:
    """The report as the table ``tfprune`` prints.

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> "98,496" in format_report(build_report(fb, target="inspect"))
        True
    """
    lines = [f"tfprune report (schema {report['schema_version']}): target {report['target']}, "
             f"{report['quantization']} weights, {report['io']} I/O"]
    lines += _summary_lines(report)
    if report.get("encoded_tensors"):
        lines += ["", _encoded_table(report["encoded_tensors"])]
    lines += ["", _layer_table(report["layers"])]
    return "\n".join(lines)


def _summary_lines(report: dict[str, Any]) -> list[str]:
    rows = [
        ("flatbuffer", f"{report['flatbuffer_bytes']:,} B"),
        ("weights (constant buffers)", f"{report['weight_bytes']:,} B"),
        ("MACs per inference", f"{report['macs']:,}"),
        ("operators", ", ".join(report["operators"])),
    ]
    rows += _micro_rows("TFLite Micro", report["tflm"])
    rows += _compression_rows(report.get("compression") or {})
    lean = report.get("lean")
    if lean:
        rows.append(("lean flatbuffer", _lean_text(lean)))
    flash = report.get("flash")
    if flash:
        rows.append(("Cortex-M4 flash (model array)", f"{flash['text'] + flash['data']:,} B (arm-none-eabi-size)"))
    rows += _emulated_rows(report.get("emulated"))
    verification = report.get("verification")
    if verification:
        rows.append(("verification", _verification_text(verification)))
    if report.get("larq"):
        rows.append(("larq model", report["larq"]["summary"]))
    for tensor, kind in [(report["inputs"][0], "input"), (report["outputs"][0], "output")]:
        rows.append((kind, f"{tensor['dtype']} {tuple(tensor['shape'])} scale {tensor['scale']:.6g} "
                     f"zero point {tensor['zero_point']}"))
    width = max(len(name) for name, _ in rows)
    return [f"  {name:<{width}}  {value}" for name, value in rows]


def _compression_rows(compression: dict[str, Any]) -> list[tuple[str, str]]:
    if not compression:
        return []
    if not compression.get("uncompressed"):
        return [("DECODE compression", f"not applied ({compression.get('reason', 'nothing to compress')})")]
    tensors = compression["tensors"]
    kinds = ", ".join(f"{sum(t.get('encoding', 'lut') == e for t in tensors)} {e.upper()}"
                      for e in compression.get("encodings", ["lut"]))
    saved = sum(t["bytes_before"] - t["bytes_after"] for t in tensors)
    before = compression["uncompressed"]
    rows = [("DECODE compression", f"{len(tensors)} tensors ({kinds}), {saved:,} B of tensor data saved; "
             f"without it: {before['flatbuffer_bytes']:,} B flatbuffer, {before['weight_bytes']:,} B weights")]
    rows += _micro_rows("  without compression", before["tflm"])
    for encoding, figures in (compression.get("without") or {}).items():
        rows.append((f"  without {encoding.upper()}", f"{figures['flatbuffer_bytes']:,} B flatbuffer, "
                     f"{figures['weight_bytes']:,} B weights"))
        rows += _micro_rows(f"  without {encoding.upper()}", figures["tflm"])
    return rows


def _lean_text(lean: dict[str, Any]) -> str:
    if not lean.get("applied"):
        return f"not applied ({lean.get('note') or 'the converter file was kept'})"
    removed = ", ".join(f"{count:,} {what}" for what, count in lean.get("removed", {}).items())
    return (f"{lean['bytes_saved']:,} B saved against the converter's {lean['bytes_before']:,} B "
            f"(dropped what TFLite Micro never reads: {removed})")


def _encoded_table(tensors: list[dict[str, Any]]) -> str:
    header = f"  {'DECODE-encoded tensor':<40} {'encoding':<14} {'stored':>9} {'decoded':>9} {'saved':>9}"
    rows = [header]
    for t in tensors:
        if t["encoding"] == "lut":
            encoding = f"LUT {t['bits']}-bit"
        elif t["encoding"] == "prune":
            encoding = f"PRUNE {t['density']:.1%}"
        else:
            encoding = t["encoding"]
        label = (t["name"] or f"tensor {tuple(t['shape'])}")[-40:]
        rows.append(f"  {label:<40} {encoding:<14} {t['stored_bytes']:>9,} {t['decoded_bytes']:>9,} "
                    f"{t['bytes_saved']:>9,}")
    return "\n".join(rows)


def _micro_rows(label: str, tflm: dict[str, Any]) -> list[tuple[str, str]]:
    if "error" in tflm:
        return [(label, tflm["error"])]
    return [
        (f"{label} arena", f"{tflm['arena_bytes']:,} B"),
        (f"{label} time", f"{tflm['ms_per_inference']:.3f} ms per inference ({tflm['measured_on']})"),
    ]


def _emulated_rows(emulated: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not emulated:
        return []
    label = "Cortex-M4, emulated (CMSIS-NN)"
    if "error" in emulated:
        return [(label, emulated["error"])]
    ticks = emulated["ticks_per_inference"]
    time = (f"{ticks:,} timer ticks per inference (~{ticks * emulated['instructions_per_tick'] / 1e6:.1f} M "
            "instructions; compare as ratios)") if ticks is not None else "no inference run"
    return [
        (f"{label} arena", (f"{emulated['arena_bytes']:,} B used; kTensorArenaSize "
                            f"{emulated.get('tensor_arena_size', 0):,} B")),
        (f"{label} time", time),
    ]


def _verification_text(verification: dict[str, Any]) -> str:
    text = (f"{verification['samples']} samples vs {verification['reference']}: top-1 agreement "
            f"{verification['top1_agreement']:.2%}, max |diff| {verification['max_abs_diff']:g} "
            f"({verification['unit']})")
    if verification.get("accuracy") is not None:
        text += f", accuracy {verification['accuracy']:.2%}"
    return text


def _layer_table(layers: list[dict[str, Any]]) -> str:
    header = f"  {'layer':<32} {'op':<25} {'in':>5} {'out':>5} {'weights':>9} {'sparsity':>8} {'MACs':>12}"
    rows = [header]
    for layer in layers:
        sparsity = "-" if layer["weight_sparsity"] is None else f"{layer['weight_sparsity']:.1%}"
        op = layer["op"] + (f" ({layer['encoding'].upper()})" if layer.get("encoding") else "")
        rows.append(f"  {layer['name'][-32:]:<32} {op:<25} {layer['input_channels']:>5} "
                    f"{layer['output_channels']:>5} {layer['weights']:>9,} {sparsity:>8} {layer['macs']:>12,}")
    return "\n".join(rows)


def _tensor_entry(tensor: Any, name: str = "") -> dict[str, Any]:
    return {
        "name": name or tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "scale": float(tensor.scales[0]) if tensor.scales else 1.0,
        "zero_point": int(tensor.zero_points[0]) if tensor.zero_points else 0,
    }


def _encoded_entry(tensor: Any, named: ModelInfo) -> dict[str, Any]:
    name = tensor.name
    if not name and 0 <= tensor.index < len(named.tensors):
        name = named.tensors[tensor.index].name  # DECODE insertion keeps the constant's index
    return {
        "name": name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "encoding": tensor.encoding,
        "bits": tensor.bits,
        "density": tensor.density,
        "stored_bytes": tensor.stored_bytes,
        "decoded_bytes": tensor.decoded_bytes,
        "bytes_saved": tensor.bytes_saved,
    }


def _layer_entry(layer: Any, named: Any = None) -> dict[str, Any]:
    zeros = layer.weight_zeros
    named = named or layer
    return {
        "name": named.keras_name or named.name,
        "tensor": named.name,
        "op": layer.op,
        "encoding": layer.encoding or None,
        "input_channels": layer.input_channels,
        "output_channels": layer.output_channels,
        "weights": layer.weight_count,
        "weight_zeros": zeros,
        "weight_sparsity": None if zeros is None or not layer.weight_count else round(zeros / layer.weight_count, 6),
        "macs": layer.macs,
    }


def _guess_quantization(info: ModelInfo) -> str:
    if any(op.startswith("Lce") for op in info.op_names):
        return "binary"
    kernel_types = {info.tensors[op.inputs[1]].dtype for op in info.operators
                    if op.name in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1}
    for kind in ("int8", "float16", "float32"):
        if kind in kernel_types:
            return kind
    return "unknown"
