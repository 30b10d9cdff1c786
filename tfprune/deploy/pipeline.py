"""``tfprune.export``: one call from a Keras model to the files a device uses.

Every pruning method ends here: convert (int8, float16 or LCE binary), for
TFLite Micro a lean flatbuffer and DECODE compression (LUT, PRUNE),
measurement and verification on the artifact, C sources for Cortex-M.

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
from tfprune.deploy.lean import lean_flatbuffer
from tfprune.deploy.micro import MicroRunner
from tfprune.deploy.report import build_report
from tfprune.deploy.verify import Verification, quantize_input, verify_lce, verify_micro, verify_tflite

TARGETS = ("cortex-m", "android", "android-lce")
COMPRESS_MODES = ("auto", "off", "lut", "prune")
#: Inputs on which a lean or DECODE-compressed file must give the converter's outputs exactly.
IDENTITY_SAMPLES = 8

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
    lean: bool | None = None,
    verify: bool = True,
    preprocessing: str | None = None,
    arena_margin: float | None = None,
    emulate: bool = False,
    progress: bool = True,
) -> Artifact:
    """Export a Keras model for a device and measure the result.

    A model wrapped by :func:`tfprune.wrap` is stripped first and every channel
    its masks prune is removed (:func:`tfprune.remove_masked_channels`), so the
    flatbuffer is physically smaller; weight-level zeros stay as zeros, which
    for cortex-m PRUNE stores as one bit each where that pays (``compress``).

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
        compress: TFLite Micro DECODE compression (cortex-m only). ``"auto"``
            stores each filter (and bias) in the smallest of plain, LUT (<= 16
            distinct values per channel) and PRUNE (a bitmask plus the nonzero
            values: unstructured sparsity), counting headers and alignment,
            when the flatbuffer gets smaller; ``"lut"`` and ``"prune"`` insist
            on one; ``"off"`` never.
        lean: drop what TFLite Micro never reads from the flatbuffer (names,
            signatures, metadata, unused buffers, repeated zero points); kept
            only where TFLite Micro's outputs stay identical. Default True for
            cortex-m; ``False`` keeps the converter's file.
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
    _check_arguments(target, compress, arena_margin, lean)
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
    return _export_cortex_m(flatbuffer, compress, lean is not False, io, check_x, check_y, preprocessing,
                            arena_margin, progress,
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
    lean: bool,
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
    deployed, plain, compressed, lean_entry = micro_flatbuffer(flatbuffer, compress_mode, lean, check_x)
    verification = verify_micro(deployed, flatbuffer, check_x, check_y, progress) if check_x is not None else None
    report = build_report(deployed, target="cortex-m", quantization="int8", io=io,
                          compression=_compression_entry(compress_mode, compressed, plain, lean_entry["applied"],
                                                         read_model(flatbuffer)),
                          lean=lean_entry, verification=_as_dict(verification), names_from=flatbuffer)
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
    reference = flatbuffer if deployed != flatbuffer else None
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


def micro_flatbuffer(
    flatbuffer: bytes, compress_mode: str, lean: bool, check_x: np.ndarray | None
) -> tuple[bytes, bytes, compress.CompressionResult, dict[str, Any]]:
    """(file to deploy, the same without DECODE, the compression result, the report's lean entry).

    The converter's file is made lean (if asked), then DECODE-compressed; every rewritten file must
    give TFLite Micro's outputs of the converter's file, bit for bit (on the first samples of
    ``check_x``, else seeded random ones). This is what :func:`export` stores for ``cortex-m``.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
        >>> converted = tflite.convert(model, np.random.default_rng(0).random((8, 4), np.float32))
        >>> deployed, plain, _, lean = micro_flatbuffer(converted, "auto", True, None)
        >>> len(deployed) < len(converted), lean["applied"]
        (True, True)
    """
    probe = _Probe(flatbuffer, check_x)
    plain, lean_entry = _lean(flatbuffer, probe) if lean else (flatbuffer, {"applied": False, "note": "lean=False"})
    compressed = compress.compress_weights(plain, mode=compress_mode)
    if not compressed.needs_decode:
        return plain, plain, compressed, lean_entry
    deployed = _finish(compressed.flatbuffer, lean_entry["applied"])
    if not probe.matches(deployed):
        raise RuntimeError("DECODE compression changed the model's outputs in TFLite Micro; export with "
                           "compress='off' and report this model to tfprune")
    return deployed, plain, compressed, lean_entry


def _lean(flatbuffer: bytes, probe: "_Probe") -> tuple[bytes, dict[str, Any]]:
    """The lean flatbuffer and its report entry; the converter's file if the lean one differs in TFLite Micro."""
    result = lean_flatbuffer(flatbuffer)
    entry = result.as_dict()
    if result.applied and not probe.matches(result.flatbuffer):
        entry.update(applied=False, note="TFLite Micro's outputs differ on the lean file: kept the converter's")
        return flatbuffer, entry
    return result.flatbuffer, entry


def _finish(compressed: bytes, lean: bool) -> bytes:
    # DECODE insertion copies quantization (all zero points) onto the decoded tensors
    return lean_flatbuffer(compressed).flatbuffer if lean else compressed


class _Probe:
    """The converter file's TFLite Micro outputs on a few inputs, to hold rewritten files to.

    The inputs are the first verification samples, else seeded random ones.
    """

    def __init__(self, flatbuffer: bytes, check_x: np.ndarray | None) -> None:
        runner = MicroRunner(flatbuffer)
        details = runner.input_details
        dtype = np.dtype(details["dtype"])
        if check_x is not None and len(check_x):
            self.inputs = [quantize_input(x[None], details) for x in check_x[:IDENTITY_SAMPLES]]
        elif dtype.kind == "f":
            rng = np.random.default_rng(0)
            self.inputs = [rng.normal(size=details["shape"]).astype(dtype) for _ in range(IDENTITY_SAMPLES)]
        else:
            rng, limits = np.random.default_rng(0), np.iinfo(dtype)
            self.inputs = [rng.integers(limits.min, limits.max, size=details["shape"], endpoint=True).astype(dtype)
                           for _ in range(IDENTITY_SAMPLES)]
        self.outputs = [runner.run(x) for x in self.inputs]

    def matches(self, flatbuffer: bytes) -> bool:
        """True when TFLite Micro gives bit-identical outputs for ``flatbuffer``."""
        runner = MicroRunner(flatbuffer)
        return all(np.array_equal(runner.run(x), y) for x, y in zip(self.inputs, self.outputs))


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


def _check_arguments(target: str, compress_mode: str, arena_margin: float, lean: bool | None) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if compress_mode not in COMPRESS_MODES:
        raise ValueError(f"unknown compress mode {compress_mode!r}; choose one of {', '.join(COMPRESS_MODES)}")
    if compress_mode in ("lut", "prune") and target != "cortex-m":
        raise ValueError(f"{compress_mode.upper()} compression (DECODE operators) is for TFLite Micro: "
                         "use it with target cortex-m")
    if lean not in (None, True, False):
        raise TypeError(f"lean must be True, False or None, not {lean!r}")
    if lean and target != "cortex-m":
        raise ValueError("a lean flatbuffer is for TFLite Micro (the stock TFLite interpreter needs the zero points "
                         "and signatures it drops): use lean=True with target cortex-m")
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


def _compression_entry(
    mode: str, result: compress.CompressionResult, uncompressed: bytes, lean: bool, named: Any
) -> dict[str, Any]:
    def name(row: dict[str, Any]) -> dict[str, Any]:
        # a lean file has no names; the converter's file, same tensor order, has them
        if row["subgraph"] == 0 and 0 <= row["index"] < len(named.tensors):
            row["name"] = named.tensors[row["index"]].name or row["name"]
        return row

    entry: dict[str, Any] = {
        "mode": mode,
        "applied": result.applied,
        "encodings": list(result.encodings),
        "tensors": [name(dict(dataclasses.asdict(t), bytes_saved=t.bytes_saved)) for t in result.tensors],
        "skipped": [name(dataclasses.asdict(t)) for t in result.skipped],
    }
    if not result.needs_decode:
        entry["reason"] = result.note or "nothing to compress"
        return entry
    entry["uncompressed"] = _figures(uncompressed)
    if len(result.encodings) > 1:
        # "without PRUNE" is the best file the other encoding makes alone, and so on
        entry["without"] = {}
        for encoding in result.encodings:
            others = tuple(e for e in result.encodings if e != encoding)
            alone = compress.compress_weights(uncompressed, mode="auto", encodings=others)
            entry["without"][encoding] = _figures(_finish(alone.flatbuffer, lean) if alone.needs_decode
                                                  else uncompressed)
    return entry


def _figures(flatbuffer: bytes) -> dict[str, Any]:
    report = build_report(flatbuffer, target="cortex-m")
    return {key: report[key] for key in ("flatbuffer_bytes", "weight_bytes", "tflm")}


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
