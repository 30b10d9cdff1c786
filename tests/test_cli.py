"""The tfprune command: files for the device on success, one line and exit code 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfprune.cli import main


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, trained_mnist) -> Path:
    path = tmp_path_factory.mktemp("model") / "mnist.keras"
    trained_mnist[0].save(path)
    return path


@pytest.fixture(scope="module")
def calibration_npz(tmp_path_factory, trained_mnist) -> Path:
    path = tmp_path_factory.mktemp("data") / "calibration.npz"
    np.savez(path, x=trained_mnist[1][:100])
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, message: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message in lines[0]


def test_convert_writes_the_files_and_prints_the_report(capsys, tmp_path, keras_file, calibration_npz):
    out = tmp_path / "build"
    code, stdout, _ = run_cli(capsys, "convert", keras_file, "--target", "cortex-m",
                              "--representative", calibration_npz, "--out", out, "--quiet")
    assert code == 0
    assert {"model.tflite", "model_data.h", "model_data.cc", "model_ops.h", "report.json"} <= {
        path.name for path in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["flatbuffer_bytes"] == (out / "model.tflite").stat().st_size
    assert "TFLite Micro arena" in stdout and "top-1 agreement 100.00%" in stdout


def test_existing_output_needs_force(capsys, tmp_path, keras_file, calibration_npz):
    out = tmp_path / "build"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "convert", keras_file, "--representative", calibration_npz, "--out", out)
    assert_one_line_error(code, err, "pass --force")
    assert [path.name for path in out.iterdir()] == ["notes.txt"]
    code, _, _ = run_cli(capsys, "convert", keras_file, "--representative", calibration_npz, "--out", out,
                         "--force", "--quiet", "--no-verify")
    assert code == 0 and (out / "model.tflite").exists() and not (out / "notes.txt").exists()


def test_bad_inputs_get_one_line_and_exit_2(capsys, tmp_path, keras_file, calibration_npz, mlperf_quant):
    out = tmp_path / "never"
    text = tmp_path / "model.h5"
    text.write_text("not a model")
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, x=np.zeros((10, 32, 32, 3), np.float32))
    wrong_dtype = tmp_path / "wrong_dtype.npz"
    np.savez(wrong_dtype, x=np.array(["pixel"] * 10 * 784).reshape(10, 28, 28, 1))
    keras3 = tmp_path / "keras3.keras"
    with zipfile.ZipFile(keras3, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    cases = [
        ((text, "--representative", calibration_npz), "not a Keras model"),
        ((tmp_path / "missing.keras",), "no such file"),
        ((mlperf_quant,), "already a TFLite flatbuffer"),
        ((keras_file,), "needs representative data"),
        ((keras_file, "--representative", wrong_shape), "samples of shape (32, 32, 3) but the model takes (28, 28, 1)"),
        ((keras_file, "--representative", wrong_dtype), "must be numeric"),
        ((keras_file, "--representative", tmp_path / "none.npz"), "no such file"),
        ((keras3, "--representative", calibration_npz), "saved by Keras 3.6.0"),
        ((keras_file, "--target", "android-lce"), "no larq quantized layers"),
    ]
    for arguments, message in cases:
        code, _, err = run_cli(capsys, "convert", *arguments, "--out", out, "--quiet")
        assert_one_line_error(code, err, message)
        assert not out.exists(), f"half-written output after {arguments}"


def test_subclassed_savedmodel_is_refused(capsys, tmp_path, calibration_npz):
    class Subclassed(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = tf.keras.layers.Flatten()
            self.dense = tf.keras.layers.Dense(10)

        def call(self, x):
            return self.dense(self.flatten(x))

    model = Subclassed()
    model(np.zeros((1, 28, 28, 1), np.float32))
    model.save(tmp_path / "subclassed")
    code, _, err = run_cli(capsys, "convert", tmp_path / "subclassed", "--representative", calibration_npz,
                           "--out", tmp_path / "out")
    assert_one_line_error(code, err, "subclassed")


def test_undeployable_operator_is_named(capsys, tmp_path):
    inputs = tf.keras.Input((8, 8, 4))
    activated = tf.keras.layers.Activation("gelu")(inputs)
    path = tmp_path / "gelu.keras"
    tf.keras.Model(inputs, tf.keras.layers.Dense(2)(tf.keras.layers.GlobalAveragePooling2D()(activated))).save(path)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.random.default_rng(0).random((8, 8, 8, 4)).astype(np.float32))
    code, _, err = run_cli(capsys, "convert", path, "--representative", data, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "GELU")


def test_inspect_prints_any_flatbuffer(capsys, tmp_path, mlperf_quant):
    code, stdout, _ = run_cli(capsys, "inspect", mlperf_quant)
    assert code == 0 and "98,496 B" in stdout and "55,984 B" in stdout
    code, stdout, _ = run_cli(capsys, "inspect", mlperf_quant, "--json")
    assert json.loads(stdout)["tflm"]["arena_bytes"] == 55_984
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    code, _, err = run_cli(capsys, "inspect", garbage)
    assert_one_line_error(code, err, "not a TFLite flatbuffer")


def test_installed_command_exits_2_on_bad_input(tmp_path):
    command = Path(sys.executable).parent / "tfprune"
    assert command.exists(), "the package installs the tfprune command"
    result = subprocess.run([command, "inspect", tmp_path / "missing.tflite"], capture_output=True, text=True)
    assert result.returncode == 2 and "no such file" in result.stderr


# --- errors: bad input, bugs, --debug (no model or data needed) ----------------------------


def test_a_bug_in_tfprune_is_not_reported_as_bad_input(capsys, tmp_path, monkeypatch):
    from tfprune.deploy import pipeline

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    code, _, err = run_cli(capsys, "inspect", garbage)
    assert_one_line_error(code, err, "not a TFLite flatbuffer")
    # tfprune's own code trips over a model description without the attributes it reads
    monkeypatch.setattr(pipeline, "read_model", lambda flatbuffer: object())
    code, _, err = run_cli(capsys, "inspect", garbage)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "internal error, a bug in tfprune: AttributeError" in err and "--debug" in err
    # a library's ValueError that tfprune did not translate is not a message about the input either
    monkeypatch.setattr(pipeline, "read_model", lambda flatbuffer: int("x"))
    code, _, err = run_cli(capsys, "inspect", garbage)
    assert code == 1 and "internal error" in err and "ValueError" in err


def test_a_bug_translated_into_a_value_error_is_still_a_bug(capsys, tmp_path, monkeypatch):
    from tfprune import keras_model

    fake = tmp_path / "model.keras"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.15.0"}))
    arguments = ("convert", fake, "--representative", fake, "--out", tmp_path / "out")
    code, _, err = run_cli(capsys, *arguments)
    assert_one_line_error(code, err, "could not be loaded as a Keras model")
    # load_model translates whatever the loader raises; here tfprune's own code fails inside it
    monkeypatch.setattr(tf.keras.models, "load_model", lambda path, compile: keras_model.model_sample_shape(None))
    code, _, err = run_cli(capsys, *arguments)
    assert code == 1 and "internal error, a bug in tfprune: ValueError" in err, err


def test_debug_shows_the_traceback_with_its_cause(capsys, tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"TFL3" * 4)
    for argv in (["--debug", "inspect", str(garbage)], ["inspect", str(garbage), "--debug"]):
        with pytest.raises(ValueError, match="not a TFLite flatbuffer") as raised:
            main(argv)
        assert raised.value.__cause__ is not None or "too short" in str(raised.value)
    assert main(["inspect", str(garbage)]) == 2


def test_captured_native_output_is_written_back_when_debugging(capfd, monkeypatch):
    import os
    import threading

    from tfprune._native import captured_output

    with captured_output(2) as captured:
        os.write(2, b"converter noise\n")
        assert captured.text() == "converter noise\n"
    assert "converter noise" not in capfd.readouterr().err
    monkeypatch.setenv("TFPRUNE_DEBUG", "1")
    with captured_output() as captured:
        other = threading.Thread(target=lambda: os.write(2, b"another thread's line\n"))
        other.start()
        other.join()
        os.write(1, b"native stdout\n")
    err = capfd.readouterr().err
    assert "another thread's line" in err and "native stdout" in err
