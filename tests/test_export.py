"""tfprune.export end to end: artifacts measured and verified on the interpreters a device runs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.deploy.micro import MicroRunner
from tfprune.deploy.verify import quantize_input


@pytest.fixture(scope="module")
def cortex_m_artifact(trained_mnist):
    model, calibration, held_out = trained_mnist
    return tfprune.export(model, calibration, target="cortex-m", verify_data=held_out, progress=False)


def test_tflm_and_tflite_agree_on_every_held_out_sample(trained_mnist, cortex_m_artifact):
    model, _, (x_held, y_held) = trained_mnist
    verification = cortex_m_artifact.report["verification"]
    assert verification["samples"] == len(x_held) >= 100
    assert verification["reference"] == "tflite BUILTIN_REF"
    assert verification["top1_agreement"] == 1.0
    keras_accuracy = float(np.mean(np.argmax(model.predict(x_held, verbose=0), -1) == y_held))
    assert keras_accuracy > 0.8, "the fixture model should be trained well above chance"
    assert abs(verification["accuracy"] - keras_accuracy) < 0.03


def test_cortex_m_report_measures_the_artifact(cortex_m_artifact):
    report = cortex_m_artifact.report
    assert report["flatbuffer_bytes"] == len(cortex_m_artifact.flatbuffer)
    assert report["inputs"][0]["dtype"] == "int8" and report["outputs"][0]["dtype"] == "int8"
    assert report["tflm"]["arena_bytes"] == MicroRunner(cortex_m_artifact.flatbuffer).arena_bytes
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(report["operators"])
    assert [layer["output_channels"] for layer in report["layers"]] == [16, 32, 10]
    # 28x28x16x9 + 14x14x32x9x16 + 7x7x32x10 multiply-accumulates
    assert report["macs"] == 28 * 28 * 16 * 9 + 14 * 14 * 32 * 9 * 16 + 7 * 7 * 32 * 10
    assert report["compression"]["applied"] is False
    flash = report["flash"]
    assert flash is not None, "arm-none-eabi-g++ is needed (apt-get install gcc-arm-none-eabi)"
    assert flash["text"] + flash["data"] >= report["flatbuffer_bytes"]
    assert "98,496" not in str(report) and "TFLite Micro arena" in str(report)


def test_saved_files_and_c_sources(cortex_m_artifact, tmp_path):
    out = cortex_m_artifact.save(tmp_path / "build")
    names = {path.name for path in out.iterdir()}
    assert {"model.tflite", "model_data.h", "model_data.cc", "report.json"} <= names
    assert (out / "model.tflite").read_bytes() == cortex_m_artifact.flatbuffer
    assert "alignas(16)" in (out / "model_data.cc").read_text()


def test_save_never_overwrites_without_being_asked(cortex_m_artifact, tmp_path):
    target = tmp_path / "build"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cortex_m_artifact.save(target)
    assert [path.name for path in target.iterdir()] == ["mine.txt"]
    cortex_m_artifact.save(target, overwrite=True)
    assert not (target / "mine.txt").exists() and (target / "model.tflite").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["build"], "no staging directory left behind"


def binarized(model: tf.keras.Model) -> tf.keras.Model:
    """The same network with binary kernels: sign(w) * mean|w| per output channel for convolutions
    and per tensor for dense layers (TF 2.15 quantizes dense kernels per tensor, so one scale
    keeps them at two values per channel after quantization too)."""
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
            kernel = layer.kernel.numpy()
            axes = tuple(range(kernel.ndim - 1)) if isinstance(layer, tf.keras.layers.Conv2D) else None
            layer.kernel.assign(np.where(kernel >= 0, 1.0, -1.0) * np.abs(kernel).mean(axis=axes, keepdims=True))
    return clone


def test_two_value_kernels_export_with_decode_and_identical_outputs(trained_mnist):
    model, calibration, (x_held, _) = trained_mnist
    binary = binarized(model)
    artifact = tfprune.export(binary, calibration, verify_data=x_held[:100], progress=False)
    plain = tfprune.export(binary, calibration, compress="off", verify=False, progress=False)
    report = artifact.report
    assert "DECODE" in report["operators"] and "DECODE" not in plain.report["operators"]
    compression = report["compression"]
    # the first conv (144 B) stays plain: its DECODE structure would cost more than its 1-bit indices save
    assert compression["applied"] and [t["bits"] for t in compression["tensors"]] == [1, 1]
    assert any("would not shrink" in t["reason"] for t in compression["skipped"])
    assert compression["uncompressed"]["weight_bytes"] == plain.report["weight_bytes"]
    assert report["weight_bytes"] * 4 <= plain.report["weight_bytes"]
    assert report["flatbuffer_bytes"] < plain.report["flatbuffer_bytes"]
    assert report["tflm"]["arena_bytes"] >= compression["uncompressed"]["tflm"]["arena_bytes"]
    # both keep the converter's file for the stock TFLite interpreter: DECODE and the lean file are TFLM-only
    assert artifact.reference_flatbuffer == plain.reference_flatbuffer != plain.flatbuffer
    compressed_runner, plain_runner = MicroRunner(artifact.flatbuffer), MicroRunner(plain.flatbuffer)
    for x in x_held[:100]:
        sample = quantize_input(x[None], plain_runner.input_details)
        np.testing.assert_array_equal(compressed_runner.run(sample), plain_runner.run(sample))
    assert report["verification"]["top1_agreement"] == 1.0
    assert "RegisterModelOps" in artifact.sources["model_ops.h"] and "AddDecode" in artifact.sources["model_ops.h"]


def test_larq_model_exports_for_android_lce_with_binary_ops():
    import larq as lq

    tf.keras.utils.set_random_seed(1)
    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                  use_bias=False)
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)),
        tf.keras.layers.Conv2D(16, 3, padding="same"),
        tf.keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(32, 3, padding="same", **binary),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(4),
    ])
    x = np.random.default_rng(0).normal(size=(40, 16, 16, 3)).astype(np.float32)
    artifact = tfprune.export(model, target="android-lce", verify_data=x, progress=False)
    report = artifact.report
    assert "LceBconv2d" in report["operators"]
    assert report["quantization"] == "binary"
    verification = report["verification"]
    assert verification["samples"] == 40 and verification["top1_agreement"] >= 0.95
    assert verification["max_abs_diff"] < 1e-2
    assert "error" in report["tflm"], "TFLite Micro cannot run LCE operators; the report says so"


def test_android_int8_and_float16(trained_mnist):
    model, calibration, held_out = trained_mnist
    int8 = tfprune.export(model, calibration, target="android", verify_data=held_out, progress=False)
    assert int8.report["io"] == "float" and int8.report["verification"]["accuracy"] > 0.8
    half = tfprune.export(model, target="android", quantization="float16", verify_data=held_out, progress=False)
    assert half.report["quantization"] == "float16"
    assert half.report["verification"]["top1_agreement"] >= 0.99
    assert int8.report["flatbuffer_bytes"] < half.report["flatbuffer_bytes"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(target="stm32"), ValueError, "unknown target 'stm32'"),
        (dict(compress="zip"), ValueError, "unknown compress mode"),
        (dict(target="android", compress="lut"), ValueError, "for TFLite Micro"),
        (dict(quantization="float16"), ValueError, "cortex-m needs int8"),
        (dict(representative_data=None), ValueError, "needs representative data"),
        (dict(target="android-lce"), ValueError, "no larq quantized layers"),
    ],
)
def test_bad_arguments_get_one_line(trained_mnist, kwargs, error, message):
    model, calibration, _ = trained_mnist
    arguments = dict(representative_data=calibration[:10], verify=False, progress=False) | kwargs
    with pytest.raises(error, match=message) as raised:
        tfprune.export(model, **arguments)
    assert "\n" not in str(raised.value)


def test_operator_tflite_micro_lacks_is_named():
    inputs = tf.keras.Input((8, 8, 4))
    activated = tf.keras.layers.Activation("gelu")(tf.keras.layers.Conv2D(4, 3)(inputs))
    pooled = tf.keras.layers.GlobalAveragePooling2D()(activated)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(pooled))
    x = np.random.default_rng(0).random((16, 8, 8, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="GELU") as raised:
        tfprune.export(model, x, progress=False)
    assert "\n" not in str(raised.value)


def test_inspect_mlperf_reference(mlperf_quant):
    report = tfprune.inspect_flatbuffer(mlperf_quant)
    assert report["flatbuffer_bytes"] == 98_496
    assert report["tflm"]["arena_bytes"] == 55_984
    assert report["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert "98,496 B" in str(report)


def test_masked_model_deploys_with_its_pruned_channels_removed(trained_mnist):
    from tfprune.core import masks

    model, calibration, held_out = trained_mnist
    wrapped = tfprune.wrap(model)
    keep = np.ones(32, bool)
    keep[::2] = False
    wrapped.get_layer("conv1").set_channel_mask(keep)
    dense = tfprune.export(model, calibration, verify=False, progress=False).report
    pruned = tfprune.export(wrapped, calibration, verify_data=held_out, progress=False).report
    assert [layer["output_channels"] for layer in pruned["layers"]] == [16, 16, 10]
    assert pruned["flatbuffer_bytes"] < dense["flatbuffer_bytes"] and pruned["macs"] < dense["macs"]
    assert pruned["verification"]["top1_agreement"] == 1.0
    stripped = masks.strip(wrapped)
    x = held_out[0][:20]
    np.testing.assert_allclose(tfprune.remove_masked_channels(wrapped)(x), stripped(x), atol=1e-4)


def test_vanishing_activations_are_refused_before_tflite_micro_aborts():
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4, name="tiny"),
                                 tf.keras.layers.Dense(2)])
    model.get_layer("tiny").set_weights([np.full((8, 4), 1e-12, np.float32), np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="its values vanish") as raised:
        tfprune.export(model, np.random.default_rng(0).random((8, 8)).astype(np.float32), progress=False)
    assert "\n" not in str(raised.value)
