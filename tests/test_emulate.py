"""Tests for tfprune.deploy.emulate: the exported firmware on an emulated Cortex-M4 (QEMU).

They need arm-none-eabi-gcc with newlib, qemu-system-arm, make and the prebuilt TensorFlow
Lite Micro in ../shared/tflm (or $TFPRUNE_TFLM); without them they fail, naming what to
install, rather than skip: running the firmware is the point of this module.
"""

from __future__ import annotations

import doctest
import functools
import json
import os
import re
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import tfprune
from tfprune.baselines import zero_smallest_weights
from tfprune.deploy import c_array
from tfprune.deploy import emulate as emulation
from tfprune.deploy.micro import MicroRunner

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware" / "cortex_m"
MODELS = ["resnet8", "resnet8_l1", "resnet8_lut", "resnet8_prune", "resnet8_binary", "ds_cnn", "mobilenet_v1"]
# A reference-kernel ResNet-8 inference is ~0.8 G emulated instructions (CMSIS-NN: ~30 M).
SAMPLES = {"cmsis_nn": 3, "reference": 1}


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> emulation.Toolchain:
    for kernels in emulation.KERNELS:
        reason = emulation.unavailable_reason(kernels)
        if reason is not None:
            pytest.fail(f"{reason} (CI: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                        "qemu-system-arm make)")
    return emulation.find_toolchain()


@functools.cache
def _cifar() -> np.ndarray:
    from tfprune.datasets import load_cifar10

    (x, _), (x_test, _) = load_cifar10(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10.npz")
    return np.concatenate([x[:32], x_test[:8]]).astype(np.float32)


def _snap_to_16_values(model):
    """Every conv/dense kernel with <= 16 values per output channel, as clustering leaves it."""
    for layer in model.layers:
        if layer.__class__.__name__ in ("Conv2D", "Dense"):
            kernel, *rest = layer.get_weights()
            flat = kernel.reshape(-1, kernel.shape[-1])
            levels = np.linspace(flat.min(0), flat.max(0), 16)  # (16, out)
            nearest = np.abs(flat[None] - levels[:, None]).argmin(0)
            layer.set_weights([np.take_along_axis(levels, nearest, 0).reshape(kernel.shape), *rest])
    return model


def _normalized(model, x):
    """Untrained BatchNorm statistics set from the data, so that activations neither vanish nor explode."""
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            inputs = tf.keras.Model(model.input, layer.input)(x[:16], training=False).numpy()
            axes = tuple(range(inputs.ndim - 1))
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, inputs.mean(axes), inputs.var(axes)])
    return model


@functools.cache
def _artifact(name: str) -> tuple[tfprune.Artifact, np.ndarray]:
    """The exported model (untrained weights, seeded) and a few inputs it takes."""
    import tensorflow as tf

    from tfprune.deploy.binary import for_micro
    from tfprune.prune.channels import l1_filter_pruning

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    compress = "auto"
    if name.startswith("resnet8"):
        x = _cifar()
        model = {
            "resnet8": lambda: tfprune.models.resnet8(),
            "resnet8_l1": lambda: l1_filter_pruning(tfprune.models.resnet8(), 0.5),
            "resnet8_lut": lambda: _snap_to_16_values(tfprune.models.resnet8()),
            "resnet8_prune": lambda: zero_smallest_weights(tfprune.models.resnet8(), 0.75),
            "resnet8_binary": lambda: for_micro(tfprune.models.binary_resnet8()),
        }[name]()
        compress = {"resnet8_lut": "lut", "resnet8_prune": "prune"}.get(name, "auto")
    elif name == "ds_cnn":
        x = rng.normal(0, 1, (40, 49, 10, 1)).astype(np.float32)
        model = _normalized(tfprune.models.ds_cnn(), x[:32])
    else:
        x = rng.uniform(0, 1, (40, 96, 96, 3)).astype(np.float32)
        model = _normalized(tfprune.models.mobilenet_v1(), x[:32])
    artifact = tfprune.export(model, x[:32], compress=compress, verify=False, progress=False)
    return artifact, x[32:]


def _host_outputs(artifact: tfprune.Artifact, x: np.ndarray) -> np.ndarray:
    from tfprune.deploy.verify import quantize_input

    runner = MicroRunner(artifact.flatbuffer)
    return np.stack([runner.run(quantize_input(sample[None], runner.input_details))[0] for sample in x])


@pytest.mark.parametrize("kernels", emulation.KERNELS)
@pytest.mark.parametrize("name", MODELS)
def test_outputs_on_the_cortex_m4_are_the_host_interpreters(name, kernels):
    artifact, x = _artifact(name)
    x = x[:SAMPLES[kernels]]
    if name in ("resnet8_lut", "resnet8_prune", "resnet8_binary"):
        assert "DECODE" in artifact.report["operators"], "expected a DECODE-compressed (LUT or PRUNE) model"
    result = tfprune.emulate(artifact, x, kernels=kernels)

    assert result.outputs.dtype == np.int8 and result.outputs.shape == (len(x), *artifact.report["outputs"][0]["shape"][1:])
    np.testing.assert_array_equal(result.outputs, _host_outputs(artifact, x))
    # It ran in the generated kTensorArenaSize, as main.cc would, and used no more of it.
    declared = c_array.declared_arena_size(artifact.sources)
    assert result.arena_size == declared and 0 < result.arena_bytes <= declared
    if kernels == "reference":
        # What kTensorArenaSize relies on when sized on target: the host's figure (64-bit
        # pointers) bounds what a Cortex-M4 reference build allocates.
        assert result.arena_bytes <= artifact.report["tflm"]["arena_bytes"]
    assert len(result.ticks) == len(x) and min(result.ticks) > 0
    assert result.flash_bytes > len(artifact.flatbuffer) and result.ram_bytes > declared


def test_cmsis_nn_does_less_work_than_the_reference_kernels():
    artifact, x = _artifact("resnet8")
    fast = tfprune.emulate(artifact, x[:1], "cmsis_nn")
    slow = tfprune.emulate(artifact, x[:1], "reference")
    assert fast.ticks_per_inference * 5 < slow.ticks_per_inference
    # The same image and inputs count the same ticks: the clock is the instruction count.
    assert tfprune.emulate(artifact, x[:1], "cmsis_nn").ticks == fast.ticks


def test_unchanged_main_cc_builds_without_warnings_and_boots(tmp_path, toolchain):
    artifact, _ = _artifact("resnet8_lut")
    model_dir = artifact.save(tmp_path / "model")
    out = tmp_path / "out"  # one OUT for both kernel sets: a changed library must relink, not keep the old image
    runner = MicroRunner(artifact.flatbuffer)
    for kernels in emulation.KERNELS:
        build = _make(toolchain, "elf", model_dir, out, kernels)
        assert "warning" not in build.stdout + build.stderr, build.stderr
        symbols = subprocess.run(["arm-none-eabi-nm", str(out / "app.elf")], capture_output=True, text=True,
                                 check=True).stdout
        assert ("arm_convolve_s8" in symbols) == (kernels == "cmsis_nn")

        run = _make(toolchain, "run-qemu", model_dir, out, kernels)
        arena = re.search(r"Arena used: (\d+) of (\d+) bytes", run.stdout)
        assert arena, run.stdout
        assert 0 < int(arena.group(1)) <= int(arena.group(2)) == c_array.declared_arena_size(artifact.sources)
        # main.cc feeds every input its zero point; its outputs are the host interpreter's for that input.
        printed = [int(v) for v in re.findall(r"output\[\d+\] = (-?\d+)", run.stdout)]
        assert printed == runner.run(runner.zero_input()).ravel().tolist()


def _make(toolchain, goal: str, model_dir: Path, out: Path, kernels: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [toolchain.make, "-s", "-C", str(FIRMWARE), goal, f"MODEL_DIR={model_dir}", f"OUT={out}",
         f"KERNELS={kernels}", f"TFLM_PACK={toolchain.tflm}"],
        check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_export_can_size_the_arena_on_the_target():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)), tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.DepthwiseConv2D(3, activation="relu"), tf.keras.layers.Conv2D(16, 1),
        tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(4),
    ])
    x = np.random.default_rng(0).uniform(0, 1, (32, 16, 16, 3)).astype(np.float32)
    plain = tfprune.export(model, x, progress=False)
    artifact = tfprune.export(model, x, progress=False, emulate=True)

    assert plain.report["emulated"] is None
    emulated = artifact.report["emulated"]
    host = artifact.report["tflm"]["arena_bytes"]
    declared = c_array.declared_arena_size(artifact.sources)
    assert emulated["kernels"] == "cmsis_nn" and emulated["ticks_per_inference"] > 0
    assert declared == emulated["tensor_arena_size"] == c_array.tensor_arena_size(max(host, emulated["arena_bytes"]), 0)
    assert declared <= c_array.declared_arena_size(plain.sources)
    assert "used on an emulated" in artifact.sources["model_data.h"]
    assert "Cortex-M4, emulated (CMSIS-NN)" in str(artifact.report)
    # The image with that kTensorArenaSize runs, and takes the RAM the report gives.
    result = tfprune.emulate(artifact, x[:1])
    assert result.arena_bytes == emulated["arena_bytes"] and result.ticks_per_inference == emulated["ticks_per_inference"]
    assert result.ram_bytes == emulated["image_ram_bytes"] and result.flash_bytes == emulated["image_flash_bytes"]


def test_cli_emulates_a_saved_folder_from_any_directory(tmp_path, monkeypatch, capsys):
    from tfprune.cli import main

    artifact, x = _artifact("ds_cnn")
    folder = artifact.save(tmp_path / "build")
    np.savez(tmp_path / "x.npz", x=x[:2])
    monkeypatch.chdir(tmp_path / "build")  # the library is found from the repository, not the working directory
    assert main(["emulate", str(folder), "--inputs", str(tmp_path / "x.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.array_equal(np.array(result["outputs"], np.int8), _host_outputs(artifact, x[:2]))
    assert result["kernels"] == "cmsis_nn" and len(result["ticks"]) == 2

    assert main(["emulate", str(tmp_path / "nothing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_bad_inputs_and_a_too_small_arena_are_one_line_errors():
    artifact, x = _artifact("ds_cnn")
    with pytest.raises(ValueError, match=r"do not fit the model's input \(1, 49, 10, 1\)"):
        tfprune.emulate(artifact, x[:, :10])
    with pytest.raises(ValueError, match="unknown kernels"):
        tfprune.emulate(artifact, x[:1], kernels="cmsis")
    with pytest.raises(TypeError, match="Artifact, a .tflite"):
        tfprune.emulate(42, x[:1])
    with pytest.raises(ValueError, match="does not fit its tensor arena on the target: .*AllocateTensors failed"):
        tfprune.emulate(artifact, None, arena_size=2048)
    # No inputs: only the arena is measured.
    assert tfprune.emulate(artifact).ticks == ()


def test_missing_tools_and_library_say_which_and_how_to_install(monkeypatch, tmp_path):
    which = emulation.shutil.which
    monkeypatch.setattr(emulation.shutil, "which", lambda tool: None if tool == "qemu-system-arm" else which(tool))
    with pytest.raises(emulation.EmulatorUnavailable, match="qemu-system-arm not found: install it with "
                                                            "`apt-get install qemu-system-arm`"):
        tfprune.emulate(b"any", None)
    monkeypatch.undo()
    monkeypatch.setenv("TFPRUNE_TFLM", str(tmp_path))
    message = emulation.unavailable_reason("reference")
    assert f"looked for {tmp_path}/lib/cortex-m4/reference/libtensorflow-microlite.a" in message
    assert "TFPRUNE_TFLM" in message and "\n" not in message


def test_doctests():
    failures, _ = doctest.testmod(emulation, optionflags=doctest.ELLIPSIS)
    assert failures == 0
