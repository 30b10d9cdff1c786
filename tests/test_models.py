"""Reference models: MLPerf Tiny's exact shapes and weights, seeded builds, int8 and LCE exports."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune import models
from tfprune.datasets import cifar10_split, mlperf_perf_indices
from tfprune.deploy.flatbuffer import read_model
from tfprune.deploy.tflite import convert_lce

def _small_vgg_parameters() -> int:
    widths = [3, 32, 32, 64, 64, 128, 128]
    kernels = sum(9 * c_in * c_out for c_in, c_out in zip(widths, widths[1:]))  # no conv biases
    batch_norm = 4 * sum(widths[1:])  # gamma, beta, moving mean and variance
    return kernels + batch_norm + 128 * 10 + 10  # global average pool -> dense


def _fit_batchnorm_statistics(model: tf.keras.Model, x: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to those of ``x``, as training would.

    Freshly built, BN divides by a variance of 1; MobileNet's He-initialised depthwise
    kernels then shrink the signal to ~1e-11 by the classifier, a degenerate int8 scale.
    """
    norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99


@pytest.fixture(scope="module")
def mlperf_reference(shared_data):
    return tf.keras.models.load_model(shared_data / "mlperf_tiny" / "pretrainedResnet.h5", compile=False)


@pytest.fixture(scope="module")
def mlperf_resnet8(shared_data):
    return models.resnet8(weights="mlperf")


def test_parameter_counts_are_mlperf_tiny_s():
    assert models.resnet8().count_params() == 78_666
    assert models.ds_cnn().count_params() == 24_908
    assert models.mobilenet_v1().count_params() == 221_794
    assert models.small_vgg().count_params() == _small_vgg_parameters() == 289_642
    # the binary convs drop their biases: 16+16+32+32+64+64 of them
    assert models.binary_resnet8().count_params() == 78_666 - 224
    assert models.binary_small_vgg().count_params() == _small_vgg_parameters()


def test_resnet8_has_the_layer_shapes_of_mlperf_s_saved_model(mlperf_reference):
    ours = [tuple(w.shape) for layer in models.resnet8().layers for w in layer.weights]
    theirs = [tuple(w.shape) for layer in mlperf_reference.layers for w in layer.weights]
    assert ours == theirs
    assert models.resnet8().output_shape == mlperf_reference.output_shape == (None, 10)


def test_resnet8_with_mlperf_weights_gives_mlperf_s_outputs(mlperf_reference, mlperf_resnet8):
    x_test, y_test = cifar10_split("test")
    x = x_test[:16].astype(np.float32)  # raw pixels 0..255, as MLPerf feeds them
    np.testing.assert_allclose(mlperf_resnet8(x).numpy(), mlperf_reference(x).numpy(), atol=1e-5, rtol=0)
    indices = mlperf_perf_indices()
    predictions = mlperf_resnet8.predict(x_test[indices].astype(np.float32), verbose=0)
    top1 = float(np.mean(np.argmax(predictions, -1) == y_test[indices]))
    print(f"\nresnet8(weights='mlperf'): top-1 {top1:.1%} on MLPerf's 200 performance samples")
    assert 0.82 <= top1 <= 0.93, "the float model scores 87.19% on the whole test set"


def test_weights_from_a_path(mlperf_resnet8, tmp_path, shared_data):
    weights = tmp_path / "resnet8.weights.h5"
    mlperf_resnet8.save_weights(str(weights))
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    reloaded = models.resnet8(weights=weights)
    np.testing.assert_array_equal(reloaded(x).numpy(), mlperf_resnet8(x).numpy())
    whole_model = models.resnet8(weights=shared_data / "mlperf_tiny" / "pretrainedResnet.h5")
    np.testing.assert_array_equal(whole_model(x).numpy(), mlperf_resnet8(x).numpy())
    other = tmp_path / "ds_cnn.keras"
    models.ds_cnn().save(other)
    with pytest.raises(ValueError, match="MLPerf's layout"):
        models.resnet8(weights=other)
    with pytest.raises(ValueError, match="no such weights file"):
        models.resnet8(weights=tmp_path / "missing.h5")


@pytest.mark.parametrize("builder", [models.resnet8, models.mobilenet_v1, models.binary_small_vgg])
def test_builds_are_deterministic_under_a_seed(builder):
    first, again, other = builder(seed=3), builder(seed=3), builder(seed=4)
    assert isinstance(first, tf.keras.Model) and type(first).__name__ == "Functional"
    assert [layer.name for layer in first.layers] == [layer.name for layer in again.layers]
    assert len({layer.name for layer in first.layers}) == len(first.layers)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernels = [(a, b) for a, b in zip(first.get_weights(), other.get_weights()) if a.ndim == 4]
    assert all(not np.array_equal(a, b) for a, b in kernels)
    # each layer draws its own seed: two kernels of one shape do not start equal
    own = [w for w in first.get_weights() if w.ndim == 4]
    twins = [(a, b) for i, a in enumerate(own) for b in own[i + 1:] if a.shape == b.shape]
    assert all(not np.array_equal(a, b) for a, b in twins)


@pytest.mark.parametrize("builder", [models.resnet8, models.ds_cnn, models.mobilenet_v1, models.small_vgg])
def test_exports_for_cortex_m(builder, shared_data):
    model = builder()
    x = np.random.default_rng(0).uniform(0, 255, (8, *model.input_shape[1:])).astype(np.float32)
    _fit_batchnorm_statistics(model, x)
    report = tfprune.export(model, x, progress=False).report
    print(f"\n{model.name}: {model.count_params():,} parameters, {report['macs']:,} MACs, "
          f"int8 flatbuffer {report['flatbuffer_bytes']:,} B, TFLM arena {report['tflm']['arena_bytes']:,} B")
    assert report["verification"]["top1_agreement"] >= 0.875
    # int8 weights, int32 biases, per-channel scales and the graph itself
    assert model.count_params() < report["flatbuffer_bytes"] < 1.5 * model.count_params() + 16_384
    if model.name == "resnet8":
        reference = tfprune.inspect_flatbuffer(
            shared_data / "mlperf_tiny" / "pretrainedResnet_quant.tflite")
        assert report["macs"] == reference["macs"] == 12_501_632
    if model.name == "ds_cnn":
        # 10x4 conv on 25x5x64 outputs, four (depthwise 3x3 + pointwise 64x64) blocks, dense 64x12
        assert report["macs"] == 25 * 5 * 64 * 40 + 4 * 25 * 5 * 64 * (9 + 64) + 64 * 12


@pytest.mark.parametrize("builder, binary_convs", [(models.binary_resnet8, 6), (models.binary_small_vgg, 5)])
def test_binary_variants_convert_to_lce_binary_convolutions(builder, binary_convs):
    import larq as lq

    model = builder()
    quantized = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(quantized) == binary_convs
    for layer in quantized:
        assert layer.input_quantizer.__class__.__name__ == "SteSign"
        assert layer.kernel_quantizer.__class__.__name__ == "SteSign"
        following = layer.outbound_nodes[0].outbound_layer
        assert isinstance(following, tf.keras.layers.BatchNormalization)
    first_conv = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D))
    assert not isinstance(first_conv, lq.layers.QuantConv2D)
    assert type(model.layers[-1]) is tf.keras.layers.Dense

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    _fit_batchnorm_statistics(model, x)
    report = tfprune.export(model, target="android-lce", verify_data=x, progress=False).report
    print(f"\n{model.name}: LCE flatbuffer {report['flatbuffer_bytes']:,} B, {report['macs']:,} MACs")
    assert "LceBconv2d" in report["operators"]
    operators = read_model(convert_lce(model)).operators
    assert sum(operator.name == "LceBconv2d" for operator in operators) == binary_convs
    assert report["verification"]["top1_agreement"] >= 0.875


@pytest.mark.parametrize("call, message", [
    (lambda: models.resnet8(classes=1), "classes"),
    (lambda: models.ds_cnn(input_shape=(49, 10)), "input_shape"),
    (lambda: models.small_vgg(seed=-1), "seed"),
    (lambda: models.mobilenet_v1(alpha=0.01), "alpha"),
    (lambda: models.resnet8(weights="mlperf", classes=5), "weights='mlperf'"),
    (lambda: models.resnet8(weight_decay=-1.0), "weight_decay"),
])
def test_bad_arguments_say_what_to_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()
