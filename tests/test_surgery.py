"""tfprune.core.surgery: removing channels gives a smaller model computing what the masked model computes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.deploy.flatbuffer import read_model
from tfprune.core.graph import ChannelGroup, channel_groups
from tfprune.core.surgery import remove_channels

L = tf.keras.layers


# --- models: small, with random biases and BatchNorm statistics -------------------------------


def randomized(model: tf.keras.Model, seed: int = 0) -> tf.keras.Model:
    """Random BatchNorm gamma/beta/moving statistics and biases, so that no channel is trivially zero."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.5, 2.0, n)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape))
    return model


def sequential_cnn() -> tf.keras.Model:
    return randomized(tf.keras.Sequential([
        tf.keras.Input((12, 12, 3)),
        L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1"), L.BatchNormalization(name="bn1"),
        L.ReLU(name="relu1"), L.MaxPooling2D(name="pool1"),
        L.Conv2D(12, 3, padding="same", activation="relu", name="conv2"),
        L.Flatten(name="flatten"), L.Dense(16, activation="relu", name="fc1"), L.Dense(4, name="logits"),
    ], name="sequential_cnn"))


def conv_bn(x, filters, name, kernel=3, strides=1, relu=True):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def resnet() -> tf.keras.Model:
    inputs = tf.keras.Input((16, 16, 3))
    x = conv_bn(inputs, 16, "stem")
    y = conv_bn(x, 16, "b1_conv1")
    y = conv_bn(y, 16, "b1_conv2", relu=False)
    x = L.ReLU(name="b1_out")(L.Add(name="b1_add")([x, y]))
    y = conv_bn(x, 24, "b2_conv1", strides=2)
    y = conv_bn(y, 24, "b2_conv2", relu=False)
    shortcut = conv_bn(x, 24, "b2_proj", kernel=1, strides=2, relu=False)
    x = L.ReLU(name="b2_out")(L.Add(name="b2_add")([shortcut, y]))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return randomized(tf.keras.Model(inputs, L.Dense(10, name="logits")(x), name="resnet"))


def concat_net() -> tf.keras.Model:
    inputs = tf.keras.Input((10, 10, 3))
    a = L.Conv2D(6, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(10, 1, name="b")(inputs)
    x = L.Concatenate(name="cat")([a, b])
    d = L.Conv2D(16, 3, padding="same", name="d")(inputs)
    x = L.Add(name="add")([x, d])
    x = L.ReLU(name="relu")(L.BatchNormalization(name="bn")(x))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(L.Concatenate(name="cat2")([x, L.AveragePooling2D(name="pool")(a)]))
    return randomized(tf.keras.Model(inputs, L.Dense(5, name="logits")(x), name="concat_net"))


def ds_cnn() -> tf.keras.Model:
    inputs = tf.keras.Input((20, 10, 1))
    x = conv_bn(inputs, 16, "conv0", kernel=(5, 3), strides=2)
    for block, width in enumerate((24, 24)):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=block == 1, name=f"dw{block}")(x)
        x = L.ReLU(name=f"dw{block}_relu")(L.BatchNormalization(name=f"dw{block}_bn")(x))
        x = conv_bn(x, width, f"pw{block}", kernel=1)
    x = L.Flatten(name="flatten")(L.AveragePooling2D((5, 5), name="pool")(x))
    return randomized(tf.keras.Model(inputs, L.Dense(6, name="logits")(x), name="ds_cnn"))


def binary_cnn(binary_activations: bool = True) -> tf.keras.Model:
    """A larq CNN; without binary activations (no input quantizers) it deploys to Cortex-M as int8."""
    import larq as lq

    binary = dict(input_quantizer="ste_sign" if binary_activations else None, kernel_quantizer="ste_sign",
                  kernel_constraint="weight_clip", use_bias=False)
    return randomized(tf.keras.Sequential([
        tf.keras.Input((12, 12, 1)),
        lq.layers.QuantConv2D(16, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False, name="bconv1"),
        L.BatchNormalization(name="bn1"),
        lq.layers.QuantConv2D(24, 3, padding="same", name="bconv2", **binary),
        L.MaxPooling2D(name="pool"), L.BatchNormalization(name="bn2"),
        lq.layers.QuantConv2D(16, 3, name="bconv3", **binary), L.BatchNormalization(name="bn3"),
        L.Flatten(name="flatten"),
        lq.layers.QuantDense(6, name="logits", **binary), L.BatchNormalization(name="out_bn"),
    ], name="binary_cnn"))


# --- the masked reference -----------------------------------------------------------------------


def pick(groups: list[ChannelGroup], seed: int, fraction: float = 0.4) -> dict[int, list[int]]:
    """Random channels of about half the groups: group id -> group channels to remove."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for group in groups:
        if rng.random() < 0.5 or not chosen:
            count = max(1, int(fraction * group.size))
            chosen[group.id] = sorted(rng.choice(group.size, size=min(count, group.size - 1), replace=False).tolist())
    return {gid: ks for gid, ks in chosen.items() if ks}


def as_request(groups: list[ChannelGroup], chosen: dict[int, list[int]]) -> dict[str, list[int]]:
    """Name one producer of each group, as a user would."""
    request: dict[str, list[int]] = {}
    for group in groups:
        if group.id in chosen:
            member = group.producers[0]
            request.setdefault(member.layer, []).extend(member.offset + k for k in chosen[group.id])
    return request


def masked_copy(model: tf.keras.Model, groups: list[ChannelGroup], chosen: dict[int, list[int]]) -> tf.keras.Model:
    """The original with the chosen channels zeroed at their producers (kernel and bias), their
    BatchNorms (gamma and beta) and depthwise convolutions; a binary consumer ignores them."""
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    ignored: dict[str, list[int]] = {}
    for group in groups:
        ks = chosen.get(group.id, [])
        for k in ks:
            for member in group.producers:
                layer = copy.get_layer(member.layer)
                zero(layer.kernel, (..., member.offset + k))
                if layer.bias is not None:
                    zero(layer.bias, member.offset + k)
            for member in group.carriers:
                layer = copy.get_layer(member.layer)
                for variable in layer.weights:
                    if variable.name.split("/")[-1].startswith(("gamma", "beta", "bias")):
                        zero(variable, member.offset + k)
                    elif "depthwise_kernel" in variable.name:
                        zero(variable, (..., member.offset + k, slice(None)))
            for consumer in group.consumers:
                ignored.setdefault(consumer.layer, []).extend(consumer.rows[k])
    for name, rows in ignored.items():
        layer = copy.get_layer(name)
        quantizer = getattr(layer, "input_quantizer", None)
        if quantizer is not None:  # ste_sign maps a zeroed channel to +1: the consumer must ignore it
            keep = np.ones(layer.input.shape[-1], np.float32)
            keep[rows] = 0.0
            layer.input_quantizer = lambda x, q=quantizer, keep=keep: q(x) * keep
    return copy


def zero(variable: tf.Variable, index) -> None:
    value = variable.numpy()
    value[index] = 0.0
    variable.assign(value)


def sample(model: tf.keras.Model, n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, *model.input_shape[1:])).astype(np.float32)


def macs(model: tf.keras.Model) -> int:
    from tfprune.deploy.tflite import convert

    return read_model(convert(model, quantization="float32")).macs


def binary_weights_cnn() -> tf.keras.Model:
    return binary_cnn(binary_activations=False)


BUILDERS = [sequential_cnn, resnet, concat_net, ds_cnn, binary_cnn, binary_weights_cnn]
# TFLite Micro has no SIGN operator, so binary activations deploy through LCE (tested below) only
CORTEX_M_BUILDERS = [sequential_cnn, resnet, concat_net, ds_cnn, binary_weights_cnn]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
@pytest.mark.parametrize("seed", [0, 1])
def test_smaller_model_computes_the_masked_model(build, seed):
    model = build()
    groups = channel_groups(model)
    chosen = pick(groups, seed)
    small = remove_channels(model, as_request(groups, chosen))
    x = sample(model)
    expected = masked_copy(model, groups, chosen)(x).numpy()
    scale = max(1.0, float(np.abs(expected).max()))  # binary layers sum large integers
    np.testing.assert_allclose(small(x).numpy(), expected, rtol=1e-4, atol=1e-5 * scale)
    removed = sum(len(ks) for ks in chosen.values())
    assert removed > 0
    assert small.count_params() < model.count_params()
    assert [layer.name for layer in small.layers] == [layer.name for layer in model.layers]
    assert not np.allclose(model(x).numpy(), expected, atol=1e-3), "the removed channels mattered"


@pytest.mark.parametrize("build", CORTEX_M_BUILDERS, ids=[b.__name__ for b in CORTEX_M_BUILDERS])
def test_smaller_model_exports_smaller_and_runs_in_tflite_micro(build):
    model = build()
    groups = channel_groups(model)
    small = remove_channels(model, as_request(groups, pick(groups, seed=2, fraction=0.5)))
    x = sample(model, n=32)
    before = tfprune.export(model, x, progress=False).report
    after = tfprune.export(small, x, progress=False).report
    assert after["flatbuffer_bytes"] < before["flatbuffer_bytes"]
    assert after["macs"] < before["macs"]
    assert after["verification"]["top1_agreement"] == 1.0
    assert after["tflm"]["arena_bytes"] > 0


def test_smaller_binary_model_exports_smaller_for_lce():
    model = binary_cnn()
    groups = channel_groups(model)
    small = remove_channels(model, as_request(groups, pick(groups, seed=2, fraction=0.5)))
    x = sample(model, n=32)
    before = tfprune.export(model, target="android-lce", verify_data=x, progress=False).report
    after = tfprune.export(small, target="android-lce", verify_data=x, progress=False).report
    assert "LceBconv2d" in after["operators"]
    assert after["flatbuffer_bytes"] < before["flatbuffer_bytes"] and after["macs"] < before["macs"]
    assert after["verification"]["top1_agreement"] >= 0.95


def test_tied_add_inputs_lose_the_same_channel():
    model = resnet()
    small = remove_channels(model, {"b2_conv2": [3]})
    for name in ("b2_conv2", "b2_proj"):  # tied by b2_add
        assert small.get_layer(name).filters == 23
        kept = np.delete(model.get_layer(name).kernel.numpy(), 3, axis=-1)
        np.testing.assert_array_equal(small.get_layer(name).kernel.numpy(), kept)
        np.testing.assert_array_equal(small.get_layer(f"{name}_bn").moving_variance.numpy(),
                                      np.delete(model.get_layer(f"{name}_bn").moving_variance.numpy(), 3))
    assert small.get_layer("b2_conv1").filters == 24, "not tied to the Add"
    np.testing.assert_array_equal(small.get_layer("logits").kernel.numpy(),
                                  np.delete(model.get_layer("logits").kernel.numpy(), 3, axis=0))


def test_naming_every_member_of_a_tie_is_the_same_as_naming_one():
    model = resnet()
    one = remove_channels(model, {"stem": [1, 5]})
    both = remove_channels(model, {"stem": [1, 5], "b1_conv2": [5, 1], "b1_add": [1]})
    x = sample(model)
    np.testing.assert_array_equal(one(x).numpy(), both(x).numpy())
    assert one.get_layer("b1_conv2").filters == both.get_layer("stem").filters == 14


def test_flatten_dense_rows_follow_the_removed_channels():
    model = sequential_cnn()
    small = remove_channels(model, {"conv2": [0, 7]})
    kernel = model.get_layer("fc1").kernel.numpy().reshape(6, 6, 12, 16)   # rows (y*W + x)*C + c
    expected = np.delete(kernel, [0, 7], axis=2).reshape(-1, 16)
    np.testing.assert_array_equal(small.get_layer("fc1").kernel.numpy(), expected)
    assert macs(small) < macs(model)


def test_depthwise_channels_go_with_their_input():
    model = ds_cnn()
    small = remove_channels(model, {"pw0": [2, 3, 4]})
    assert small.get_layer("dw1").depthwise_kernel.shape[2] == 21
    np.testing.assert_array_equal(small.get_layer("dw1").bias.numpy(),
                                  np.delete(model.get_layer("dw1").bias.numpy(), [2, 3, 4]))
    assert small.get_layer("pw1").kernel.shape[2] == 21 and small.get_layer("pw1").filters == 24


def test_concatenate_offsets():
    model = concat_net()
    small = remove_channels(model, {"b": [0]})   # channel 6 of the concatenation, tied to d's channel 6
    assert (small.get_layer("a").filters, small.get_layer("b").filters, small.get_layer("d").filters) == (6, 9, 15)
    np.testing.assert_array_equal(small.get_layer("c").kernel.numpy(),
                                  np.delete(model.get_layer("c").kernel.numpy(), 6, axis=2))


def test_round_to_keeps_multiples_by_giving_back_the_lowest_removed_channels():
    model = resnet()
    small = remove_channels(model, {"b2_conv1": [0, 1, 2, 9, 10], "stem": [4, 7, 8]}, round_to=4)
    assert small.get_layer("b2_conv1").filters == 20      # 24 - 5 = 19 -> 20: channel 0 comes back
    np.testing.assert_array_equal(small.get_layer("b2_conv1").kernel.numpy(),
                                  np.delete(model.get_layer("b2_conv1").kernel.numpy(), [1, 2, 9, 10], axis=-1))
    assert small.get_layer("stem").filters == small.get_layer("b1_conv2").filters == 16   # 13 -> 16
    small8 = remove_channels(model, {"b2_conv1": list(range(10))}, round_to=8)
    assert small8.get_layer("b2_conv1").filters == 16


@pytest.mark.parametrize("request_, error, message", [
    ({"nope": [0]}, ValueError, "no layer 'nope'"),
    ({"conv2": [12]}, ValueError, "channel 12 of layer 'conv2' is out of range: it has 12 channels"),
    ({"conv2": [-1]}, ValueError, "channel -1 of layer 'conv2' is out of range"),
    ({"conv2": [3, 1, 3]}, ValueError, "channel 3 of layer 'conv2' is given more than once"),
    ({"conv2": list(range(12))}, ValueError, "leaves layer 'conv2' \\(Conv2D\\) without any channel"),
    ({"logits": [0]}, ValueError, "channel 0 of layer 'logits' cannot be removed: it is an output of model"),
    ({"flatten": [0]}, ValueError, "layer 'flatten' \\(Flatten\\) repeats each channel"),
    ({"conv2": [1.5]}, TypeError, "flat list of integers"),
    ([("conv2", [1])], TypeError, "channels must map layer names"),
])
def test_bad_requests_fail_with_one_line_naming_the_layer(request_, error, message):
    with pytest.raises(error, match=message) as info:
        remove_channels(sequential_cnn(), request_)
    assert "\n" not in str(info.value)


def test_bad_round_to_and_wrapped_layers_are_refused():
    model = sequential_cnn()
    with pytest.raises(ValueError, match="round_to=3: give None, 4 or 8"):
        remove_channels(model, {"conv1": [0]}, round_to=3)
    inputs = tf.keras.Input((4,))
    wrapped = tf.keras.Model(inputs, L.Dense(2)(_Passthrough(L.Dense(3, name="hidden"))(inputs)))
    with pytest.raises(TypeError, match="layer 'hidden' is wrapped .* strip the model first"):
        remove_channels(wrapped, {"hidden": [0]})


class _Passthrough(tf.keras.layers.Wrapper):
    """A minimal wrapper standing in for MaskedLayer: same name, calls its layer."""

    def __init__(self, layer, **kwargs):
        super().__init__(layer, name=layer.name, **kwargs)

    def call(self, inputs):
        return self.layer(inputs)


# --- removing what the masks prune ----------------------------------------------------------------


def test_remove_masked_channels_computes_the_masked_model():
    from tfprune.core import masks
    from tfprune.core.surgery import remove_masked_channels

    model = masks.wrap(resnet())
    keep = {name: np.ones(model.get_layer(name).channels, bool)
            for name in ("stem", "b1_conv2", "b2_conv1", "b2_conv2", "b2_proj")}
    for name in ("stem", "b1_conv2"):          # tied by b1_add: both masked, so removable
        keep[name][[2, 9]] = False
    keep["b2_conv1"][[0, 5, 6]] = False        # alone: removable
    keep["b2_conv2"][4] = False                # its tie b2_proj still feeds channel 4: stays, as zeros
    for name, k in keep.items():
        model.get_layer(name).set_channel_mask(k)
    model.get_layer("b2_conv1").set_mask(np.random.default_rng(0).random(model.get_layer("b2_conv1").kernel_shape) > 0.3)
    small = remove_masked_channels(model)
    x = sample(model)
    expected = model(x).numpy()
    np.testing.assert_allclose(small(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    filters = {name: small.get_layer(name).filters for name in keep}
    assert filters == {"stem": 14, "b1_conv2": 14, "b2_conv1": 21, "b2_conv2": 24, "b2_proj": 24}
    assert not any(isinstance(layer, tf.keras.layers.Wrapper) for layer in small.layers)
    assert np.all(small.get_layer("b2_conv2").kernel.numpy()[..., 4] == 0)
    zeros = lambda m: int(np.sum(m.get_layer("b2_conv1").kernel.numpy() == 0))  # noqa: E731
    assert zeros(small) >= 0.25 * small.get_layer("b2_conv1").kernel.numpy().size, "weight-level zeros kept"
    assert remove_masked_channels(model, round_to=4).get_layer("b2_conv1").filters == 24


def test_remove_masked_channels_warns_when_a_binary_consumer_reads_zero_as_one():
    from tfprune.core import masks
    from tfprune.core.surgery import remove_masked_channels

    model = masks.wrap(binary_cnn(), layers=["bconv1", "bconv2"])
    keep = np.ones(16, bool)
    keep[[1, 2]] = False
    model.get_layer("bconv1").set_channel_mask(keep)
    with pytest.warns(UserWarning, match="layer 'bconv2' reads removed channels through its input quantizer"):
        small = remove_masked_channels(model)
    assert small.get_layer("bconv1").filters == 14
    rows = np.ones(model.get_layer("bconv2").kernel_shape, bool)
    rows[:, :, [1, 2], :] = False            # the consumer ignores them too: exact, no warning
    model.get_layer("bconv2").set_mask(rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = remove_masked_channels(model)
    assert not [w for w in caught if "input quantizer" in str(w.message)]
    x = sample(model)
    expected = model(x).numpy()
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(small(x).numpy(), expected, rtol=1e-4, atol=1e-5 * scale)
