"""Pruning at initialization and Reconvene: masks, sensitivity, rectified models that deploy and train."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.cli import main as cli_main
from tfprune.keras_model import load_model
from tfprune.prune.pai import pai_masks, pai_scores, prune_at_init
from tfprune.prune.reconvene import (
    GroupSensitivity,
    int8_weight_bytes,
    model_macs,
    rank_mass,
    rectified_widths,
    reconvene,
    sensitivities,
)


def two_layer_net() -> tf.keras.Model:
    """x(2) -> a: Dense 2 (no bias) -> b: Dense 1 (no bias), with weights picked for hand computation."""
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, use_bias=False, name="a"),
                                 tf.keras.layers.Dense(1, use_bias=False, name="b")])
    model.get_layer("a").set_weights([np.array([[1.0, -2.0], [3.0, 0.5]])])
    model.get_layer("b").set_weights([np.array([[4.0], [-1.0]])])
    return model


def small_convnet(seed: int = 0, widths: tuple[int, ...] = (8, 16)) -> tf.keras.Model:
    return tfprune.models.small_cnn((12, 12, 3), classes=3, widths=widths, rescale=None, seed=seed)


def test_scores_and_masks_match_hand_computed_values_on_a_tiny_network():
    model = two_layer_net()
    # SynFlow with |W|: R = 1^T |A| |B| = (1+3)*4 + (2+0.5)*1 = 18.5; dR/dA_ij = |B_j|, dR/dB_j = sum_i |A_ij|.
    synflow = pai_scores(model, "synflow")
    np.testing.assert_allclose(synflow["a"], [[4.0, 2.0], [12.0, 0.5]])
    np.testing.assert_allclose(synflow["b"], [[16.0], [2.5]])
    # Global single-shot SynFlow at 50% keeps the top 3 of 6 scores: b0 16, a10 12, a00 4.
    masks = pai_masks(model, "synflow", target_sparsity=0.5, iterations=1)
    np.testing.assert_array_equal(masks["a"], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(masks["b"], [[1], [0]])
    # Per-layer magnitude at 50% keeps the larger half of each layer.
    layer = pai_masks(model, "magnitude", target_sparsity=0.5, scope="layer")
    np.testing.assert_array_equal(layer["a"], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(layer["b"], [[1], [0]])
    # SNIP on one sample x=(1,1), loss = output (identity "loss" through a custom callable).
    x, y = np.ones((1, 2), np.float32), np.zeros((1, 1), np.float32)
    snip = tfprune.core.scores.snip(model, (x, y), loss=lambda y_true, y_pred: y_pred)
    raw = np.array([[1 * 4, 2 * 1], [3 * 4, 0.5 * 1]])  # |w * dL/dw| with dL/dA_ij = x_i * B_j
    np.testing.assert_allclose(snip["a"], raw / (raw.sum() + 4 * 4 + 1 * 1.5), rtol=1e-6)


def test_iterative_synflow_avoids_emptying_a_layer_and_random_masks_follow_the_seed():
    model = small_convnet()
    masks = pai_masks(model, "synflow", target_sparsity=0.95, iterations=20)
    kept = sum(m.sum() for m in masks.values())
    total = sum(m.size for m in masks.values())
    assert kept == pytest.approx(0.05 * total, abs=len(masks))
    assert all(m.any() for m in masks.values()), "every layer keeps at least one weight"
    first, again = pai_masks(model, "random", target_sparsity=0.5, seed=3), pai_masks(model, "random",
                                                                                      target_sparsity=0.5, seed=3)
    other = pai_masks(model, "random", target_sparsity=0.5, seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_sensitivity_ranks_a_layer_whose_pai_mask_removes_whole_channels_first():
    model = small_convnet()
    rng = np.random.default_rng(0)
    names = list(tfprune.core.scores.prunable_layers(model))
    scores = {n: rng.random(tf.keras.backend.int_shape(_kernel(model, n))) for n in names}
    # as a PaI method would: keep each layer's top 30% scores
    masks = {n: (s >= np.quantile(s, 0.7)).astype(np.float32) for n, s in scores.items()}
    whole = names[1]                   # the second conv: its mask keeps its 6 best channels whole
    channel_mass = scores[whole].reshape(-1, scores[whole].shape[-1]).sum(axis=0)
    keep = np.argsort(-channel_mass)[:6]
    masks[whole] = np.zeros_like(scores[whole])
    masks[whole][..., keep] = 1.0
    scores[whole][..., keep] += 10.0   # PaI kept them because they scored highest
    evaluated = sorted(sensitivities(model, scores, masks), key=lambda g: g.sensitivity)
    assert evaluated[0].layers[0] == whole and evaluated[0].sensitivity == 0.0
    assert sorted(evaluated[0].order[: evaluated[0].keep]) == sorted(keep.tolist())
    assert all(g.sensitivity > 0.1 for g in evaluated[1:])


def test_rank_mass_is_a_percentile_with_shared_ties():
    np.testing.assert_allclose(rank_mass(np.array([3.0, -1.0, 3.0, 2.0])), [0.875, 0.25, 0.875, 0.5])


def test_rectified_widths_keep_the_pai_weight_count_of_a_chain():
    model = tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.Dense(10, name="a"),
                                 tf.keras.layers.Dense(10, name="b"), tf.keras.layers.Dense(2, name="c")])
    order = tuple(range(10))
    a = GroupSensitivity(0, ("a",), 10, 3, 0.3, 0.0, order, 30)
    b = GroupSensitivity(1, ("b",), 10, 3, 0.25, 0.0, order, 25)
    # a reads the uncut input: 30 of its 100 weights are 3 whole channels; b reads those 3 channels,
    # so its 25 weights are 25 / 3 = 8.3 channels, not the 2.5 its density alone would give
    assert rectified_widths(model, [a, b]) == {0: 3, 1: 8}
    assert rectified_widths(model, [b]) == {1: 2}


def test_reconvene_model_is_smaller_runs_in_tflite_micro_and_trains():
    tf.keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((192, 12, 12, 3)).astype(np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(np.int64)  # top half brighter
    model = small_convnet(widths=(16, 32))
    result = reconvene(model, (x[:64], y[:64]), "snip", 0.8, threshold=1.0)
    report = result.report
    assert report.stored_weights_after < report.stored_weights_before / 2
    assert report.macs_after < report.macs_before / 2
    assert model_macs(result.model) == report.macs_after
    assert {d.layer for d in report.layers if d.structured} == {"conv0", "conv1"}
    pai = prune_at_init(model, result.pai_masks)
    assert tfprune.core.count.nonzero_count(tfprune.strip(pai)) == report.nonzero_weights_before
    assert int8_weight_bytes(result.model) < int8_weight_bytes(model)
    small = tfprune.export(result.model, x[:64], verify_data=(x[:32], y[:32]), progress=False)
    dense = tfprune.export(pai, x[:64], verify_data=(x[:32], y[:32]), progress=False)
    assert small.report["flatbuffer_bytes"] < dense.report["flatbuffer_bytes"]
    assert small.report["verification"]["top1_agreement"] == 1.0
    assert small.report["tflm"]["arena_bytes"] > 0
    result.model.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy())
    history = result.model.fit(x, y, epochs=8, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]


def test_threshold_budget_and_order_choose_which_layers_are_rectified():
    model = small_convnet(widths=(16, 32, 32))
    none = reconvene(model, method="magnitude", target_sparsity=0.8, threshold=0.0)
    assert not any(d.structured for d in none.report.layers)
    assert none.report.stored_weights_after == none.report.stored_weights_before
    groups = sorted(none.report.groups, key=lambda g: g.sensitivity)
    least = reconvene(model, method="magnitude", target_sparsity=0.8, count=1)
    most = reconvene(model, method="magnitude", target_sparsity=0.8, count=1, order="most")
    assert [d.layer for d in least.report.layers if d.structured] == list(groups[0].layers)
    assert [d.layer for d in most.report.layers if d.structured] == list(groups[-1].layers)
    target = int(0.6 * int8_weight_bytes(model))
    budgeted = reconvene(model, method="magnitude", target_sparsity=0.8, budget={"bytes": target})
    assert int8_weight_bytes(budgeted.model) <= target
    dense_rest = reconvene(model, method="magnitude", target_sparsity=0.8, count=1, unrectified="dense")
    assert not any(isinstance(layer, tfprune.MaskedLayer) for layer in dense_rest.model.layers)
    again = reconvene(model, method="magnitude", target_sparsity=0.8, count=1)
    assert all(np.array_equal(a, b) for a, b in zip(least.model.get_weights(), again.model.get_weights()))


def test_residual_groups_are_rectified_together():
    model = tfprune.models.resnet8(seed=0)
    result = reconvene(model, method="synflow", target_sparsity=0.9, threshold=1.0, iterations=10)
    channels = {d.layer: d.channels_after for d in result.report.layers}
    assert channels["conv0"] == channels["stack1_conv2"]
    assert channels["stack2_conv2"] == channels["stack2_shortcut"]
    assert result.model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape == (1, 10)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "obd"}, "unknown PaI method 'obd'"),
    ({"method": "snip"}, "needs labelled data"),
    ({"target_sparsity": 1.0}, "target_sparsity must be a number in [0, 1)"),
    ({"threshold": 0.2, "count": 1}, "give one of threshold, budget and count"),
    ({"budget": {"flash": 3}}, "budget must be a dict with keys from"),
    ({"budget": {"bytes": 10}}, "is out of reach"),
    ({"unrectified": "zeros"}, "unrectified must be one of masked, dense"),
])
def test_bad_arguments_give_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        reconvene(small_convnet(), **kwargs)


def test_cli_writes_the_model_and_report_and_refuses_to_overwrite(tmp_path, capsys):
    model_path = tmp_path / "untrained.keras"
    small_convnet().save(model_path)
    x = np.random.default_rng(0).random((32, 12, 12, 3)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(32) % 3)
    out = tmp_path / "rc"
    args = ["reconvene", str(model_path), "--data", str(tmp_path / "train.npz"), "--method", "snip",
            "--sparsity", "0.8", "--threshold", "1.0", "--out", str(out)]
    assert cli_main(args) == 0
    report = json.loads((out / "reconvene.json").read_text())
    assert report["stored_weights_after"] < report["stored_weights_before"] and report["size_ratio"] > 1
    loaded = load_model(out / "model.keras")
    assert loaded.count_params() < small_convnet().count_params()
    assert cli_main(args) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    np.savez(tmp_path / "unlabelled.npz", x=x)
    assert cli_main(args[:3] + [str(tmp_path / "unlabelled.npz")] + args[4:] + ["--force"]) == 2
    assert "has no labels" in capsys.readouterr().err


def _kernel(model: tf.keras.Model, name: str):
    return model.get_layer(name).kernel


def test_random_channel_ablation_keeps_reconvenes_groups_and_widths():
    model = small_convnet(widths=(16, 32))
    chosen = reconvene(model, method="magnitude", target_sparsity=0.8, threshold=1.0)
    random = reconvene(model, method="magnitude", target_sparsity=0.8, threshold=1.0, channel_choice="random")
    assert any(d.structured for d in random.report.layers)
    assert [(d.structured, d.channels_after) for d in chosen.report.layers] == \
        [(d.structured, d.channels_after) for d in random.report.layers]
    assert int8_weight_bytes(random.model) == int8_weight_bytes(chosen.model)
