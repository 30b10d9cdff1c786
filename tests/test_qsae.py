"""QSAE dynamic sparsity: the autoencoder's ranking, the KL threshold, the controller in and out of fit."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.prune.qsae import QSAE, PruningController, kl_divergence, search_threshold

CONSTANT = [6, 7, 8, 9]
PAIRS = [(10, 11), (12, 13), (14, 15)]


def planted_activations(seed: int = 0, samples: int = 512) -> np.ndarray:
    """16 channels: 6 independent, 4 constant, 3 duplicated pairs (9 directions of information)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(samples, 9))
    x = np.zeros((samples, 16))
    x[:, :6] = base[:, :6] * rng.uniform(0.5, 3.0, 6)
    x[:, CONSTANT] = [5.0, 0.0, -2.0, 1.0]
    for i, (a, b) in enumerate(PAIRS):
        x[:, a] = x[:, b] = base[:, 6 + i]
    return x


# --- the autoencoder -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_l1_drives_constant_channels_to_zero_and_ranks_them_last(seed):
    x = planted_activations(seed)
    model = QSAE(seed=seed).fit(x)
    importance = model.importance()
    informative = np.delete(importance, CONSTANT)
    assert importance[CONSTANT].max() < 0.02 * np.median(informative)
    ranking = QSAE(seed=seed).rank(x)
    assert sorted(ranking.order[:4].tolist()) == CONSTANT
    assert np.all(np.diff(ranking.scores[ranking.order]) >= 0)        # monotone along the order
    assert ranking.scores.max() == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_at_most_one_channel_of_each_duplicate_pair_is_pruned(seed):
    ranking = QSAE(seed=seed).rank(planted_activations(seed))
    for count in range(1, 9):                      # up to half the channels
        pruned = set(ranking.pruned(count).tolist())
        assert all(not {a, b} <= pruned for a, b in PAIRS), (count, ranking.order)
    # the 7 channels that carry nothing new go first: the constants and one of each pair
    first = set(ranking.order[:7].tolist())
    assert set(CONSTANT) <= first and all(len(first & set(pair)) == 1 for pair in PAIRS)


def test_weights_are_int8_fake_quantized():
    model = QSAE(seed=0).fit(planted_activations())
    weights = model._params["we"]
    from tfprune.prune.qsae import fake_quantize

    levels = fake_quantize(weights) / (np.abs(weights).max() / 127)
    assert np.allclose(levels, np.round(levels)) and np.abs(levels).max() <= 127


def test_qsae_rejects_bad_arguments():
    with pytest.raises(ValueError, match="l1"):
        QSAE(l1=-1)
    with pytest.raises(ValueError, match="not trained"):
        QSAE().importance()
    with pytest.raises(ValueError, match="2 channels"):
        QSAE().rank(np.ones((10, 1)))


# --- the threshold -------------------------------------------------------------------------

def independent_kl(a: np.ndarray, keep: np.ndarray) -> float:
    """KL(p || q) of per-sample softmaxes at T = std(a), written from the definition with logsumexp."""
    from scipy.special import logsumexp

    t = a.std()
    log_p = a / t - logsumexp(a / t, axis=1, keepdims=True)
    masked = np.where(keep, a, 0.0) / t
    log_q = masked - logsumexp(masked, axis=1, keepdims=True)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


@pytest.mark.parametrize("budget", [0.005, 0.02, 0.1])
def test_kl_search_matches_recomputation_and_respects_the_budget(budget):
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(size=(300, 12))) * rng.uniform(0.1, 3.0, 12)
    a[:, [2, 7]] *= 0.01                                   # two nearly silent channels
    ranking = QSAE(seed=0).rank(a)
    choice = search_threshold(a, ranking, kl_budget=budget)
    kls = []
    for k in range(12):
        keep = np.ones(12, bool)
        keep[ranking.order[:k]] = False
        kls.append(independent_kl(a, keep))
    assert [point["kl"] for point in choice.curve] == pytest.approx(kls, rel=1e-9, abs=1e-12)
    assert choice.kl == pytest.approx(independent_kl(a, choice.keep), rel=1e-9, abs=1e-12)
    assert choice.kl <= budget
    # the largest tau whose KL stays within the budget all the way up to it
    first_over = next((k for k, kl in enumerate(kls) if kl > budget), len(kls))
    assert choice.pruned == first_over - 1 >= 2
    assert choice.pruned == int((~choice.keep).sum())
    assert set(np.flatnonzero(~choice.keep)) == set(ranking.order[:choice.pruned].tolist())
    assert [point["tau"] for point in choice.curve] == sorted(point["tau"] for point in choice.curve)
    assert choice.tau == choice.curve[choice.pruned]["tau"]


def test_target_sparsity_prunes_that_share_and_reports_its_kl():
    a = np.abs(np.random.default_rng(4).normal(size=(100, 10)))
    choice = search_threshold(a, QSAE(seed=0).rank(a), target_sparsity=0.3)
    assert choice.pruned == 3 and choice.kl == pytest.approx(independent_kl(a, choice.keep))
    assert kl_divergence(a, np.ones(10, bool)) == 0.0


@pytest.mark.parametrize("kwargs", [{}, {"kl_budget": 0.1, "target_sparsity": 0.5}, {"kl_budget": -1},
                                    {"target_sparsity": 1.0}])
def test_search_needs_exactly_one_valid_budget(kwargs):
    a = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ValueError, match="kl_budget|target_sparsity"):
        search_threshold(a, QSAE(seed=0).rank(a), **kwargs)


# --- the controller ------------------------------------------------------------------------

def identity_model(channels: int = 16, classes: int = 3):
    """input -> Dense(channels, relu, identity kernel) 'hidden' -> Dense(classes) 'out', wrapped."""
    inputs = tf.keras.Input((channels,))
    hidden = tf.keras.layers.Dense(channels, activation="relu", kernel_initializer="identity",
                                   bias_initializer="zeros", name="hidden")(inputs)
    outputs = tf.keras.layers.Dense(classes, name="out")(hidden)
    return tfprune.wrap(tf.keras.Model(inputs, outputs))


def phase(active: slice, samples: int = 128, seed: int = 0) -> np.ndarray:
    """Inputs whose channels in ``active`` vary and the others are 0."""
    x = np.zeros((samples, 16), np.float32)
    x[:, active] = np.random.default_rng(seed).uniform(0.0, 4.0, (samples, active.stop - active.start))
    return x


FIRST, SECOND = slice(0, 8), slice(8, 16)


class ScriptedMetric(tf.keras.callbacks.Callback):
    """Writes scripted values of 'probe' into the epoch logs and switches the data phase after epoch 0."""

    def __init__(self, values, state):
        super().__init__()
        self.values, self.state = values, state

    def on_epoch_end(self, epoch, logs=None):
        logs["probe"] = self.values[epoch]
        self.state["phase"] = SECOND


class MaskRecorder(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.masks = []

    def on_epoch_end(self, epoch, logs=None):
        self.masks.append(self.model.get_layer("hidden").get_channel_mask())


def fit_with_controller(metric_values, capsys=None):
    tf.keras.utils.set_random_seed(0)
    model = identity_model()
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    state = {"phase": FIRST}
    controller = PruningController(target_sparsity=0.5, data=lambda: phase(state["phase"]), monitor="probe",
                                   trigger_drop=0.1, samples=128, verbose=1)
    recorder = MaskRecorder()
    x, y = phase(FIRST, 32), np.zeros(32, np.int64)
    history = model.fit(x, y, epochs=len(metric_values), verbose=0,
                        callbacks=[ScriptedMetric(metric_values, state), controller, recorder])
    return controller, recorder.masks, history


def test_controller_changes_masks_in_fit_when_the_metric_drops(capsys):
    controller, masks, history = fit_with_controller([0.9, 0.9, 0.5, 0.5])
    assert masks[0].tolist() == [True] * 8 + [False] * 8          # first derivation: silent channels pruned
    assert masks[1].tolist() == masks[0].tolist()                  # no drop yet: unchanged, though data moved
    assert masks[2].tolist() == [False] * 8 + [True] * 8          # the drop re-derived on the latest data
    assert masks[3].tolist() == masks[2].tolist()                  # no further drop from the new best
    assert [e["reason"] for e in controller.events] == ["start", "drop"]
    assert controller.events[1]["restored"] == 8 and controller.events[1]["epoch"] == 3
    assert history.history["qsae_sparsity"] == [0.5] * 4
    assert {"qsae_tau", "qsae_kl"} <= set(history.history)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PruningController")]
    assert len(lines) == 2 and "probe dropped to 0.5" in lines[1]


def test_controller_leaves_masks_alone_when_the_metric_holds():
    controller, masks, _ = fit_with_controller([0.9, 0.92, 0.91, 0.95])
    assert all(mask.tolist() == [True] * 8 + [False] * 8 for mask in masks)
    assert [e["reason"] for e in controller.events] == ["start"]


def test_interval_trigger_and_tensorboard_log(tmp_path):
    model = identity_model()
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    controller = PruningController(kl_budget=0.05, data=phase(FIRST), monitor="loss", interval=2, samples=64,
                                   log_dir=str(tmp_path / "tb"), verbose=0)
    model.fit(phase(FIRST, 16), np.zeros(16), epochs=4, verbose=0, callbacks=[controller])
    # the trigger after the last epoch waits for the next fit, so that training follows it
    assert [(e["reason"], e["epoch"]) for e in controller.events] == [("start", 0), ("interval", 2)]
    model.fit(phase(FIRST, 16), np.zeros(16), epochs=1, verbose=0, callbacks=[controller])
    assert [(e["reason"], e["epoch"]) for e in controller.events][2:] == [("interval", 4)]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_a_pruned_channel_must_beat_a_kept_one_by_the_stickiness_margin():
    from tfprune.prune.qsae.autoencoder import Ranking
    from tfprune.prune.qsae.controller import sticky_ranking

    ranking = Ranking(np.array([0, 1, 2, 3]), np.array([0.5, 0.95, 0.97, 1.0]), np.zeros(4))
    kept = np.array([True, True, False, True])                 # channel 2 is pruned now
    assert sticky_ranking(ranking, kept, 0.0).order.tolist() == [0, 1, 2, 3]
    sticky = sticky_ranking(ranking, kept, 0.1)
    assert sticky.order.tolist() == [0, 2, 1, 3]               # 0.97 does not beat 0.95 * 1.1
    assert np.all(np.diff(sticky.scores[sticky.order]) >= 0) and sticky.scores.max() == 1.0


def test_planted_drift_brings_pruned_channels_back():
    model = identity_model()
    hidden = model.get_layer("hidden")
    original = hidden.layer.kernel.numpy().copy()
    controller = PruningController(kl_budget=0.01, drift_threshold=0.05, verbose=0)
    first = controller.update(model, phase(FIRST))
    assert first["channels_pruned"] == 8 and not hidden.get_channel_mask()[8:].any()
    # training zeroes pruned weights (the mask constraint); do what an optimizer step would
    hidden.layer.kernel.assign(original * hidden.get_mask())
    assert controller.update(model, phase(FIRST, seed=1), force=False) is None       # no drift: nothing to do
    assert controller.drift(model, phase(SECOND)) > 0.05
    event = controller.update(model, np.concatenate([phase(FIRST), phase(SECOND)]), force=False)
    assert event["reason"] == "drift" and event["restored"] >= 8
    assert hidden.get_channel_mask()[8:].all()
    np.testing.assert_array_equal(hidden.layer.kernel.numpy()[:, 8:], original[:, 8:])   # their weights came back


def test_controller_pruned_model_exports_smaller_and_runs_in_tflite_micro():
    from tfprune.datasets import synthetic_images
    from tfprune.models import small_cnn

    x, y = synthetic_images(256, (16, 16, 1), classes=4, seed=0)
    x = (x * 255).astype(np.float32)
    model = small_cnn((16, 16, 1), classes=4, widths=(8, 16))
    dense = tfprune.export(model, x[:64], verify=False, progress=False)
    wrapped = tfprune.wrap(model)
    wrapped.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    controller = PruningController("all", target_sparsity=0.5, data=x, monitor="accuracy", samples=128, verbose=0)
    wrapped.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[controller])
    assert controller.events[0]["channels_pruned"] == 12
    artifact = tfprune.export(wrapped, x[:64], target="cortex-m", verify_data=x[:32], progress=False)
    assert artifact.report["flatbuffer_bytes"] < dense.report["flatbuffer_bytes"]
    assert artifact.report["tflm"]["arena_bytes"] > 0
    assert artifact.report["verification"]["top1_agreement"] >= 0.9


def test_bad_inputs_give_one_line_errors():
    model = identity_model()
    with pytest.raises(ValueError, match="no layer"):
        PruningController(["nope"], verbose=0).update(model, phase(FIRST))
    with pytest.raises(ValueError, match="exactly one"):
        PruningController(kl_budget=0.1, target_sparsity=0.5)
    with pytest.raises(ValueError, match="check_every"):
        PruningController(check_every=0)
    plain = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4, name="a"),
                                 tf.keras.layers.Dense(2, name="b")])
    with pytest.raises(ValueError, match="tfprune.wrap"):
        PruningController(verbose=0).update(plain, np.ones((8, 4), np.float32))
    with pytest.raises(ValueError, match="source"):
        PruningController(source="qsae", verbose=0).update(model, phase(FIRST))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="data="):
        model.fit(phase(FIRST, 8), np.zeros(8), epochs=1, verbose=0, callbacks=[PruningController(verbose=0)])


def test_get_config_round_trip():
    controller = PruningController(["hidden"], target_sparsity=0.25, monitor="val_loss", trigger_drop=0.5,
                                   interval=3, drift_threshold=0.1, check_every=10, samples=64, verbose=0, seed=2)
    config = controller.get_config()
    again = PruningController.from_config(config)
    assert again.get_config() == config and config["layers"] == ["hidden"] and again.data is None


def test_step_checks_and_penultimate_default():
    model = identity_model()
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    controller = PruningController(kl_budget=0.05, data=phase(FIRST), monitor="loss", interval=1, check_every=2,
                                   samples=64, verbose=0)
    model.fit(phase(FIRST, 32), np.zeros(32), batch_size=8, epochs=1, verbose=0, callbacks=[controller])
    assert [e["step"] for e in controller.events] == [0, 2, 4]
    assert list(controller.thresholds) == ["hidden"]


# --- the drift stream and the benchmark paragraph ------------------------------------------

def test_drift_stream_changes_class_mix_and_corruption_and_is_seeded():
    from tfprune.drift import cifar10_drift_stream
    from tfprune.drift import VEHICLES

    rng = np.random.default_rng(0)
    data = ((rng.integers(60, 200, (600, 8, 8, 3)).astype(np.uint8), np.arange(600) % 10),
            (rng.integers(60, 200, (300, 8, 8, 3)).astype(np.uint8), np.arange(300) % 10))
    stream = cifar10_drift_stream(train_per_phase=200, test_per_phase=100, seed=1, data=data)
    again = cifar10_drift_stream(train_per_phase=200, test_per_phase=100, seed=1, data=data)
    assert [p.name for p in stream] == ["clean", "vehicles", "animals", "night"]
    assert all(np.array_equal(a.x_train, b.x_train) for a, b in zip(stream, again))
    vehicle_share = [np.isin(p.y_train, VEHICLES).mean() for p in stream]
    assert vehicle_share[1] > 0.6 > 0.4 > vehicle_share[2]
    assert stream[3].x_test.mean() < stream[0].x_test.mean() - 20
    assert stream[0].x_train.dtype == np.float32 and stream[0].x_train.max() <= 255


def fake_result(method, settings, accuracy, size, seed=0):
    import json

    return {"key": {"method": method, "settings": json.dumps(settings, sort_keys=True), "tier": "standard",
                    "seed": seed}, "accuracy": accuracy, "flatbuffer_bytes": size}


def test_summary_is_computed_from_the_results():
    from benchmarks.qsae_rows import summary

    results = [fake_result("dense-float", {}, 0.87, 320_000), fake_result("dense-int8", {}, 0.87, 96_000),
               fake_result("qsae", {"nonzeros_of_sparsity": 0.75, "interval": 2, "trigger_drop": 0.02}, 0.80, 32_000),
               fake_result("qsae-static", {"nonzeros_of_sparsity": 0.75}, 0.78, 32_000),
               fake_result("l1-filters", {"nonzeros_of_sparsity": 0.75}, 0.70, 33_000)]
    text = summary(results)
    assert "10.0x float" in text and "3.00x int8" in text and "-7.0 points" in text
    assert "does not hold" in text and "+2.0 points" in text and "L1 filters 70.00%" in text
    results[2]["accuracy"] = 0.865
    assert "loses 0.5 points: the claim of about 1 point holds" in summary(results)
    assert summary([fake_result("dense-float", {}, 0.87, 320_000)]) is None
