"""tfprune.core.graph: which channels of a Keras model are tied, and who reads them."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tfprune.core.graph import Consumer, Member, channel_groups, group_of

L = tf.keras.layers


def producers(group):
    return [(m.layer, m.offset) for m in group.producers]


def test_residual_add_ties_the_shortcut_and_the_branch():
    inputs = tf.keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.BatchNormalization(name="branch_bn")(L.Conv2D(8, 3, padding="same", name="branch")(x))
    x = L.Add(name="add")([x, y])
    z = L.Conv2D(12, 3, strides=2, padding="same", name="down")(x)
    proj = L.Conv2D(12, 1, strides=2, name="proj")(x)
    x = L.GlobalAveragePooling2D()(L.Add(name="add2")([z, proj]))
    model = tf.keras.Model(inputs, L.Dense(3, name="logits")(x))
    groups = channel_groups(model)
    assert [(g.size, producers(g)) for g in groups] == [
        (8, [("stem", 0), ("branch", 0)]),
        (12, [("down", 0), ("proj", 0)]),
    ]
    assert [m.layer for m in groups[0].carriers] == ["stem_bn", "branch_bn"]
    assert [c.layer for c in groups[0].consumers] == ["branch", "down", "proj"]
    assert groups[0].consumers[0].rows[5] == (5,)
    assert [c.layer for c in groups[1].consumers] == ["logits"]
    every = channel_groups(model, prunable_only=False)
    assert [g.prunable for g in every] == [True, True, False]
    assert producers(every[2]) == [("logits", 0)] and "output" in every[2].reason


def test_concatenate_places_inputs_at_offsets_and_an_add_splits_the_other_producer():
    inputs = tf.keras.Input((6, 6, 2))
    a = L.Conv2D(3, 1, name="a")(inputs)
    b = L.Conv2D(5, 1, name="b")(inputs)
    d = L.Conv2D(8, 1, name="d")(inputs)
    x = L.Add(name="add")([L.Concatenate(name="cat")([a, b]), d])
    x = L.Conv2D(4, 3, name="c")(x)
    model = tf.keras.Model(inputs, L.Dense(2, name="logits")(L.Flatten()(x)))
    groups = channel_groups(model)
    assert [(g.size, producers(g)) for g in groups] == [
        (3, [("a", 0), ("d", 0)]),
        (5, [("b", 0), ("d", 3)]),
        (4, [("c", 0)]),
    ]
    assert groups[1].consumers == (Consumer("c", tuple((3 + k,) for k in range(5))),)
    assert [g.channels("d") for g in group_of(model, "d")] == [[0, 1, 2], [3, 4, 5, 6, 7]]


def test_flatten_spreads_each_channel_over_its_positions():
    model = tf.keras.Sequential([tf.keras.Input((5, 4, 1)), L.Conv2D(3, (2, 1), name="conv"),
                                 L.Flatten(), L.Dense(2, name="logits")])
    [group] = channel_groups(model)
    [consumer] = group.consumers
    # the feature map is 4 x 4 x 3; NHWC flattening puts channel c of position (y, x) at row (y*4 + x)*3 + c
    assert consumer.layer == "logits"
    assert consumer.rows[2] == tuple((p * 3) + 2 for p in range(16))


def test_depthwise_conv_carries_its_input_channels():
    inputs = tf.keras.Input((8, 8, 1))
    x = L.Conv2D(6, 3, name="conv")(inputs)
    x = L.BatchNormalization(name="dw_bn")(L.DepthwiseConv2D(3, name="dw")(x))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw2")(x)
    x = L.Conv2D(4, 1, name="pw")(x)
    model = tf.keras.Model(inputs, L.Dense(2, name="logits")(L.GlobalMaxPooling2D()(x)))
    first = channel_groups(model)[0]
    assert producers(first) == [("conv", 0)]
    assert [(m.layer, m.offset) for m in first.carriers] == [("dw", 0), ("dw_bn", 0), ("dw2", 0)]
    assert first.consumers == (Consumer("pw", tuple((2 * k, 2 * k + 1) for k in range(6))),)


def test_channels_tied_to_the_input_or_a_softmax_are_not_prunable():
    inputs = tf.keras.Input((4, 4, 3))
    x = L.Add()([inputs, L.Conv2D(3, 1, name="same_as_input")(inputs)])
    x = L.Conv2D(5, 1, name="free")(x)
    x = L.Flatten()(x)
    x = L.Softmax(name="softmax")(L.Dense(6, name="pre_softmax")(x))
    model = tf.keras.Model(inputs, L.Dense(2, name="logits")(x))
    assert [producers(g) for g in channel_groups(model)] == [[("free", 0)]]
    reasons = {producers(g)[0][0]: g.reason for g in channel_groups(model, prunable_only=False)}
    assert "input channel" in reasons["same_as_input"]
    assert "'softmax' (Softmax) mixes its input channels" in reasons["pre_softmax"]


def test_larq_layers_are_producers():
    import larq as lq

    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 1)),
        lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign", name="bconv"), L.BatchNormalization(name="bn"),
        L.Flatten(), lq.layers.QuantDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="fc"),
    ])
    [group] = channel_groups(model)
    assert producers(group) == [("bconv", 0)] and group.carriers == (Member("bn", 0),)
    assert group.consumers[0].layer == "fc" and len(group.consumers[0].rows[0]) == 16


def test_wrapped_layers_count_as_the_layer_they_wrap():
    class Wrapped(L.Wrapper):  # stands in for tfprune.core.masks.MaskedLayer: keeps the inner layer's name
        def __init__(self, layer, **kwargs):
            super().__init__(layer, name=layer.name, **kwargs)

        def call(self, inputs):
            return self.layer(inputs)

    model = tf.keras.Sequential([tf.keras.Input((6, 6, 1)), Wrapped(L.Conv2D(4, 3, name="conv")),
                                 L.GlobalAveragePooling2D(), Wrapped(L.Dense(2, name="logits"))])
    [group] = channel_groups(model)
    assert producers(group) == [("conv", 0)] and group.consumers[0].layer == "logits"


@pytest.mark.parametrize("layer, message", [
    (L.LSTM(4, name="lstm"), "layer 'lstm' \\(LSTM\\): the channel graph does not know how it moves channels"),
    (L.Lambda(lambda t: t * 2, name="double"), "layer 'double' \\(Lambda\\)"),
    (L.Permute((2, 1), name="swap"), "layer 'swap' \\(Permute\\)"),
    (L.Conv1D(4, 1, groups=2, name="grouped"), "layer 'grouped' \\(Conv1D\\): grouped convolutions"),
])
def test_unknown_layers_stop_the_analysis_naming_layer_and_class(layer, message):
    inputs = tf.keras.Input((6, 4))
    x = layer(L.Dense(4, name="hidden")(inputs))
    model = tf.keras.Model(inputs, L.Dense(2, name="logits")(L.Flatten()(x)))
    with pytest.raises(ValueError, match=message) as info:
        channel_groups(model)
    assert "\n" not in str(info.value)


def test_subclassed_models_shared_layers_and_bad_names_are_refused():
    class Subclassed(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    with pytest.raises(TypeError, match="subclassed Keras model"):
        channel_groups(Subclassed())
    with pytest.raises(TypeError, match="expected a tf.keras \\(Keras 2\\) model, got str"):
        channel_groups("model.keras")
    inputs = tf.keras.Input((4,))
    shared = L.Dense(4, name="shared")
    model = tf.keras.Model(inputs, L.Dense(2)(shared(shared(inputs))))
    with pytest.raises(ValueError, match="layer 'shared' \\(Dense\\) is called more than once"):
        channel_groups(model)
    plain = tf.keras.Sequential([tf.keras.Input((4,)), L.Dense(3, name="hidden"), L.ReLU(name="relu"),
                                 L.Dense(2, name="out")])
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        group_of(plain, "nope")
    with pytest.raises(ValueError, match="layer 'relu' \\(ReLU\\) makes no channels of its own"):
        group_of(plain, "relu")
