"""tfprune.compress: the artifact meets the budget, runs in TFLite Micro, and the report is the artifact's."""

from __future__ import annotations

import numpy as np
import pytest

import tfprune
from tfprune.datasets import synthetic_images
from tfprune.prune.budget import Budget, parse_size


def _dense_flash(model, x) -> int:
    return tfprune.export(model, x[:32], verify=False, progress=False).report["flatbuffer_bytes"]


MODELS = {
    "resnet8": lambda: tfprune.models.resnet8(input_shape=(16, 16, 3), classes=4),
    "ds_cnn": lambda: tfprune.models.ds_cnn(input_shape=(16, 8, 1), classes=4),
    "mobilenet_v1": lambda: tfprune.models.mobilenet_v1(0.25, input_shape=(32, 32, 3), classes=4),
    "small_vgg": lambda: tfprune.models.small_vgg(input_shape=(16, 16, 3), classes=4),
}


def _trained(name: str, samples: int = 96):
    """One of MODELS fitted 2 epochs on synthetic images: calibrated activations of a trained model, as
    compress expects. Returns the model and its data (pixel values 0-255)."""
    model = MODELS[name]()
    x, y = synthetic_images(samples, tuple(model.inputs[0].shape[1:]), classes=4, seed=0)
    x = (x * 255).astype("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


@pytest.mark.parametrize("name", sorted(MODELS))
def test_artifact_meets_a_budget_that_needs_every_stage_and_the_report_is_the_artifacts(name):
    model, x, y = _trained(name)
    budget = Budget(flash=int(_dense_flash(model, x) * 0.4))  # below what 16 LUT values alone give

    # 16 values: one width search (clusters="auto" plans three; its own test covers it); each search step
    # converts a candidate, and the budget holds for any number of steps
    result = tfprune.compress(model, (x, y), (x[:48], y[:48]), budget, epochs=1, clusters=16, search_steps=2,
                              verbose=0)

    artifact, report = result.artifact, result.report
    assert result.meets_budget and report["misses"] == []
    assert [stage["stage"] for stage in report["stages"]] == ["reference", "channels", "weights"]
    final = report["final"]
    assert final["flash"] == len(artifact.flatbuffer) <= budget.flash
    assert final["arena"] == artifact.report["tflm"]["arena_bytes"]
    assert final["macs"] == artifact.report["macs"] < report["stages"][0]["macs"]
    assert final["tflm_agreement"] == 1.0
    if name in ("resnet8", "small_vgg"):  # 3x3 convs: 4-bit indices pay for their tables
        assert artifact.report["compression"]["applied"], "the weights stage's LUT encoding is in the artifact"
    assert 0.0 <= final["accuracy"] <= 1.0


def test_a_budget_the_unpruned_model_meets_returns_it_unchanged():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(32, (16, 16, 3), classes=4, seed=0)
    result = tfprune.compress(model, (x, y), (x, y), Budget(flash=10 ** 7), epochs=1, verbose=0)
    assert [stage["stage"] for stage in result.report["stages"]] == ["reference"]
    assert result.model is model


def test_an_unreachable_budget_is_one_line_naming_the_smallest_reached():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(32, (16, 16, 3), classes=4, seed=0)
    with pytest.raises(tfprune.BudgetError, match="smallest artifact reached has flash") as error:
        tfprune.compress(model, (x, y), (x, y), Budget(flash=2000), epochs=0, search_steps=2, verbose=0)
    assert "\n" not in str(error.value)


def test_checkpoints_resume_after_the_last_finished_stage(tmp_path):
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    budget = Budget(flash=int(_dense_flash(model, x) * 0.7))
    first = tfprune.compress(model, (x, y), (x, y), budget, epochs=1, weights="off", checkpoint=tmp_path,
                             search_steps=2, verbose=0)
    again = tfprune.compress(model, (x, y), (x, y), budget, epochs=1, weights="off", checkpoint=tmp_path,
                             search_steps=2, verbose=0)
    assert "resumed" in again.report["stages"][1]["did"]
    assert again.artifact.flatbuffer == first.artifact.flatbuffer


def test_a_time_budget_is_met_on_the_emulated_cortex_m4():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    budget = Budget(time=0.6)
    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, weights="off", search_steps=3, verbose=0)

    reference, final = result.report["stages"][0], result.report["final"]
    assert final["time_measured_as"].startswith("ratio of emulated Cortex-M4 ticks")
    assert final["time"] == round(final["ticks"] / reference["ticks"], 4) <= budget.time
    # the figure is the artifact's: the same firmware run again counts the same ticks
    assert tfprune.emulate(result.artifact, x[:1]).ticks_per_inference == final["ticks"]
    plan = result.report["time_plan"]
    assert plan["time"] == 0.6 and 0 < plan["planned_macs_ratio"] < 1 and plan["dense_ticks"] == reference["ticks"]


@pytest.mark.parametrize("text, size", [("48KB", 49152), ("48 KiB", 49152), ("49152", 49152), ("1.5MB", 1572864)])
def test_sizes_parse_as_embedded_developers_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "empty"), (dict(flash="48 parsecs"), "not a size"), (dict(time=1.5), "ratio"), (dict(macs=-1), "macs"),
])
def test_bad_budgets_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


def test_bad_arguments_are_one_line():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(8, (16, 16, 3), classes=4, seed=0)
    for kwargs, message in ((dict(selector="magic"), "selector"), (dict(weights="zip"), "weights"),
                            (dict(epochs=-1), "epochs"), (dict(allocation="even"), "allocation"),
                            (dict(search_steps=0), "search_steps")):
        with pytest.raises(ValueError, match=message):
            tfprune.compress(model, (x, y), (x, y), Budget(flash=1000), verbose=0, **kwargs)
    with pytest.raises(ValueError, match="no labels"):
        tfprune.compress(model, (x, y), x, Budget(flash=1000), verbose=0)
    with pytest.raises(TypeError, match="Budget"):
        tfprune.compress(model, (x, y), (x, y), {"flash": 1000}, verbose=0)


def test_the_command_writes_the_model_the_artifact_and_the_report(tmp_path):
    import json

    from tfprune.cli import main

    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "val.npz", x=x[:24], y=y[:24])
    flash = int(_dense_flash(model, x) * 0.7)
    args = ["compress", str(tmp_path / "model.keras"), "--train", str(tmp_path / "train.npz"),
            "--val", str(tmp_path / "val.npz"), "--flash", f"{flash}B", "--epochs", "1", "--weights", "off", "--search-steps", "2",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    written = {path.name for path in (tmp_path / "out").iterdir()}
    assert {"model.keras", "model.tflite", "model_data.cc", "report.json", "compress.json"} <= written
    report = json.loads((tmp_path / "out" / "compress.json").read_text())
    assert report["final"]["flash"] == (tmp_path / "out" / "model.tflite").stat().st_size <= flash
    assert main(args) == 2, "an existing output folder is kept unless --force"


def test_uniform_widths_cut_every_group_alike_and_no_further_than_the_budget_needs():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    dense = _dense_flash(model, x)
    budget = Budget(flash=int(dense * 0.7))
    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, allocation="uniform", weights="off",
                              search_steps=4, verbose=0)
    final = result.report["final"]
    assert final["flash"] <= budget.flash
    # one share for all groups: the smallest grid share that fits, not a collapse to a channel or two
    assert final["flash"] > 0.4 * dense
    widths = {layer.name: layer.filters for layer in result.model.layers if hasattr(layer, "filters")}
    originals = {layer.name: layer.filters for layer in model.layers if hasattr(layer, "filters")}
    shares = {round(widths[name] / originals[name], 2) for name in widths}
    assert len(shares) == 1, shares


def test_clustering_alone_keeps_the_most_values_per_channel_that_fit():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    sixteen = tfprune.compress(model, (x, y), (x, y), Budget(flash=_dense_flash(model, x) - 1), epochs=0,
                               channels=False, verbose=0)
    assert "clustered to 16 values" in sixteen.report["stages"][-1]["did"]
    assert sixteen.report["recipe"]["distillation"] == "none", "distillation is off unless asked for"

    budget = Budget(flash=int(sixteen.report["final"]["flash"] * 0.85))
    fewer = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, channels=False, verbose=0)

    did = fewer.report["stages"][-1]["did"]
    assert "clustered to 8 values" in did or "clustered to 4 values" in did, did
    assert fewer.meets_budget and fewer.report["final"]["flash"] == len(fewer.artifact.flatbuffer) <= budget.flash
    assert fewer.report["final"]["tflm_agreement"] == 1.0
    assert fewer.report["final"]["macs"] == sixteen.report["final"]["macs"], "no channel was cut"
    for bad in (32, "many", 4.0):
        with pytest.raises(ValueError, match="clusters must be \"auto\" or an int from 2 to 16"):
            tfprune.compress(model, (x, y), (x, y), budget, clusters=bad, verbose=0)


def test_auto_clusters_keep_the_plan_of_least_validation_loss_and_the_weights_stage_follows_it():
    import re

    model, x, y = _trained("small_vgg", samples=48)
    budget = Budget(flash=int(_dense_flash(model, x) * 0.3))

    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, search_steps=3, verbose=0)

    channels, weights = result.report["stages"][1], result.report["stages"][2]
    losses = {int(count): float(loss) for count, loss in re.findall(r"(\d+) values (\d+\.\d+)", channels["did"])}
    assert set(losses) == {16, 8, 4}, channels["did"]
    planned = int(re.search(r"planned for (\d+) values per channel", channels["did"]).group(1))
    assert losses[planned] == min(losses.values())
    assert f"clustered to {planned} values" in weights["did"]
    assert result.meets_budget and result.report["final"]["flash"] == len(result.artifact.flatbuffer)
    assert result.report["recipe"]["clusters"] == "auto"

    fixed = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, clusters=8, search_steps=3, verbose=0)
    assert "planned for" not in fixed.report["stages"][1]["did"]
    assert "clustered to 8 values" in fixed.report["stages"][2]["did"]


def test_when_the_weights_alone_fit_no_channel_is_cut_and_the_weights_stage_trains_every_epoch():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    budget = Budget(flash=_dense_flash(model, x) - 1)  # 16 LUT values fit without a cut

    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=2, clusters=16, search_steps=2, verbose=0)

    channels, weights = result.report["stages"][1], result.report["stages"][2]
    assert channels["did"].startswith("kept all") and channels["epochs"] == 0
    assert channels["macs"] == result.report["stages"][0]["macs"] == result.report["final"]["macs"]
    assert weights["epochs"] == 2 and "fine-tuned 2 epochs" in weights["did"]
    assert result.meets_budget and result.report["final"]["flash"] == len(result.artifact.flatbuffer)


def test_prune_weights_zero_the_least_sparsity_that_fits_and_decode_prune_stores_them():
    from tfprune.core.count import kernel_sparsity

    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    budget = Budget(flash=int(_dense_flash(model, x) * 0.6))

    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=1, channels=False, weights="prune", verbose=0)

    final, did = result.report["final"], result.report["stages"][-1]["did"]
    assert result.meets_budget and final["flash"] == len(result.artifact.flatbuffer) <= budget.flash
    assert final["tflm_agreement"] == 1.0 and "prune" in result.artifact.report["compression"]["encodings"]
    share = float(did.split("%")[0]) / 100
    assert 0.5 <= share < 0.95 and "fine-tuned 1 epochs" in did
    convs = {name: value for name, value in kernel_sparsity(result.model).items() if name.startswith("conv")}
    assert convs and all(abs(value - share) < 0.01 for value in convs.values()), convs


def test_channels_plan_for_the_sparsity_the_prune_stage_keeps():
    model = MODELS["small_vgg"]()
    x, y = synthetic_images(48, (16, 16, 3), classes=4, seed=0)
    x = (x * 255).astype("float32")
    budget = Budget(flash=int(_dense_flash(model, x) * 0.3))
    result = tfprune.compress(model, (x, y), (x, y), budget, epochs=0, weights="prune", sparsity=0.6,
                              search_steps=3, verbose=0)
    assert [stage["stage"] for stage in result.report["stages"]] == ["reference", "channels", "weights"]
    assert result.report["stages"][-1]["did"].startswith("60% of every Conv2D and Dense kernel zeroed")
    assert result.meets_budget and result.report["final"]["flash"] <= budget.flash
    assert result.report["recipe"]["sparsity"] == 0.6


def test_quantization_aware_training_is_kept_only_where_it_fits_and_measures_better():
    model, x, y = _trained("resnet8")
    budget = Budget(flash=int(_dense_flash(model, x) * 0.6))

    result = tfprune.compress(model, (x, y), (x[:48], y[:48]), budget, epochs=2, qat=True, clusters=16,
                              search_steps=2, verbose=0)

    stages = result.report["stages"]
    assert [stage["stage"] for stage in stages] == ["reference", "channels", "weights", "qat"]
    qat, weights, final = stages[-1], stages[-2], result.report["final"]
    assert "clusters kept (CQAT)" in qat["did"] and qat["epochs"] == 1 and result.report["recipe"]["qat"]
    assert result.meets_budget and final["flash"] == len(result.artifact.flatbuffer) <= budget.flash
    assert final["tflm_agreement"] == 1.0
    # the returned artifact is the better of the two int8 routes that fit, and the report says which
    if qat["kept"]:
        assert final["flash"] == qat["flash"] and qat["accuracy"] >= weights["accuracy"]
        assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in result.model.layers)
    else:
        assert final["flash"] == weights["flash"] and "the previous stage's is kept" in qat["did"]
