"""Masks: moved by callbacks during fit, exact zeros under every optimizer, channels and BN, larq, saving."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfprune.core.masks import ChannelGate, MaskedLayer, channel_masks, sparsity_summary, sparsity_table, strip, wrap

layers = tf.keras.layers


def conv_bn_model(seed: int = 0) -> tf.keras.Model:
    """conv -> BN -> ReLU -> depthwise (x2) -> BN -> ReLU -> pool -> dense, BN with random statistics."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((6, 6, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="bn_dw")(x)
    features = layers.ReLU(name="relu_dw")(x)
    logits = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D(name="pool")(features))
    model = tf.keras.Model(inputs, [features, logits], name="conv_bn")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            # gamma, beta > 0 and mean < 0: BN maps 0 to beta - gamma*mean/sqrt(var+eps) > 0, so ReLU passes it
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.uniform(0.2, 1.0, n),
                               rng.uniform(-1.0, -0.2, n), rng.uniform(0.5, 2.0, n)])
        elif layer.name in ("conv", "dw"):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.5, bias.shape)])
    return model


def images(n: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6, 6, 3)).astype(np.float32)


OPTIMIZERS = {
    "adam": lambda: tf.keras.optimizers.Adam(0.05),
    "sgd_momentum": lambda: tf.keras.optimizers.SGD(0.05, momentum=0.9),
    "adamw": lambda: tf.keras.optimizers.AdamW(0.05, weight_decay=0.1),
    "adam_weight_decay": lambda: tf.keras.optimizers.Adam(0.05, weight_decay=0.1),
    "legacy_sgd_momentum": lambda: tf.keras.optimizers.legacy.SGD(0.05, momentum=0.9),
}


class _LastPredictions(tf.keras.metrics.Metric):
    """Holds the predictions of the latest training step (computed inside the graph-mode step)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(name="last")
        self.value = self.add_weight(name="value", shape=shape, initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.value.assign(y_pred)

    def result(self):
        return tf.reduce_sum(self.value)


class _MaskMidFit(tf.keras.callbacks.Callback):
    """Sets a weight mask at the end of batch 3; records the kernel and the step's predictions."""

    def __init__(self, layer: MaskedLayer, mask: np.ndarray, metric: _LastPredictions) -> None:
        super().__init__()
        self.layer, self.mask, self.metric = layer, mask, metric
        self.kernel_before: dict[int, np.ndarray] = {}
        self.predictions: dict[int, np.ndarray] = {}
        self.pruned_nonzeros: dict[int, int] = {}

    def on_train_batch_begin(self, batch, logs=None):
        self.kernel_before[batch] = self.layer.layer.kernel.numpy()

    def on_train_batch_end(self, batch, logs=None):
        self.predictions[batch] = self.metric.value.numpy()
        self.pruned_nonzeros[batch] = int(np.count_nonzero(self.layer.layer.kernel.numpy()[~self.mask]))
        if batch == 3:
            self.layer.set_mask(self.mask)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_mask_set_by_callback_mid_fit_is_used_next_step_and_pruned_weights_stay_zero(optimizer):
    tf.keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    model = wrap(tf.keras.Sequential([tf.keras.Input((5,)), layers.Dense(3, use_bias=False, name="fc")]))
    layer = model.get_layer("fc")
    mask = np.random.default_rng(2).random((5, 3)) < 0.5
    metric = _LastPredictions((8, 3))
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss="mse", metrics=[metric])
    callback = _MaskMidFit(layer, mask, metric)
    # the same 8 samples every step, so each step's predictions are x @ (its kernel)
    model.fit(np.tile(x, (10, 1)), np.tile(y, (10, 1)), batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[callback])

    assert not model.run_eagerly
    before = callback.kernel_before
    np.testing.assert_allclose(callback.predictions[3], x @ before[3], rtol=1e-5, atol=1e-6)
    # batch 4 is the first step after the callback set the mask
    np.testing.assert_allclose(callback.predictions[4], x @ (before[4] * mask), rtol=1e-5, atol=1e-6)
    assert np.abs(x @ before[4] - x @ (before[4] * mask)).max() > 0.1
    assert callback.pruned_nonzeros[3] == mask.size - mask.sum()  # set at the end of batch 3, not yet applied
    assert [callback.pruned_nonzeros[b] for b in range(4, 10)] == [0] * 6
    assert np.abs(before[9] - before[4])[mask].min() > 0  # the kept weights still train


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_weight_and_channel_masks_keep_stored_weights_exactly_zero(optimizer):
    model = wrap(conv_bn_model())
    conv, dw = model.get_layer("conv"), model.get_layer("dw")
    weight_mask = np.random.default_rng(3).random(conv.kernel_shape) < 0.6
    conv.set_mask(weight_mask)
    conv.set_channel_mask([True, False, True, True])
    dw.set_channel_mask([True, True, False, True, True, True, True, False])
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss=[None, "mse"])
    x = images(32)
    model.fit(x, np.ones((32, 3), np.float32), batch_size=8, epochs=2, verbose=0)

    kernel, bias = conv.layer.get_weights()
    assert np.count_nonzero(kernel[~conv.get_mask()]) == 0
    assert np.count_nonzero(kernel[..., 1]) == 0 and bias[1] == 0
    assert np.count_nonzero(kernel[conv.get_mask()]) == conv.get_mask().sum()
    dw_kernel, dw_bias = dw.layer.get_weights()  # (3, 3, 4, 2): channel 2 is [1, 0], 7 is [3, 1]
    assert np.count_nonzero(dw_kernel[:, :, 1, 0]) == 0 and np.count_nonzero(dw_kernel[:, :, 3, 1]) == 0
    assert np.count_nonzero(dw_bias[[2, 7]]) == 0 and np.count_nonzero(dw_kernel) == 9 * 6
    features, _ = model(x, training=False)
    assert np.count_nonzero(features.numpy()[..., [2, 7]]) == 0


def test_two_sources_multiply():
    model = wrap(conv_bn_model(), layers=["conv"], sources=("qsae", "reservoir"))
    conv = model.get_layer("conv")
    rng = np.random.default_rng(4)
    a, b = rng.random(conv.kernel_shape) < 0.7, rng.random(conv.kernel_shape) < 0.7
    conv.set_mask(a, source="qsae")
    conv.set_mask(b.astype(np.float32), source="reservoir")
    conv.set_channel_mask([True, True, False, True], source="reservoir")

    assert conv.sources == ("qsae", "reservoir")
    np.testing.assert_array_equal(conv.get_mask("qsae"), a)
    np.testing.assert_array_equal(conv.get_mask("reservoir"), b)
    effective = a & b
    effective[..., 2] = False
    np.testing.assert_array_equal(conv.get_mask(), effective)
    np.testing.assert_array_equal(conv.get_channel_mask("qsae"), [True] * 4)
    np.testing.assert_array_equal(conv.get_channel_mask(), [True, True, False, True])
    assert conv.sparsity() == pytest.approx(1 - effective.mean())

    kernel, bias = conv.layer.get_weights()
    plain = layers.Conv2D(4, 3, padding="same")
    plain.build((None, 6, 6, 3))
    plain.set_weights([kernel * effective, bias * [1, 1, 0, 1]])
    x = images()
    np.testing.assert_allclose(conv(x).numpy(), plain(x).numpy(), atol=1e-6)


def test_wrapping_an_already_built_layer_also_keeps_pruned_weights_zero():
    dense = layers.Dense(3, name="fc")
    dense.build((None, 4))
    inputs = tf.keras.Input((4,))
    layer = MaskedLayer(dense)
    model = tf.keras.Model(inputs, layer(inputs))
    layer.set_channel_mask([True, False, True])
    model.compile(tf.keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((8, 4), np.float32), np.ones((8, 3), np.float32), batch_size=4, epochs=2, verbose=0)
    assert np.count_nonzero(dense.kernel.numpy()[:, 1]) == 0 and dense.bias.numpy()[1] == 0
    assert np.count_nonzero(dense.kernel.numpy()[:, [0, 2]]) == 8


def test_masks_can_be_set_inside_a_tf_function():
    model = wrap(conv_bn_model(), layers=["fc"])
    fc = model.get_layer("fc")

    @tf.function
    def prune(weights, channels):
        fc.set_mask(weights)
        fc.set_channel_mask(channels)

    weights = np.random.default_rng(7).random((8, 3)) < 0.5
    prune(tf.constant(weights, tf.float32), tf.constant([1.0, 0.0, 1.0]))
    expected = weights.copy()
    expected[:, 1] = False
    np.testing.assert_array_equal(fc.get_mask(), expected)
    with pytest.raises(ValueError, match=r"channel mask for layer 'fc' has shape \(2,\); expected \(3,\)"):
        prune(tf.constant(weights, tf.float32), tf.constant([1.0, 0.0]))


def test_pruned_channel_is_zero_after_batchnorm_and_strip_folds_it():
    model = conv_bn_model()
    masked = wrap(model)
    assert isinstance(masked.get_layer("bn"), ChannelGate) and isinstance(masked.get_layer("bn_dw"), ChannelGate)
    x = images()
    reference, logits = model(x, training=False)
    features_before, _ = masked(x, training=False)
    np.testing.assert_allclose(features_before.numpy(), reference.numpy(), atol=1e-6)

    masked.get_layer("conv").set_channel_mask([True, False, True, True])
    masked.get_layer("dw").set_mask(np.random.default_rng(5).random((3, 3, 4, 2)) < 0.5)
    channel_mask = np.array([True, True, True, False, True, True, True, True])
    masked.get_layer("dw").set_channel_mask(channel_mask)
    # without the gate this channel would be relu(BN(0)), which the random statistics make non-zero
    bn_at_zero = masked.get_layer("bn_dw").layer(np.zeros((1, 1, 1, 8), np.float32), training=False).numpy()[0, 0, 0]
    assert bn_at_zero[3] > 0
    features, logits = masked(x, training=False)
    assert np.count_nonzero(features.numpy()[..., 3]) == 0
    assert np.count_nonzero(features.numpy()[..., channel_mask]) > 0
    relu_out = tf.keras.Model(masked.inputs, masked.get_layer("relu").output)(x).numpy()
    assert np.count_nonzero(relu_out[..., 1]) == 0 and np.count_nonzero(relu_out[..., [0, 2, 3]]) > 0

    table = {row["name"]: row for row in sparsity_table(masked)}
    assert (table["conv"]["channels_kept"], table["conv"]["channels_total"]) == (3, 4)
    assert table["dw"]["zeros"] == 72 - np.count_nonzero(masked.get_layer("dw").get_mask())
    assert "dw" in sparsity_summary(masked)
    assert set(channel_masks(masked)) == {"conv", "dw"}
    np.testing.assert_array_equal(channel_masks(masked)["dw"], channel_mask)

    plain = strip(masked)
    assert not any(isinstance(layer, (MaskedLayer, ChannelGate)) for layer in plain.layers)
    assert [type(layer) for layer in plain.layers] == [type(layer) for layer in model.layers]
    plain_features, plain_logits = plain(x, training=False)
    np.testing.assert_allclose(plain_features.numpy(), features.numpy(), atol=1e-6)
    np.testing.assert_allclose(plain_logits.numpy(), logits.numpy(), atol=1e-6)
    assert np.count_nonzero(plain_features.numpy()[..., 3]) == 0
    assert plain.get_layer("bn").gamma.numpy()[1] == 0 and plain.get_layer("conv").bias.numpy()[1] == 0


def test_larq_pruned_binary_weight_contributes_zero():
    lq = pytest.importorskip("larq")
    inputs = tf.keras.Input((3, 3, 1))
    outputs = lq.layers.QuantConv2D(2, 2, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                                    use_bias=False, name="bconv")(inputs)
    model = wrap(tf.keras.Model(inputs, outputs))
    layer = model.get_layer("bconv")
    latent = np.array([0.3, -0.2, 0.5, -0.7, 0.1, 0.4, -0.6, 0.8], np.float32).reshape(2, 2, 1, 2)
    layer.layer.set_weights([latent])
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 1], bool).reshape(2, 2, 1, 2)
    layer.set_mask(mask)
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)

    binary = np.where(latent >= 0, 1.0, -1.0) * mask  # a pruned weight is 0, not sign(0) = +1
    expected = np.zeros((1, 2, 2, 2), np.float32)
    for i in range(2):
        for j in range(2):
            expected[0, i, j] = np.einsum("hwc,hwco->o", x[0, i:i + 2, j:j + 2], binary)
    np.testing.assert_array_equal(model(x).numpy(), expected)
    masked_latent_then_sign = np.where(latent * mask >= 0, 1.0, -1.0)  # masking before the quantizer
    assert not np.array_equal(masked_latent_then_sign, binary)
    assert layer.sparsity() == pytest.approx(2 / 8)

    plain = strip(model)
    assert plain.get_layer("bconv").kernel_quantizer is None
    np.testing.assert_array_equal(plain.get_layer("bconv").get_weights()[0], binary)
    np.testing.assert_array_equal(plain(x).numpy(), expected)


def test_larq_channel_pruning_and_training_keep_latent_zero():
    lq = pytest.importorskip("larq")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 3)),
        lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False,
                              name="bconv"),
        layers.BatchNormalization(name="bn"),
        layers.GlobalAveragePooling2D(),
        lq.layers.QuantDense(2, kernel_quantizer="ste_sign", input_quantizer="ste_sign",
                             kernel_constraint="weight_clip", name="bdense"),
    ])
    masked = wrap(model)
    masked.get_layer("bconv").set_channel_mask([True, True, False, True])
    masked.get_layer("bdense").set_mask(np.array([[1, 0], [1, 1], [0, 1], [1, 1]], bool))
    masked.compile(tf.keras.optimizers.Adam(0.05), loss="mse")
    masked.fit(images(16), np.ones((16, 2), np.float32), batch_size=8, epochs=2, verbose=0)

    assert np.count_nonzero(masked.get_layer("bconv").layer.get_weights()[0][..., 2]) == 0
    bn_out = tf.keras.Model(masked.inputs, masked.get_layer("bn").output)(images(), training=False).numpy()
    assert np.count_nonzero(bn_out[..., 2]) == 0
    np.testing.assert_allclose(strip(masked)(images()).numpy(), masked(images()).numpy(), atol=1e-6)


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_saved_and_loaded_model_keeps_masks_sources_and_outputs(tmp_path, fmt):
    masked = wrap(conv_bn_model(), sources=("qsae", "reservoir"))
    conv, dw = masked.get_layer("conv"), masked.get_layer("dw")
    conv.set_mask(np.random.default_rng(6).random(conv.kernel_shape) < 0.5, source="reservoir")
    conv.set_channel_mask([True, False, True, True], source="qsae")
    dw.set_channel_mask([True] * 7 + [False], source="reservoir")
    path = tmp_path / ("model.keras" if fmt == "keras" else "saved_model")
    masked.save(path, save_format="keras" if fmt == "keras" else "tf")
    loaded = tf.keras.models.load_model(path)

    for name in ("conv", "dw", "fc"):
        before, after = masked.get_layer(name), loaded.get_layer(name)
        assert isinstance(after, MaskedLayer) and after.sources == ("qsae", "reservoir")
        for source in after.sources:
            np.testing.assert_array_equal(after.get_mask(source), before.get_mask(source))
            np.testing.assert_array_equal(after.get_channel_mask(source), before.get_channel_mask(source))
    assert isinstance(loaded.get_layer("bn_dw"), ChannelGate)
    x = images()
    for out_before, out_after in zip(masked(x, training=False), loaded(x, training=False)):
        np.testing.assert_allclose(out_after.numpy(), out_before.numpy(), atol=1e-6)
    # the constraint is back on the loaded kernel: one step zeroes the pruned entries set before saving
    pruned = ~loaded.get_layer("conv").get_mask("reservoir")
    assert np.count_nonzero(loaded.get_layer("conv").layer.kernel.numpy()[pruned]) == pruned.sum()
    loaded.compile(tf.keras.optimizers.SGD(0.01, momentum=0.9), loss=[None, "mse"])
    loaded.train_on_batch(x, np.ones((len(x), 3), np.float32))
    assert np.count_nonzero(loaded.get_layer("conv").layer.kernel.numpy()[pruned]) == 0
    # the loaded gate reads the loaded producer's variables: a new mask acts at once
    loaded.get_layer("dw").set_channel_mask([False] + [True] * 7, source="qsae")
    assert np.count_nonzero(loaded(x, training=False)[0].numpy()[..., 0]) == 0


def test_bad_arguments_name_what_is_wrong():
    model = conv_bn_model()
    with pytest.raises(ValueError, match=r"no layer\(s\) \['nope'\].*can be masked: \['conv', 'dw', 'fc'\]"):
        wrap(model, layers=["conv", "nope"])
    with pytest.raises(TypeError, match="'pool' is a GlobalAveragePooling2D"):
        wrap(model, layers=["pool"])
    with pytest.raises(TypeError, match="Conv2DTranspose"):
        MaskedLayer(layers.Conv2DTranspose(2, 3, name="up"))
    masked = wrap(model, layers=lambda layer: layer.name == "conv")
    assert [type(layer).__name__ for layer in masked.layers].count("MaskedLayer") == 1
    conv = masked.get_layer("conv")
    with pytest.raises(ValueError, match=r"mask for layer 'conv' has shape \(3, 3, 3\); expected \(3, 3, 3, 4\)"):
        conv.set_mask(np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match=r"channel mask for layer 'conv' has shape \(3,\); expected \(4,\)"):
        conv.set_channel_mask([1, 0, 1])
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        conv.set_mask(np.full(conv.kernel_shape, 0.5))
    with pytest.raises(ValueError, match="no mask source 'qsae'; its sources are \\['default'\\]"):
        conv.set_mask(np.ones(conv.kernel_shape), source="qsae")
    sigmoid = wrap(tf.keras.Sequential([tf.keras.Input((2,)), layers.Dense(2, activation="sigmoid", name="s")]))
    with pytest.raises(ValueError, match="activation sigmoid mapping 0 to 0.5"):
        sigmoid.get_layer("s").set_channel_mask([True, False])


def test_subclassed_and_non_models_are_refused():
    class Sub(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.ones((1, 2), np.float32))
    with pytest.raises(TypeError, match="subclassed"):
        wrap(model)
    with pytest.raises(TypeError, match="expected a tf.keras"):
        strip("model.keras")


def test_strip_of_unpruned_wrap_exports_to_the_same_flatbuffer():
    import tfprune
    from tfprune.models import small_cnn

    model = small_cnn((12, 12, 1), classes=3, widths=(4, 8))
    x = np.random.default_rng(0).uniform(0, 255, (16, 12, 12, 1)).astype(np.float32)
    plain = strip(wrap(model))
    np.testing.assert_allclose(plain(x).numpy(), model(x).numpy(), atol=1e-6)
    dense = tfprune.export(model, x, progress=False)
    stripped = tfprune.export(plain, x, progress=False)
    assert stripped.report["flatbuffer_bytes"] == dense.report["flatbuffer_bytes"]
    assert stripped.report["macs"] == dense.report["macs"]
