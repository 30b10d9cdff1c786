"""``tfprune.export``: one call from a Keras model to the files a device uses.

Every pruning method ends here: convert (int8, float16 or LCE binary), LUT
compression for TFLite Micro, measurement and verification on the artifact,
C sources for Cortex-M.

Example:
    >>> import numpy as np, tensorflow as tf, tfprune
    >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3),
    ...     tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(3)])
    >>> artifact = tfprune.export(model, np.random.rand(32, 8, 8, 1), progress=False)
    >>> artifact.report["verification"]["top1_agreement"]
    1.0
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.core.surgery import without_masks
from tfprune.deploy import c_array, compress, tflite
from tfprune.deploy.c_array import ARENA_MARGIN
from tfprune.deploy.artifact import Artifact, Report, as_json_ready
from tfprune.deploy.flatbuffer import read_model
from tfprune.deploy.report import build_report
from tfprune.deploy.verify import Verification, verify_lce, verify_micro, verify_tflite

TARGETS = ("cortex-m", "android", "android-lce")
COMPRESS_MODES = ("auto", "off", "lut")

#: Extra arena on top of TFLite Micro's measured need; see :mod:`tfprune.deploy.c_array`.


def export(
    model: Any,
    representative_data: Any = None,
    target: str = "cortex-m",
    verify_data: Any = None,
    *,
    quantization: str | None = None,
    io: str | None = None,
    compress: str = "auto",
    verify: bool = True,
    preprocessing: str | None = None,
    arena_margin: float | None = None,
    emulate: bool = False,
    progress: bool = True,
) -> Artifact:
    """Export a Keras model for a device and measure the result.

    A model wrapped by :func:`tfprune.wrap` is stripped first and every channel
    its masks prune is removed (:func:`tfprune.remove_masked_channels`), so the
    flatbuffer is physically smaller; weight-level zeros stay as zeros.

    A larq (binary) model goes through :mod:`tfprune.deploy.binary` on the way:
    for ``cortex-m`` through ``for_micro`` (TFLite Micro has no SIGN operator and
    no binary kernels: sign activations become exact int8 steps, binary weights
    int8 values stored in 1-2 bits), for ``android-lce`` through ``for_lce``
    (1-bit kernels restored; it warns about connection-pruned layers, which LCE
    runs as float convolutions). The report's ``larq`` entry says what was done.

    Args:
        model: a tf.keras Sequential or functional model (larq layers and
            tfprune's masks allowed).
        representative_data: array ``(N, ...)``, ``(x, y)`` arrays, a ``tf.data``
            of ``x`` or ``(x, y)`` batches, or an ``.npz`` path; the first 500
            samples calibrate int8. Required for int8.
        target: ``"cortex-m"`` (full-integer int8 for TFLite Micro, C sources),
            ``"android"`` (int8 or float16 for the stock TFLite interpreter) or
            ``"android-lce"`` (a larq model through Larq Compute Engine).
        verify_data: samples (and labels, if any) to verify on; default the
            representative samples.
        quantization: ``"int8"`` (default) or ``"float16"`` (android only).
        io: input/output type ``"int8"``, ``"uint8"`` or ``"float"``; default
            int8 for cortex-m, float otherwise.
        compress: ``"auto"`` stores weight tensors with <= 16 distinct values per
            channel with TFLite Micro's LUT compression when that makes the
            flatbuffer smaller; ``"lut"`` insists; ``"off"`` never (cortex-m only).
        verify: run the artifact against a reference interpreter.
        preprocessing: how raw data becomes the Keras model's input, written into
            the C header and the report (for example ``"RGB pixels 0..255"``).
        arena_margin: share added to the measured arena in ``kTensorArenaSize``;
            default 10% over the host's measure, 0 over an emulated one.
        emulate: ``cortex-m`` only: also run the firmware on an emulated
            Cortex-M4 (QEMU, CMSIS-NN kernels, :func:`tfprune.emulate`) on one
            verification sample: ``report["emulated"]`` gets the arena it used
            there, its timer ticks per inference and the image's flash and RAM,
            and ``kTensorArenaSize`` is sized from that arena. Off by default:
            it compiles a firmware (seconds to a minute). Where the emulator
            is missing, ``report["emulated"]`` says what to install.
        progress: show progress bars.

    Returns:
        An :class:`Artifact` with ``flatbuffer``, ``report`` and ``save(dir)``.
    """
    _check_arguments(target, compress, arena_margin)
    if emulate and target != "cortex-m":
        raise ValueError(f"emulate runs a Cortex-M firmware: use it with target cortex-m, not {target}")
    keras_model.check_keras_model(model)
    model, larq = _larq_route(model, target)
    model = without_masks(model)
    quantization, io = _resolve_formats(target, quantization, io)
    sample_shape = keras_model.model_sample_shape(model)
    calibration = _calibration(representative_data, sample_shape, quantization)
    check_x, check_y = _verification_data(verify_data, calibration, sample_shape, verify)
    if target == "android-lce":
        return _export_lce(model, calibration, io, check_x, check_y, progress, larq)
    flatbuffer = tflite.convert(model, calibration, quantization=quantization, io=io)
    if target == "android":
        verification = verify_tflite(flatbuffer, model, check_x, check_y, progress) if check_x is not None else None
        report = build_report(flatbuffer, target=target, quantization=quantization, io=io,
                              verification=_as_dict(verification))
        return Artifact(flatbuffer, Report(as_json_ready(report)))
    return _export_cortex_m(flatbuffer, compress, io, check_x, check_y, preprocessing, arena_margin, progress,
                            emulate_on=(check_x if check_x is not None else calibration)[:1] if emulate else None,
                            larq=larq)


def inspect_flatbuffer(flatbuffer: bytes | str | os.PathLike) -> Report:
    """The report for any ``.tflite`` (bytes or path), including ones tfprune did not make.

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> report = inspect_flatbuffer(mlperf_path("pretrainedResnet_quant.tflite"))
        >>> report["flatbuffer_bytes"]
        98496
    """
    if not isinstance(flatbuffer, (bytes, bytearray)):
        path = Path(flatbuffer)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        flatbuffer = path.read_bytes()
    info = read_model(flatbuffer)
    runs_on_micro = not any(op.startswith("Lce") for op in info.op_names)
    return Report(as_json_ready(build_report(flatbuffer, target="inspect", run_micro=runs_on_micro)))


def _larq_route(model: Any, target: str) -> tuple[Any, dict[str, Any] | None]:
    """The model to convert for ``target`` and the report's ``larq`` entry (None for other models)."""
    if not keras_model.has_larq_layers(model) or target == "android":
        return model, None
    from tfprune.deploy import binary  # imports TensorFlow and larq: only for larq models

    if target == "android-lce":
        model = binary.for_lce(model)
        return model, binary.lce_entry(model)
    automatic = binary.needs_micro(model)
    if automatic:
        model = binary.for_micro(model)
    return model, binary.micro_entry(model, automatic)


def _export_cortex_m(
    flatbuffer: bytes,
    compress_mode: str,
    io: str,
    check_x: np.ndarray | None,
    check_y: np.ndarray | None,
    preprocessing: str | None,
    arena_margin: float | None,
    progress: bool,
    emulate_on: np.ndarray | None = None,
    larq: dict[str, Any] | None = None,
) -> Artifact:
    info = read_model(flatbuffer)
    c_array.op_resolver_calls(info.op_names)  # names the first operator TFLite Micro lacks
    compressed = compress.lut_compress(flatbuffer, mode=compress_mode)
    deployed = compressed.flatbuffer
    verification = verify_micro(deployed, flatbuffer, check_x, check_y, progress) if check_x is not None else None
    report = build_report(deployed, target="cortex-m", quantization="int8", io=io,
                          compression=_compression_entry(compress_mode, compressed, flatbuffer),
                          verification=_as_dict(verification))
    if "error" in report["tflm"]:
        raise ValueError(report["tflm"]["error"])
    if larq:
        report["larq"] = larq
    deployed_info = read_model(deployed)

    def sources_for(target_arena: int | None) -> dict[str, str]:
        margin = arena_margin if arena_margin is not None else (0.0 if target_arena else ARENA_MARGIN)
        return c_array.c_sources(
            deployed,
            op_names=deployed_info.op_names,
            inputs=[_tensor_spec(entry) for entry in report["inputs"]],
            outputs=[_tensor_spec(entry) for entry in report["outputs"]],
            arena_bytes=report["tflm"]["arena_bytes"],
            arena_margin=margin,
            preprocessing=preprocessing or _default_preprocessing(report["inputs"][0]),
            target_arena_bytes=target_arena,
        )

    sources = sources_for(None)
    report["flash"] = _flash_bytes(sources)
    reference = flatbuffer if compressed.needs_decode else None
    if emulate_on is not None:
        report["emulated"] = _emulated_entry(Artifact(deployed, Report(report), sources), emulate_on)
        if "arena_bytes" in report["emulated"]:
            sources = sources_for(report["emulated"]["arena_bytes"])
            emulated = report["emulated"]
            emulated["tensor_arena_size"] = c_array.declared_arena_size(sources)
            # the arena is one 16-byte aligned array in .bss: the image with kTensorArenaSize differs by exactly this
            emulated["image_ram_bytes"] += emulated["tensor_arena_size"] - emulated.pop("image_arena_size")
    return Artifact(deployed, Report(as_json_ready(report)), sources, reference)


def _emulated_entry(artifact: Artifact, samples: np.ndarray) -> dict[str, Any]:
    from tfprune.deploy import emulate as emulation

    try:
        result = emulation.emulate(artifact, samples, "cmsis_nn",
                                   arena_size=2 * c_array.declared_arena_size(artifact.sources))
    except emulation.EmulatorUnavailable as missing:
        return {"error": f"not run: {missing}"}
    return {
        "kernels": result.kernels,
        "arena_bytes": result.arena_bytes,
        "ticks_per_inference": result.ticks_per_inference,
        "instructions_per_tick": emulation.INSTRUCTIONS_PER_TICK,
        "samples": len(result.ticks),
        "image_flash_bytes": result.flash_bytes,
        "image_ram_bytes": result.ram_bytes,
        "image_arena_size": result.arena_size,
        "measured_on": result.measured_on,
    }


def _export_lce(
    model: Any,
    calibration: np.ndarray | None,
    io: str,
    check_x: np.ndarray | None,
    check_y: np.ndarray | None,
    progress: bool,
    larq: dict[str, Any] | None = None,
) -> Artifact:
    flatbuffer = tflite.convert_lce(model, calibration, io=io)
    verification = verify_lce(flatbuffer, model, check_x, check_y, progress) if check_x is not None else None
    report = build_report(flatbuffer, target="android-lce", quantization="binary", io=io,
                          verification=_as_dict(verification), run_micro=False)
    if larq:
        report["larq"] = larq
    return Artifact(flatbuffer, Report(as_json_ready(report)))


def _check_arguments(target: str, compress_mode: str, arena_margin: float) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if compress_mode not in COMPRESS_MODES:
        raise ValueError(f"unknown compress mode {compress_mode!r}; choose one of {', '.join(COMPRESS_MODES)}")
    if compress_mode == "lut" and target != "cortex-m":
        raise ValueError("LUT compression (DECODE operators) is for TFLite Micro: use it with target cortex-m")
    if arena_margin is not None and not 0 <= arena_margin <= 10:
        raise ValueError(f"arena_margin {arena_margin} is not a share between 0 and 10")


def _resolve_formats(target: str, quantization: str | None, io: str | None) -> tuple[str, str]:
    if target == "android-lce":
        if quantization not in (None, "binary"):
            raise ValueError("android-lce exports larq binary layers as LCE ops; leave quantization unset")
        return "binary", io or "float"
    quantization = quantization or "int8"
    if target == "cortex-m" and quantization != "int8":
        raise ValueError(f"cortex-m needs int8 quantization (TFLite Micro runs integer kernels), not {quantization}")
    if quantization != "int8" and io not in (None, "float"):
        raise ValueError(f"{quantization} models take float I/O; drop io={io!r}")
    return quantization, io or ("int8" if target == "cortex-m" else "float")


def _calibration(data: Any, sample_shape: tuple[int, ...], quantization: str) -> np.ndarray | None:
    if data is None:
        if quantization == "int8":
            raise ValueError(
                "int8 quantization needs representative data: pass representative_data "
                "(--representative FILE.npz), a few hundred typical inputs"
            )
        return None
    return tflite.representative_array(data, sample_shape)


def _verification_data(
    data: Any, calibration: np.ndarray | None, sample_shape: tuple[int, ...], verify: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not verify:
        return None, None
    if data is not None:
        return keras_model.labelled_samples(data, sample_shape)
    return calibration, None


def _compression_entry(mode: str, result: compress.CompressionResult, uncompressed: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mode": mode,
        "applied": result.applied,
        "tensors": [dataclasses.asdict(tensor) for tensor in result.tensors],
        "skipped": [dataclasses.asdict(tensor) for tensor in result.skipped],
    }
    if result.needs_decode:
        before = build_report(uncompressed, target="cortex-m")
        entry["uncompressed"] = {key: before[key] for key in ("flatbuffer_bytes", "weight_bytes", "tflm")}
    else:
        entry["reason"] = result.note or "nothing to compress"
    return entry


def _tensor_spec(entry: dict[str, Any]) -> c_array.TensorSpec:
    return c_array.TensorSpec(tuple(entry["shape"]), entry["dtype"], entry["scale"], entry["zero_point"])


def _default_preprocessing(entry: dict[str, Any]) -> str:
    if entry["dtype"] == "float32":
        return "feed the same float values the Keras model takes"
    return (f"x_q = round(x / {entry['scale']:.9g}) + {entry['zero_point']}, clamped to {entry['dtype']}, "
            "where x is what the Keras model takes")


def _flash_bytes(sources: dict[str, str]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="tfprune_cc_") as directory:
        for name, text in sources.items():
            Path(directory, name).write_text(text)
        return c_array.compile_flash_bytes(Path(directory) / "model_data.cc")


def _as_dict(verification: Verification | None) -> dict[str, Any] | None:
    return None if verification is None else verification.as_dict()
