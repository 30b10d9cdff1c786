"""Baselines: tfmot magnitude pruning's zeros pay only PRUNE-encoded, tfmot clustering's values LUT-encoded."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tfprune
from tfprune import baselines
from tfprune.core import count
from tfprune.prune import channels


@pytest.fixture(scope="module")
def finetune_data(shared_data):
    """1,000 MNIST training images the trained_mnist fixture did not see, raw 0..255 floats."""
    from tfprune.datasets import load_mnist

    (x, y), _ = load_mnist(shared_data / "mnist.npz")
    return x[6000:7000].astype(np.float32), y[6000:7000]


@pytest.fixture(scope="module")
def dense_export(trained_mnist):
    model, calibration, held_out = trained_mnist
    return tfprune.export(model, calibration, target="cortex-m", verify_data=held_out, progress=False)


def _tiny_cnn(seed: int = 0):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([
        tf.keras.Input((8, 8, 2)),
        tf.keras.layers.Conv2D(6, 3, use_bias=False, name="conv"),
        tf.keras.layers.BatchNormalization(name="bn"),
        tf.keras.layers.DepthwiseConv2D(3, name="depthwise"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(3, name="fc"),
    ])


def _tiny_data(count: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 8, 8, 2), dtype=np.float32), rng.integers(0, 3, count)


def test_magnitude_reaches_target_sparsity_and_its_zeros_pay_only_prune_encoded(trained_mnist, finetune_data,
                                                                                 dense_export):
    model, calibration, held_out = trained_mnist
    before = [w.copy() for w in model.get_weights()]

    pruned = baselines.tfmot_magnitude(model, finetune_data, target_sparsity=0.75, epochs=1, seed=0)

    assert [type(layer) for layer in pruned.layers] == [type(layer) for layer in model.layers]
    sparsity = count.kernel_sparsity(pruned)
    assert set(sparsity) == {"conv0", "conv1", "logits"}
    assert all(abs(s - 0.75) <= 0.01 for s in sparsity.values()), sparsity
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the input model changed"

    plain = tfprune.export(pruned, calibration, target="cortex-m", verify_data=held_out, compress="off",
                           progress=False)
    dense_bytes = dense_export.report["flatbuffer_bytes"]
    # stored plain, unstructured zeros take a byte like any other int8 value on TFLite Micro
    assert abs(plain.report["flatbuffer_bytes"] - dense_bytes) <= 0.01 * dense_bytes
    artifact = tfprune.export(pruned, calibration, target="cortex-m", verify_data=held_out, progress=False)
    # DECODE PRUNE (compress="auto") stores a bit per weight and only the nonzero values
    assert "prune" in artifact.report["compression"]["encodings"]
    assert artifact.report["flatbuffer_bytes"] < 0.7 * dense_bytes
    assert artifact.report["verification"]["top1_agreement"] == 1.0
    assert artifact.report["verification"]["accuracy"] >= 0.7  # 0.83 here; 0.90 dense, 0.1 chance


def test_cluster_bounds_values_per_channel_and_lut_shrinks_flash(trained_mnist, finetune_data, dense_export):
    model, calibration, held_out = trained_mnist
    assert count.values_per_channel(model)["conv1"] > 16

    clustered = baselines.tfmot_cluster(model, finetune_data, clusters=16, per_channel=True, epochs=1, seed=0)

    # conv1 has no bias: tfmot's own cluster_weights would skip it
    counts = count.values_per_channel(clustered)
    assert counts["conv1"] <= 16 and counts["logits"] <= 16, counts
    assert counts["conv0"] <= 9, "conv0 has 9 weights per channel: left as it is"
    conv1 = clustered.get_layer("conv1").kernel.numpy()
    assert len(np.unique(conv1)) > 16, "conv1 was clustered per tensor, not per channel"

    artifact = tfprune.export(clustered, calibration, target="cortex-m", verify_data=held_out, progress=False)
    report = artifact.report
    assert report["compression"]["applied"] is True
    assert "DECODE" in report["operators"]
    compressed = {t["name"].split("/")[1]: t for t in report["compression"]["tensors"]}
    assert {"conv1", "logits"} <= set(compressed), compressed
    assert all(t["values_per_channel"] <= 16 and t["bits"] <= 4 for t in compressed.values())
    assert report["flatbuffer_bytes"] < dense_export.report["flatbuffer_bytes"]
    assert report["verification"]["accuracy"] >= 0.8


def test_cluster_per_tensor_leaves_depthwise_alone():
    model = _tiny_cnn()
    depthwise_before = model.get_layer("depthwise").depthwise_kernel.numpy()

    clustered = baselines.tfmot_cluster(model, _tiny_data(), clusters=4, per_channel=False, epochs=1)

    assert len(np.unique(clustered.get_layer("conv").kernel.numpy())) <= 4
    assert len(np.unique(clustered.get_layer("fc").kernel.numpy())) <= 4
    # tfmot does not cluster DepthwiseConv2D; fine-tuning still moved it
    depthwise_after = clustered.get_layer("depthwise").depthwise_kernel.numpy()
    assert len(np.unique(depthwise_after)) == depthwise_after.size
    assert not np.array_equal(depthwise_before, depthwise_after)


def test_magnitude_accepts_tf_data_and_leaves_depthwise_dense():
    import tensorflow as tf

    x, y = _tiny_data(64)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    pruned = baselines.tfmot_magnitude(_tiny_cnn(), data, target_sparsity=0.5, epochs=2)
    # tfmot 0.8.1's registry gives DepthwiseConv2D no prunable weight
    assert count.kernel_sparsity(pruned) == {"conv": 0.5, "depthwise": 0.0, "fc": 0.5}


def test_baselines_keep_one_keras():
    """tfmot sets TF_USE_LEGACY_KERAS=1 on import; the baselines must not switch Keras under the user."""
    import tensorflow as tf

    saved = os.environ.get("TF_USE_LEGACY_KERAS")
    pruned = baselines.tfmot_magnitude(_tiny_cnn(), _tiny_data(), target_sparsity=0.5)
    clustered = baselines.tfmot_cluster(_tiny_cnn(), _tiny_data(), clusters=4)
    assert os.environ.get("TF_USE_LEGACY_KERAS") == saved
    for model in (pruned, clustered):
        initializer = type(model.get_layer("conv").kernel_initializer)
        # TensorFlow 2.15's own keras, or tf-keras on 2.21: the Keras that tf.keras is
        keras_package = tf.keras.Model.__module__.split(".")[0]
        assert initializer.__module__.split(".")[0] == keras_package, initializer.__module__


def test_seed_makes_baselines_repeatable():
    first = baselines.tfmot_cluster(_tiny_cnn(), _tiny_data(), clusters=4, seed=3)
    second = baselines.tfmot_cluster(_tiny_cnn(), _tiny_data(), clusters=4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))


def test_nonzero_helpers_match_tfmot_rows():
    model = _tiny_cnn()
    total = sum(k.size for k in count.prunable_kernels(model).values())
    assert count.nonzero_count(model) == total == 2 * 3 * 3 * 6 + 3 * 3 * 6 + 6 * 3
    target = 3 * 3 * 6 + 30  # every depthwise weight, which tfmot keeps, and 30 of the others
    sparsity = baselines.sparsity_for_nonzeros(model, target)
    pruned = baselines.tfmot_magnitude(model, _tiny_data(), target_sparsity=sparsity)
    assert abs(count.nonzero_count(pruned) - target) <= 1


@pytest.mark.parametrize("call, error, match", [
    (lambda m, d: baselines.tfmot_magnitude(m, d, target_sparsity=1.0), ValueError, "target_sparsity"),
    (lambda m, d: baselines.tfmot_magnitude(m, d, 0.5, end_step=3), ValueError, "past the last training step"),
    (lambda m, d: baselines.tfmot_magnitude(m, d, 0.5, end_step=2, frequency=3), ValueError, "multiple of frequency"),
    (lambda m, d: baselines.tfmot_magnitude(m, d[0], 0.5), TypeError, "data must be"),
    (lambda m, d: baselines.tfmot_magnitude(m, (d[0], d[1][:5]), 0.5), ValueError, "as many labels"),
    (lambda m, d: baselines.tfmot_magnitude("model", d, 0.5), TypeError, "tf.keras"),
    (lambda m, d: baselines.tfmot_cluster(m, d, clusters=1), ValueError, "clusters"),
    (lambda m, d: baselines.tfmot_cluster(m, d, init="random"), ValueError, "init"),
    (lambda m, d: baselines.tfmot_cluster(m, d, epochs=0), ValueError, "epochs"),
    (lambda m, d: baselines.sparsity_for_nonzeros(m, 0), ValueError, "target_nonzeros"),
])
def test_bad_arguments_say_what_to_fix(call, error, match):
    with pytest.raises(error, match=match):
        call(_tiny_cnn(), _tiny_data(64))


def _planted_chain():
    """conv "a" whose filters have L1 norms 4, 1, 3, 2 (per weight 4/18 ...), then conv "b" reading them."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 2)),
        tf.keras.layers.Conv2D(4, 3, name="a"),
        tf.keras.layers.BatchNormalization(name="bn"),
        tf.keras.layers.ReLU(),
        tf.keras.layers.Conv2D(6, 3, name="b"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(3, name="fc"),
    ])
    signs = np.sign(np.random.default_rng(0).normal(size=(3, 3, 2, 4)))
    kernel = signs * np.array([4.0, 1.0, 3.0, 2.0]) / 18
    model.get_layer("a").set_weights([kernel.astype(np.float32), np.zeros(4, np.float32)])
    return model


def _planted_add():
    """Convs "a" and "b" tied by an Add: L1 norms a = 1, 10, 5, 2 and b = 10, 0, 1, 1 (sums 11, 10, 6, 3)."""
    import tensorflow as tf

    inputs = tf.keras.Input((4, 4, 1))
    a = tf.keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = tf.keras.layers.Conv2D(4, 1, name="b")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Add(name="add")([a, b]))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="fc")(x))
    model.get_layer("a").set_weights([np.array([[[[1.0, 10, 5, 2]]]], np.float32), np.zeros(4, np.float32)])
    model.get_layer("b").set_weights([np.array([[[[10.0, 0, -1, 1]]]], np.float32), np.zeros(4, np.float32)])
    return model


def test_l1_removes_the_lowest_l1_filters_and_what_reads_them():
    model = _planted_chain()
    a, b = model.get_layer("a").get_weights()[0], model.get_layer("b").get_weights()[0]

    small = channels.l1_filter_pruning(model, {"a": 0.5})

    np.testing.assert_array_equal(small.get_layer("a").get_weights()[0], a[..., [0, 2]])
    np.testing.assert_array_equal(small.get_layer("b").get_weights()[0], b[:, :, [0, 2], :])
    assert small.get_layer("b").filters == 6, "only the named layer loses filters"
    x = np.random.default_rng(1).random((4, 6, 6, 2), dtype=np.float32)
    assert small(x).shape == model(x).shape
    assert model.get_layer("a").filters == 4, "the input model changed"


def test_l1_ranks_tied_channels_by_the_sum_over_producers():
    small = channels.l1_filter_pruning(_planted_add(), 0.5)
    # a alone would drop channels 0 and 3; the sums drop 2 and 3
    assert small.get_layer("a").get_weights()[0].ravel().tolist() == [1.0, 10.0]
    assert small.get_layer("b").get_weights()[0].ravel().tolist() == [10.0, 0.0]


def test_channel_pruning_shrinks_the_flatbuffer(trained_mnist, dense_export):
    model, calibration, held_out = trained_mnist
    small = channels.l1_filter_pruning(model, 0.5)

    assert [small.get_layer(n).filters for n in ("conv0", "conv1")] == [8, 16]
    report = tfprune.export(small, calibration, target="cortex-m", verify_data=held_out, progress=False).report
    dense = dense_export.report
    assert report["flatbuffer_bytes"] < 0.6 * dense["flatbuffer_bytes"], (report["flatbuffer_bytes"], dense["flatbuffer_bytes"])
    assert report["macs"] < 0.5 * dense["macs"]
    assert report["verification"]["top1_agreement"] == 1.0


def test_random_pruning_is_seeded_and_matches_l1_counts(trained_mnist):
    model = trained_mnist[0]
    first = channels.random_channel_pruning(model, 0.5, seed=7)
    again = channels.random_channel_pruning(model, 0.5, seed=7)
    other = channels.random_channel_pruning(model, 0.5, seed=8)
    l1 = channels.l1_filter_pruning(model, 0.5)

    assert all(np.array_equal(x, y) for x, y in zip(first.get_weights(), again.get_weights()))
    assert not all(np.array_equal(x, y) for x, y in zip(first.get_weights(), other.get_weights()))
    assert first.count_params() == l1.count_params()
    assert count.nonzero_count(first) == count.nonzero_count(l1)


def test_ratio_for_nonzeros_meets_a_tfmot_row(trained_mnist):
    model = trained_mnist[0]
    total = count.nonzero_count(model)
    target = int(total * 0.25)  # what tfmot_magnitude at 0.75 leaves on this model (every kernel is Conv2D/Dense)

    ratio = channels.ratio_for_nonzeros(model, target)

    got = count.nonzero_count(channels.l1_filter_pruning(model, ratio))
    assert abs(got - target) <= 0.03 * total, (ratio, got, target)
    assert channels.ratio_for_nonzeros(model, total) == 0.0


@pytest.mark.parametrize("ratio, match", [
    (1.0, r"ratio must be a number in \[0, 1\)"),
    ({"nope": 0.5}, "does not have"),
    ({"a": 0.5, "b": 0.25}, "need one ratio"),
    ({"a": -0.1}, "ratio of layer 'a'"),
])
def test_channel_pruning_bad_ratios(ratio, match):
    with pytest.raises(ValueError, match=match):
        channels.l1_filter_pruning(_planted_add(), ratio)


def test_old_names_and_keywords_still_work_for_one_release_with_a_deprecation_warning():
    import tensorflow as tf

    from tfprune import datasets
    from tfprune.core import masks

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, name="hidden"),
                                 tf.keras.layers.Dense(2, name="out")])
    with pytest.warns(DeprecationWarning, match="use sparsity="):
        assert channels.l1_filter_pruning(model, ratio=0.5).get_layer("hidden").units == 4
    with pytest.warns(DeprecationWarning, match="moved to tfprune.prune.channels"):
        assert baselines.l1_filter_pruning is channels.l1_filter_pruning
    with pytest.warns(DeprecationWarning, match="moved to tfprune.core.count"):
        assert baselines.nonzero_count is count.nonzero_count
    with pytest.warns(DeprecationWarning, match="tfprune.drift"):
        assert callable(datasets.cifar10_drift_stream)
    with pytest.warns(DeprecationWarning, match="is_prunable"):
        assert masks.is_maskable(model.get_layer("hidden"))
    with pytest.raises(TypeError, match="give sparsity= only"):
        channels.l1_filter_pruning(model, 0.5, ratio=0.5)
