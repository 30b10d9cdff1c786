"""Importance scores against hand-computed numpy values on a tiny network, and their contracts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfprune import keras_model
from tfprune.core import scores

W1 = np.array([[0.5, -0.3, 0.8, 0.1], [-0.6, 0.2, 0.4, -0.9], [0.3, 0.7, -0.2, 0.5]])
B1 = np.array([0.1, -0.2, 0.05, 0.0])
W2 = np.array([[0.4, -0.7, 0.2], [0.9, 0.1, -0.5], [-0.3, 0.6, 0.8], [0.2, -0.4, 0.3]])
B2 = np.array([0.05, -0.1, 0.2])
X = np.array([[1.0, -0.5, 2.0], [0.3, 0.8, -1.2], [-0.7, 0.4, 0.9], [1.5, 1.1, 0.2],
              [0.0, -1.0, 0.5], [-1.3, 0.6, -0.4]])
Y = np.array([0, 2, 1, 1, 0, 2])


def tiny(output: str = "logits") -> tf.keras.Model:
    """Dense 3 -> 4 (tanh) -> 3 with fixed weights; the output as logits, softmax activation or Softmax layer."""
    inputs = tf.keras.Input((3,))
    hidden = tf.keras.layers.Dense(4, "tanh", name="hidden")(inputs)
    activation = "softmax" if output == "activation" else None
    outputs = tf.keras.layers.Dense(3, activation, name="out")(hidden)
    if output == "layer":
        outputs = tf.keras.layers.Softmax()(outputs)
    model = tf.keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights([W1, B1])
    model.get_layer("out").set_weights([W2, B2])
    return model


def numpy_gradients(w1: np.ndarray, w2: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """dL/dW1, dL/dW2 of the mean cross-entropy of softmax(logits / temperature), by hand."""
    h = np.tanh(X @ w1 + B1)
    z = (h @ w2 + B2) / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[Y]) / (len(X) * temperature)
    dh = dz @ w2.T
    return X.T @ (dh * (1 - h**2)), h.T @ dz


def numpy_hessian_gradient(temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """H g over the two kernels by central differences of the analytic gradient, in float64."""
    g1, g2 = numpy_gradients(W1, W2, temperature)
    step = 1e-4 / max(np.abs(g1).max(), np.abs(g2).max())
    plus = numpy_gradients(W1 + step * g1, W2 + step * g2, temperature)
    minus = numpy_gradients(W1 - step * g1, W2 - step * g2, temperature)
    return tuple((p - m) / (2 * step) for p, m in zip(plus, minus))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_magnitude_taylor_snip_and_arsp_match_hand_computed_gradients():
    model = tiny()
    g1, g2 = numpy_gradients(W1, W2)
    assert_close(scores.magnitude(model)["hidden"], np.abs(W1))
    taylor = scores.taylor(model, (X, Y))
    assert_close(taylor["hidden"], np.abs(W1 * g1))
    assert_close(taylor["out"], np.abs(W2 * g2))
    snip = scores.snip(model, (X, Y))
    total = np.abs(W1 * g1).sum() + np.abs(W2 * g2).sum()
    assert_close(snip["hidden"], np.abs(W1 * g1) / total)
    assert_close(snip["out"], np.abs(W2 * g2) / total)
    assert snip["hidden"].sum() + snip["out"].sum() == pytest.approx(1.0, rel=1e-5)
    survival = scores.arsp_survival(model, (X, Y), eps=1e-3)
    assert_close(survival["hidden"], np.abs(W1) / np.abs(W1).sum() / (np.abs(g1) + 1e-3))
    assert_close(survival["out"], np.abs(W2) / np.abs(W2).sum() / (np.abs(g2) + 1e-3))


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_is_weight_times_hessian_gradient_by_finite_differences(temperature):
    hg1, hg2 = numpy_hessian_gradient(temperature)
    expected = {"hidden": W1 * hg1, "out": W2 * hg2}
    assert (expected["hidden"] > 0).any() and (expected["hidden"] < 0).any()  # a signed score
    grasp = scores.grasp(tiny(), (X, Y), temperature=temperature)
    for name in expected:
        assert_close(grasp[name], expected[name])


def test_softmax_outputs_are_detected_and_scores_equal_the_logit_model():
    reference = {fn.__name__: fn(tiny(), (X, Y)) for fn in (scores.taylor, scores.grasp)}
    reference["synflow"] = scores.synflow(tiny())
    for output in ("activation", "layer"):
        model = tiny(output)
        for name, expected in reference.items():
            actual = scores.synflow(model) if name == "synflow" else getattr(scores, name)(model, (X, Y))
            for layer in expected:
                assert_close(actual[layer], expected[layer], rtol=1e-3)
        assert model.get_layer("out").activation.__name__ == ("softmax" if output == "activation" else "linear")


def test_synflow_matches_the_linearised_network_by_hand():
    a = np.ones(3) @ np.abs(W1) + np.abs(B1)
    h = np.tanh(a)
    expected_out = np.abs(W2) * h[:, None]  # dR/dW2[j, k] = h_j
    expected_hidden = np.abs(W1) * (np.abs(W2).sum(1) * (1 - h**2))[None, :]  # input is all ones
    result = scores.synflow(tiny())
    assert_close(result["out"], expected_out, rtol=1e-5)
    assert_close(result["hidden"], expected_hidden, rtol=1e-5)


def relu_cnn(seed: int = 0) -> tf.keras.Model:
    init = tf.keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    layers = tf.keras.layers
    return tf.keras.Sequential([
        tf.keras.Input((8, 8, 2)),
        layers.Conv2D(3, 3, use_bias=False, activation="relu", kernel_initializer=init, name="conv"),
        layers.DepthwiseConv2D(2, depth_multiplier=2, use_bias=False, depthwise_initializer=init, name="dw"),
        layers.ReLU(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(4, use_bias=False, kernel_initializer=init, name="fc"),
    ])


def test_synflow_conserves_the_flow_in_every_layer_and_leaves_weights_untouched():
    # Tanaka et al., theorem 2: without biases each layer's scores sum to R = 1^T (prod |W|) 1.
    model = relu_cnn()
    before = [w.copy() for w in model.get_weights()]
    result = scores.synflow(model)
    linear = tf.keras.models.clone_model(model)
    linear.set_weights([np.abs(w) for w in before])
    flow = float(tf.reduce_sum(linear(np.ones((1, 8, 8, 2), np.float32))))
    assert flow > 1.0
    for name in ("conv", "dw", "fc"):
        assert result[name].sum() == pytest.approx(flow, rel=1e-4)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_synflow_restores_batchnorm_statistics_and_signed_weights():
    model = tf.keras.Sequential([tf.keras.Input((5, 5, 1)), tf.keras.layers.Conv2D(4, 3, name="conv"),
                                 tf.keras.layers.BatchNormalization(), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(2, name="fc")])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    model.layers[1].moving_variance.assign(np.full(4, 2.0, np.float32))
    before = model.get_weights()
    result = scores.synflow(model)
    assert {k: v.shape for k, v in result.items()} == {"conv": (3, 3, 1, 4), "fc": (36, 2)}
    assert (result["conv"] > 0).all()
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def every_score(model: tf.keras.Model, data: tuple) -> dict[str, dict[str, np.ndarray]]:
    result = {fn.__name__: fn(model, data) for fn in
              (scores.snip, scores.grasp, scores.taylor, scores.arsp_survival)}
    result.update(magnitude=scores.magnitude(model), synflow=scores.synflow(model))
    return result


def test_every_score_has_the_kernel_shape_and_is_deterministic():
    model = relu_cnn()
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(8, 8, 8, 2)).astype(np.float32), rng.integers(0, 4, 8))
    kernels = {"conv": (3, 3, 2, 3), "dw": (2, 2, 3, 2), "fc": (24, 4)}
    first, second = every_score(model, data), every_score(model, data)
    for name, result in first.items():
        assert {k: v.shape for k, v in result.items()} == kernels, name
        assert all(np.isfinite(v).all() for v in result.values()), name
        for layer in kernels:
            np.testing.assert_array_equal(result[layer], second[name][layer])


def test_arrays_split_into_batches_and_datasets_give_the_gradient_of_the_mean_loss():
    model = tiny()
    whole = scores.taylor(model, (X, Y))
    dataset = tf.data.Dataset.from_tensor_slices((X.astype(np.float32), np.eye(3)[Y])).batch(3)
    for result in (scores.taylor(model, (X, Y), batches=2), scores.taylor(model, dataset, batches=2)):
        for layer in whole:
            assert_close(result[layer], whole[layer], rtol=1e-5)
    first_batch = scores.taylor(model, dataset)  # batches=1 reads one batch of the dataset
    assert not np.allclose(first_batch["hidden"], whole["hidden"])
    assert_close(first_batch["hidden"], scores.taylor(model, (X[:3], Y[:3]))["hidden"], rtol=1e-5)


def test_a_custom_loss_replaces_the_default():
    mse = scores.taylor(tiny(), (X, Y.astype(np.float32)), loss=lambda y, out: tf.square(out[:, 0] - y))
    h = np.tanh(X @ W1 + B1)
    residual = h @ W2[:, 0] + B2[0] - Y
    expected = np.zeros_like(W2)
    expected[:, 0] = np.abs(W2[:, 0] * (h.T @ (2 * residual / len(X))))
    assert_close(mse["out"], expected)


def test_train_mode_uses_batch_statistics_and_restores_them():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="fc"),
                                 tf.keras.layers.BatchNormalization(), tf.keras.layers.Dense(2, name="out")])
    stats = [v.numpy() for v in model.non_trainable_variables]
    data = (np.random.default_rng(2).normal(size=(16, 4)).astype(np.float32) * 3, np.arange(16) % 2)
    trained = scores.taylor(model, data, training=True)
    inference = scores.taylor(model, data)
    assert not np.allclose(trained["fc"], inference["fc"])
    for old, variable in zip(stats, model.non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())


class Passthrough(tf.keras.layers.Wrapper):
    """A minimal wrapper with its inner layer's name, as tfprune.core.masks.MaskedLayer has."""

    def call(self, inputs):
        return self.layer(inputs)


def test_wrapped_layers_are_scored_on_the_inner_kernel():
    inner = tf.keras.layers.Dense(3, name="out")
    inputs = tf.keras.Input((3,))
    hidden = tf.keras.layers.Dense(4, "tanh", name="hidden")(inputs)
    model = tf.keras.Model(inputs, Passthrough(inner, name="out")(hidden))
    model.get_layer("hidden").set_weights([W1, B1])
    inner.set_weights([W2, B2])
    assert list(scores.prunable_layers(model)) == ["hidden", "out"]
    assert_close(scores.taylor(model, (X, Y))["out"], scores.taylor(tiny(), (X, Y))["out"], rtol=1e-5)


def test_masked_layers_score_their_inner_kernel_and_masked_weights_score_zero():
    from tfprune.core.masks import strip, wrap

    masked = wrap(tiny())
    mask = np.ones_like(W2)
    mask[[0, 2], [1, 0]] = 0
    masked.get_layer("out").set_mask(mask)
    assert list(scores.prunable_layers(masked)) == ["hidden", "out"]
    result, plain = scores.taylor(masked, (X, Y)), scores.taylor(strip(masked), (X, Y))
    assert result["out"][0, 1] == result["out"][2, 0] == 0 and (result["out"][mask == 1] > 0).all()
    for layer in plain:
        assert_close(result[layer], plain[layer], rtol=1e-5)
    assert scores.synflow(masked)["out"][0, 1] == 0
    np.testing.assert_array_equal(masked.get_layer("out").layer.kernel.numpy(), W2.astype(np.float32))


def test_larq_layers_are_prunable():
    import larq as lq

    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 1)),
        lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="qconv"),
        tf.keras.layers.Flatten(),
        lq.layers.QuantDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="qfc"),
    ])
    data = (np.random.default_rng(3).normal(size=(4, 6, 6, 1)).astype(np.float32), np.array([0, 1, 1, 0]))
    result = scores.taylor(model, data)
    assert {k: v.shape for k, v in result.items()} == {"qconv": (3, 3, 1, 4), "qfc": (64, 2)}
    assert result["qfc"].sum() > 0


def test_channel_scores_reduce_over_each_output_channel():
    model = relu_cnn()
    rng = np.random.default_rng(4)
    weight = {"conv": rng.random((3, 3, 2, 3)), "fc": rng.random((24, 4))}
    summed = scores.channel_scores(weight, model)
    np.testing.assert_allclose(summed["conv"], [weight["conv"][..., c].sum() for c in range(3)])
    np.testing.assert_allclose(scores.channel_scores(weight, model, "mean")["fc"], weight["fc"].mean(0))
    np.testing.assert_allclose(scores.channel_scores(weight, model, "l2")["fc"],
                               np.sqrt((weight["fc"] ** 2).sum(0)))


def test_depthwise_channel_i_times_multiplier_plus_m_is_the_output_channel_it_feeds():
    model = relu_cnn()
    layer = model.get_layer("dw")
    kernel = np.zeros((2, 2, 3, 2), np.float32)
    kernel[:, :, 1, 0] = 1.0  # input channel 1, multiplier 0 -> output channel 1 * 2 + 0
    layer.set_weights([kernel])
    feeds = layer(np.ones((1, 3, 3, 3), np.float32)).numpy().reshape(-1, 6).sum(0)
    per_channel = scores.channel_scores({"dw": scores.magnitude(model)["dw"]}, model)["dw"]
    assert np.flatnonzero(feeds).tolist() == np.flatnonzero(per_channel).tolist() == [2]
    assert per_channel[2] == 4.0


def shortcut_model() -> tf.keras.Model:
    """conv a -> BN -> depthwise (x2) and conv b, tied by an Add; then conv e and the classifier."""
    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 3))
    a = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    dw = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(layers.BatchNormalization()(a))
    b = layers.Conv2D(8, 1, name="b")(inputs)
    x = layers.Conv2D(5, 1, name="e")(layers.ReLU()(layers.Add()([dw, b])))
    return tf.keras.Model(inputs, layers.Dense(2, name="out")(layers.GlobalAveragePooling2D()(x)))


def test_group_scores_reduce_over_every_layer_tied_by_an_add():
    from tfprune.core.graph import channel_groups

    model = shortcut_model()
    rng = np.random.default_rng(5)
    weight = {name: rng.random(k.shape) for name, k in keras_model.kernels(model).items()}
    # Add output 2i + m is dw's (input i, multiplier m) = a's channel i, and b's channel 2i + m:
    # removing a's channel i removes all four filters.
    tied = [np.concatenate([weight["a"][..., i].ravel(), weight["b"][..., 2 * i].ravel(),
                            weight["b"][..., 2 * i + 1].ravel(), weight["dw"][:, :, i, :].ravel()])
            for i in range(4)]
    groups = channel_groups(model)
    ids = {g.producers[0].layer: [] for g in groups}
    for g in groups:
        ids[g.producers[0].layer].append(g.id)
    for reduce, by_hand in (("sum", np.sum), ("mean", np.mean), ("l2", np.linalg.norm)):
        result = scores.group_scores(weight, model, reduce)
        assert sorted(result) == sorted(g.id for g in groups)
        np.testing.assert_allclose([result[i][0] for i in ids["a"]], [by_hand(t) for t in tied])
        np.testing.assert_allclose(result[ids["e"][0]], scores.channel_scores(weight, model, reduce)["e"])
    with pytest.raises(ValueError, match="weight_scores lacks layer 'dw', which holds channels of group"):
        scores.group_scores({"a": weight["a"], "b": weight["b"]}, model)


def test_bad_inputs_give_one_clear_line():
    no_kernels = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.ReLU()])
    inputs = tf.keras.Input((3,))
    two_outputs = tf.keras.Model(inputs, [tf.keras.layers.Dense(2)(inputs), tf.keras.layers.Dense(2)(inputs)])
    cases = [
        (lambda: scores.magnitude(no_kernels), "no prunable layer"),
        (lambda: scores.snip(tiny(), (np.ones((6, 4)), Y)), "samples of shape (4,) but the model takes (3,)"),
        (lambda: scores.taylor(tiny(), X), "needs labels"),
        (lambda: scores.taylor(tiny(), (X, Y + 1)), "labels range over 1..3 but the model has 3 classes"),
        (lambda: scores.grasp(tiny(), (X, Y), batches=0), "batches must be a positive integer"),
        (lambda: scores.grasp(tiny(), (X, Y), batches=7), "batches=7 but the data holds 6 samples"),
        (lambda: scores.grasp(tiny(), (X, Y), temperature=0), "temperature must be a positive number"),
        (lambda: scores.arsp_survival(tiny(), (X, Y), eps=0), "eps must be a positive number"),
        (lambda: scores.taylor(tiny(), (X, Y), loss="no_such_loss"), "unknown loss"),
        (lambda: scores.synflow(tiny(), input_shape=(4,)), "does not fit"),
        (lambda: scores.synflow(two_outputs), "has 2 outputs; scores need a single-output model"),
        (lambda: scores.snip(two_outputs, (X, Y)), "has 2 outputs; scores need a single-output model"),
        (lambda: scores.channel_scores({"hidden": np.ones(3)}, tiny()), "have shape (3,) but its kernel is (3, 4)"),
        (lambda: scores.channel_scores({"nope": np.ones(3)}, tiny()), "'nope', which is not a prunable layer"),
        (lambda: scores.channel_scores({}, tiny(), reduce="max"), "reduce must be one of sum, mean, l2"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(TypeError, match="data must be"):
        scores.taylor(tiny(), 3.0)
