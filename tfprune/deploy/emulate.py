"""The exported model on an emulated Cortex-M4: its outputs, timer ticks and arena there.

:func:`emulate` compiles an artifact's C sources with the firmware's harness
(``firmware/cortex_m/harness.cc``) against TensorFlow Lite Micro built for a
Cortex-M4 (the prebuilt package ``../shared/tflm`` beside the repository, or
``$TFPRUNE_TFLM``), runs it on QEMU's ``mps2-an386`` board, and reads back the
int8 outputs, the CMSDK timer ticks of every inference, the arena the
interpreter used on the target and the image's flash and RAM.

Ticks are deterministic: under ``-icount shift=0`` QEMU executes one instruction
per virtual nanosecond and the timer counts at 25 MHz, so a tick is 40 emulated
instructions. They measure work, not a real core's cycles (QEMU models no
pipeline, cache or flash wait states): compare models by their ratio.

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
    >>> result = emulate(fb, np.zeros((1, 32, 32, 3), np.int8))
    >>> result.outputs.shape, result.arena_bytes
    ((1, 10), 54996)
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

KERNELS = ("cmsis_nn", "reference")

#: Where the firmware sources live: the repository's ``firmware/cortex_m``.
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware" / "cortex_m"

#: The prebuilt TensorFlow Lite Micro package unless ``$TFPRUNE_TFLM`` names another.
DEFAULT_TFLM = Path(__file__).resolve().parents[3] / "shared" / "tflm"

#: The emulated board, as ``make run-qemu`` runs it (firmware/cortex_m/Makefile).
QEMU_ARGUMENTS = ("-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                  "-serial", "null", "-icount", "shift=0")

#: Emulated instructions per timer tick: 1 ns per instruction, a 25 MHz timer clock.
INSTRUCTIONS_PER_TICK = 40

_APT = {
    "arm-none-eabi-g++": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "make": "make",
}
_LINE = re.compile(r"^tfprune-harness (\w+) ?(.*)$")
_SAMPLE = re.compile(r"^(\d+) ticks (\d+) output ([0-9a-f]*)$")
_FLASH_SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".data")
_RAM_SECTIONS = (".data", ".bss")
_MODEL_FILES = ("model_data.h", "model_data.cc", "model_ops.h")


class EmulatorUnavailable(FileNotFoundError):
    """A tool or library :func:`emulate` needs is missing; the message says which and how to install it.

    Example:
        >>> isinstance(EmulatorUnavailable("qemu-system-arm not found"), FileNotFoundError)
        True
    """


@dataclass(frozen=True)
class Emulation:
    """What one :func:`emulate` run measured on the emulated Cortex-M4.

    ``outputs``: output 0 for every input, raw (int8 for tfprune's cortex-m
    models), shape ``(N, *output shape without the batch)``. ``ticks``: CMSDK
    timer ticks of each inference (40 emulated instructions each).
    ``arena_bytes``: ``arena_used_bytes()`` of the interpreter on the target;
    ``arena_size``: the arena the image had. ``flash_bytes``: the image's
    code, constants and initialised data (``.text``, ``.ARM.ex*``, ``.data``);
    ``ram_bytes``: its ``.data`` and ``.bss`` (the arena included, the board's
    stack and heap reservations not).

    Example:
        >>> e = Emulation(np.zeros((2, 10), np.int8), (100, 102), 5000, 6000, 90000, 7000, "cmsis_nn", "qemu")
        >>> e.ticks_per_inference, e.instructions_per_inference
        (101, 4040)
    """

    outputs: np.ndarray
    ticks: tuple[int, ...]
    arena_bytes: int
    arena_size: int
    flash_bytes: int
    ram_bytes: int
    kernels: str
    measured_on: str

    @property
    def ticks_per_inference(self) -> int | None:
        """Median ticks of one inference (None when no input ran)."""
        return round(statistics.median(self.ticks)) if self.ticks else None

    @property
    def instructions_per_inference(self) -> int | None:
        """About how many instructions the emulated core executed per inference."""
        ticks = self.ticks_per_inference
        return None if ticks is None else ticks * INSTRUCTIONS_PER_TICK

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values (outputs as nested lists)."""
        values = asdict(self)
        values["outputs"] = self.outputs.tolist()
        values["ticks"] = list(self.ticks)
        values["ticks_per_inference"] = self.ticks_per_inference
        return values


@dataclass(frozen=True)
class Toolchain:
    """Paths of everything :func:`emulate` runs: compilers, QEMU, make and TFLite Micro."""

    make: str
    size: str
    qemu: str
    tflm: Path
    firmware: Path

    def library(self, kernels: str) -> Path:
        """The static library for a kernel set."""
        return self.tflm / "lib" / "cortex-m4" / kernels / "libtensorflow-microlite.a"


def tflm_location() -> Path:
    """The TensorFlow Lite Micro package :func:`emulate` uses: ``$TFPRUNE_TFLM`` or ``../shared/tflm``.

    ``../shared/tflm`` is relative to the repository, not to the working directory.

    Example:
        >>> tflm_location().name
        'tflm'
    """
    configured = os.environ.get("TFPRUNE_TFLM")
    return Path(configured).expanduser().resolve() if configured else DEFAULT_TFLM


def find_toolchain(kernels: str = "cmsis_nn") -> Toolchain:
    """Everything :func:`emulate` needs, or :class:`EmulatorUnavailable` naming the first thing missing.

    Example:
        >>> find_toolchain().qemu.endswith("qemu-system-arm")
        True
    """
    _check_kernels(kernels)
    tools = {}
    for tool in ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", "make"):
        tools[tool] = shutil.which(tool)
        if tools[tool] is None:
            raise EmulatorUnavailable(f"{tool} not found: install it with `apt-get install {_APT[tool]}`")
    _check_newlib(tools["arm-none-eabi-gcc"])
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise EmulatorUnavailable(f"the firmware sources are not at {FIRMWARE_DIR}: emulation runs from a "
                                  "tfprune checkout (pip install -e .)")
    toolchain = Toolchain(tools["make"], tools["arm-none-eabi-size"], tools["qemu-system-arm"], tflm_location(),
                          FIRMWARE_DIR)
    library = toolchain.library(kernels)
    if not library.is_file() or not (toolchain.tflm / "include" / "tensorflow").is_dir():
        source = "$TFPRUNE_TFLM" if os.environ.get("TFPRUNE_TFLM") else "../shared/tflm beside the repository"
        raise EmulatorUnavailable(
            f"TensorFlow Lite Micro for Cortex-M4 not found: looked for {library} and its include/ ({source}); "
            "set TFPRUNE_TFLM to the prebuilt package (its BUILD.sh rebuilds it from source)")
    return toolchain


def unavailable_reason(kernels: str = "cmsis_nn") -> str | None:
    """None when :func:`emulate` can run here, else the one line saying what is missing.

    Example:
        >>> reason = unavailable_reason()
        >>> reason is None or "not found" in reason
        True
    """
    try:
        find_toolchain(kernels)
    except EmulatorUnavailable as missing:
        return str(missing)
    return None


def emulate(
    artifact: Any,
    inputs: Any = None,
    kernels: str = "cmsis_nn",
    *,
    arena_size: int | None = None,
    timeout: float | None = None,
) -> Emulation:
    """Run ``artifact`` on an emulated Cortex-M4 (QEMU ``mps2-an386``) with TFLite Micro.

    Args:
        artifact: what :func:`tfprune.export` returned for ``cortex-m``, the
            directory it was saved to, or a ``.tflite`` flatbuffer (bytes or
            path; its C sources are generated here).
        inputs: samples for input 0, ``(N, ...)`` or one sample: already in the
            model's input type (int8) they are used as they are; floats are
            quantized with the input's scale and zero point (what the Keras
            model takes). An ``.npz`` path reads its array ``x``. ``None`` runs
            no inference and measures only the arena.
        kernels: ``"cmsis_nn"`` (what a Cortex-M4 firmware links) or ``"reference"``.
        arena_size: the tensor arena of the image; default the artifact's
            ``kTensorArenaSize`` (so a too small one fails here as on a device),
            and for a bare flatbuffer twice what the host measured.
        timeout: seconds QEMU may run; default 120 plus 60 per input.

    Returns:
        An :class:`Emulation`. Builds are cached in this process, so running
        the same artifact again (other inputs, say) only runs QEMU.

    Raises:
        EmulatorUnavailable: the cross compiler, QEMU or TFLite Micro is missing.
        ValueError: bad inputs, or an arena too small for the model.
        RuntimeError: the firmware failed to build or to run.
    """
    toolchain = find_toolchain(kernels)
    flatbuffer, sources = _artifact_parts(artifact)
    from tfprune.deploy.flatbuffer import read_model

    info = read_model(flatbuffer)
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise ValueError(f"emulate runs models with one input and one output; this one has "
                         f"{len(info.inputs)} and {len(info.outputs)}")
    samples, count = _input_bytes(inputs, info.inputs[0])
    arena = _arena_size(arena_size, sources, flatbuffer, artifact)
    with _BUILD_LOCK:
        build = _build_dir(kernels)
        elf = _build(toolchain, build, sources, kernels, arena)
        log = _run(toolchain, elf, build, samples, count, timeout)
        flash, ram = _image_sizes(toolchain, elf)
    return _emulation(log, info.outputs[0], arena, flash, ram, kernels, toolchain)


def _check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)}")


def _check_newlib(gcc: str) -> None:
    # gcc-arm-none-eabi installs without the C library; without newlib nothing links.
    found = subprocess.run([gcc, "-print-file-name=rdimon.specs"], check=False, capture_output=True,
                           text=True).stdout.strip()
    if not os.path.isabs(found):
        raise EmulatorUnavailable("newlib for arm-none-eabi (rdimon.specs) not found: install it with "
                                  "`apt-get install libnewlib-arm-none-eabi`")


def _artifact_parts(artifact: Any) -> tuple[bytes, dict[str, str]]:
    from tfprune.deploy.artifact import Artifact

    if isinstance(artifact, Artifact):
        if not all(name in artifact.sources for name in _MODEL_FILES):
            raise ValueError("this artifact has no C sources: export it with target='cortex-m'")
        return bytes(artifact.flatbuffer), {name: artifact.sources[name] for name in _MODEL_FILES}
    if isinstance(artifact, (bytes, bytearray, memoryview)):
        flatbuffer = bytes(artifact)
        return flatbuffer, _generated_sources(flatbuffer)
    if isinstance(artifact, (str, os.PathLike)):
        path = Path(artifact)
        if path.is_dir():
            missing = [name for name in ("model.tflite", *_MODEL_FILES) if not (path / name).is_file()]
            if missing:
                raise ValueError(f"{path} lacks {', '.join(missing)}: give the folder `tfprune convert "
                                 "--target cortex-m --out DIR` wrote")
            return (path / "model.tflite").read_bytes(), {name: (path / name).read_text() for name in _MODEL_FILES}
        if path.is_file():
            flatbuffer = path.read_bytes()
            return flatbuffer, _generated_sources(flatbuffer)
        raise ValueError(f"{path}: no such file or directory")
    raise TypeError(f"artifact must be an Artifact, a .tflite flatbuffer (bytes or path) or an export folder, "
                    f"not {type(artifact).__name__}")


def _generated_sources(flatbuffer: bytes) -> dict[str, str]:
    from tfprune.deploy import c_array
    from tfprune.deploy.flatbuffer import read_model
    from tfprune.deploy.micro import MicroRunner

    info = read_model(flatbuffer)

    def spec(tensor: Any) -> c_array.TensorSpec:
        return c_array.TensorSpec(tensor.shape, tensor.dtype, tensor.scales[0] if tensor.scales else 0.0,
                                  tensor.zero_points[0] if tensor.zero_points else 0)

    return c_array.c_sources(flatbuffer, op_names=info.op_names, inputs=[spec(t) for t in info.inputs],
                             outputs=[spec(t) for t in info.outputs], arena_bytes=MicroRunner(flatbuffer).arena_bytes,
                             preprocessing="as the model's input tensor")


def _arena_size(arena_size: int | None, sources: dict[str, str], flatbuffer: bytes, artifact: Any) -> int:
    if arena_size is not None:
        if isinstance(arena_size, bool) or not isinstance(arena_size, int) or not 0 < arena_size <= 3 << 20:
            raise ValueError(f"arena_size must be a number of bytes between 1 and 3 MiB (the board's RAM is 4 MiB), "
                             f"not {arena_size!r}")
        return arena_size
    from tfprune.deploy.c_array import declared_arena_size

    declared = declared_arena_size(sources)
    if isinstance(artifact, (bytes, bytearray, memoryview)) or (
            isinstance(artifact, (str, os.PathLike)) and Path(artifact).is_file()):
        return 2 * declared  # nobody set this arena: measure with room to spare
    return declared


def _input_bytes(inputs: Any, tensor: Any) -> tuple[bytes, int]:
    if inputs is None:
        return b"", 0
    if isinstance(inputs, (str, os.PathLike)):
        from tfprune.keras_model import load_npz_samples

        inputs = load_npz_samples(inputs)
    samples = np.asarray(inputs)
    shape = tuple(tensor.shape[1:])
    if samples.shape == shape:
        samples = samples[None]
    if samples.ndim != len(shape) + 1 or samples.shape[1:] != shape:
        raise ValueError(f"inputs of shape {samples.shape} do not fit the model's input {tuple(tensor.shape)}: "
                         f"give (N, {', '.join(map(str, shape))})")
    dtype = np.dtype(tensor.dtype)
    if samples.dtype != dtype:
        if samples.dtype.kind not in "fiu":
            raise TypeError(f"inputs must be numbers, not {samples.dtype}")
        from tfprune.deploy.verify import quantize_input

        details = {"dtype": dtype, "quantization_parameters": {"scales": np.asarray(tensor.scales),
                                                                "zero_points": np.asarray(tensor.zero_points)}}
        samples = quantize_input(samples.astype(np.float64), details)
    return np.ascontiguousarray(samples, dtype=dtype.newbyteorder("<")).tobytes(), len(samples)


_BUILD_LOCK = threading.Lock()
_BUILD_ROOT: list[Path] = []


def _build_dir(kernels: str) -> Path:
    # One folder per kernel set for this process: make rebuilds only what a new model changes.
    if not _BUILD_ROOT:
        root = Path(tempfile.mkdtemp(prefix="tfprune_emulate_"))
        atexit.register(shutil.rmtree, root, True)
        _BUILD_ROOT.append(root)
    return _BUILD_ROOT[0] / kernels


def _build(toolchain: Toolchain, build: Path, sources: dict[str, str], kernels: str, arena: int) -> Path:
    model = build / "model"
    model.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        path = model / name
        if not path.is_file() or path.read_text() != text:  # unchanged files keep their time stamp
            path.write_text(text)
    out = build / "out"
    command = [toolchain.make, "-s", "-C", str(toolchain.firmware), f"-j{min(os.cpu_count() or 1, 4)}", "elf",
               f"APP_SRCS={toolchain.firmware / 'harness.cc'}", "BOARD=mps2-an386", f"KERNELS={kernels}", f"MODEL_DIR={model}", f"OUT={out}",
               f"TFLM_PACK={toolchain.tflm}", "TFLM_DIR=", f"EXTRA_CXXFLAGS=-DTFPRUNE_ARENA_BYTES={arena}"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in (result.stderr + result.stdout).splitlines() if "error" in line.lower()]
        detail = errors[0] if errors else (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"the firmware did not build for {kernels}: {detail} (run: {' '.join(command)})")
    return out / "app.elf"


def _run(toolchain: Toolchain, elf: Path, build: Path, samples: bytes, count: int, timeout: float | None) -> str:
    arguments = "enable=on,target=native,arg=app.elf"
    if samples:
        inputs = build / "inputs.bin"
        inputs.write_bytes(samples)
        arguments += ",arg=" + str(inputs).replace(",", ",,")
    limit = timeout if timeout is not None else 120 + 60 * max(count, 1)
    command = [toolchain.qemu, *QEMU_ARGUMENTS, "-semihosting-config", arguments, "-kernel", str(elf)]
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=limit,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the firmware did not finish within {limit:g} s on the emulator; pass a larger timeout "
                           "or fewer inputs (reference kernels run ~30x slower than CMSIS-NN)") from None
    log = result.stdout + result.stderr
    if result.returncode != 0 or "tfprune-harness done" not in log:
        messages = [line.strip().replace("tfprune-harness error ", "") for line in log.splitlines()
                    if line.strip() and (not line.startswith("tfprune-harness ") or " error " in line)]
        reason = "; ".join(messages[-4:]) or f"exit status {result.returncode}"
        if "AllocateTensors failed" in log:
            raise ValueError(f"the model does not fit its tensor arena on the target: {reason} (re-export with "
                             "emulate=True to size kTensorArenaSize there, or pass arena_size= to measure)")
        raise RuntimeError(f"the firmware failed on the emulated Cortex-M4: {reason}")
    return log


def _image_sizes(toolchain: Toolchain, elf: Path) -> tuple[int, int]:
    result = subprocess.run([toolchain.size, "-A", str(elf)], capture_output=True, text=True, check=True)
    sections = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith(".") and fields[1].isdigit():
            sections[fields[0]] = int(fields[1])
    flash = sum(sections.get(name, 0) for name in _FLASH_SECTIONS)
    ram = sum(sections.get(name, 0) for name in _RAM_SECTIONS)
    return flash, ram


def _emulation(log: str, output: Any, arena: int, flash: int, ram: int, kernels: str,
               toolchain: Toolchain) -> Emulation:
    ticks, rows, arena_used = [], [], None
    for line in log.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        key, value = match.groups()
        if key == "sample":
            sample = _SAMPLE.match(value)
            ticks.append(int(sample.group(2)))
            rows.append(bytes.fromhex(sample.group(3)))
        elif key == "arena_used":
            arena_used = int(value)
    dtype = np.dtype(output.dtype)
    outputs = np.frombuffer(b"".join(rows), dtype.newbyteorder("<")).astype(dtype)
    outputs = outputs.reshape((len(rows), *output.shape[1:]))
    return Emulation(outputs, tuple(ticks), arena_used, arena, flash, ram, kernels, _measured_on(toolchain, kernels))


def _measured_on(toolchain: Toolchain, kernels: str) -> str:
    version = subprocess.run([toolchain.qemu, "--version"], check=False, capture_output=True, text=True).stdout.split()
    qemu = version[3] if len(version) > 3 else "?"
    info = toolchain.library(kernels).parent / "BUILD_INFO.txt"
    commit = re.search(r"TFLM commit: ([0-9a-f]{7})", info.read_text()) if info.is_file() else None
    tflm = f"TFLite Micro {commit.group(1)}" if commit else "TFLite Micro"
    return (f"QEMU {qemu} mps2-an386 (Cortex-M4), -icount shift=0; {tflm} {kernels} kernels "
            f"from {toolchain.tflm}")
