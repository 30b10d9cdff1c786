"""Fit the device: a trained model and a :class:`Budget` in, the most accurate artifact that fits out.

The stages, each checked on the exported artifact (:func:`tfprune.export`):

1. **reference**: the unpruned model exported int8; when it already fits, it is
   the answer.
2. **channels**: every tied channel group's sensitivity is measured on the
   validation data (the loss after keeping 75%, 50% and 25% of the group's
   channels, chosen by the ``selector``: ``"l1"``, ``"taylor"``, ``"qsae"`` or
   ``"random"``); widths are allocated by a knapsack over those measured curves
   (a Lagrangian price on int8 weight bytes), and the price is searched until
   the exported artifact, weights encoded as the next stage will encode them,
   meets the budget. The cut is the surgery; the model is then fine-tuned. When
   the planned weights fit the whole model, nothing is cut and the stage's
   epochs go to the weights stage.
3. **weights**: per-channel LUT clustering (at most 16 values, stored 4-bit by
   TFLite Micro's DECODE operator), fine-tuned with tfmot's clustering kept. With
   ``clusters="auto"`` (the default) the channels stage plans widths for 16, 8 and
   4 values per channel (4-, 3- and 2-bit indices) and keeps the plan whose cut and
   clustered model has the least validation loss before fine-tuning: fewer values
   leave more channels, which pays at small budgets (BENCHMARKS.md, "compress").
   Without the channels stage it keeps the most values per channel (16, 8, 4 or 2:
   4, 3, 2 or 1 bit) whose artifact fits, so clustering alone meets budgets 16
   values miss.
   ``weights="prune"`` instead zeroes the smallest weights of every Conv2D and
   Dense kernel (tfmot's magnitude pruning, kept while fine-tuning), stored by
   DECODE PRUNE: a bitmask and the kept int8 values. Without the channels stage
   it takes the least sparsity whose artifact fits; with it, ``sparsity``
   (default 0.5), which the width search plans for.
4. **int8**: post-training quantization calibrated on the training data; with
   ``qat=True`` first a ``qat`` stage: tfmot's quantization-aware training, keeping
   the clusters (CQAT) or zeros (PQAT) the weights stage left, for one eighth of
   the epochs (at least one).

Fine-tuning is the recovery recipe stated in the report: Adam with a cosine
learning-rate decay, random crop and flip for images; ``distill=True`` adds
distillation from the original model (:class:`tfprune.prune.distill.Distiller`).
Distillation is off by default because it did not pay in the benchmark's ablation
(BENCHMARKS.md, "compress": 0.15-1.2 points lower at 48 KB in every pair).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfprune.models import small_cnn
    >>> from tfprune.datasets import synthetic_images
    >>> x, y = synthetic_images(96, (16, 16, 3), classes=4, seed=0)
    >>> model = small_cnn(input_shape=(16, 16, 3), classes=4)
    >>> result = compress(model, (x, y), (x[:32], y[:32]), Budget(flash="12KB"), epochs=1, verbose=0)
    >>> result.meets_budget, result.artifact.report["flatbuffer_bytes"] <= 12 * 1024
    (True, True)
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tfprune.keras_model import check_keras_model, copy_model, labelled_samples, model_sample_shape
from tfprune.prune.budget import Budget

#: Selectors of the channels stage.
SELECTORS = ("l1", "taylor", "qsae", "random")
#: How the channels stage allocates widths.
ALLOCATIONS = ("sensitivity", "uniform")
#: Weight encodings of the weights stage.
WEIGHT_ENCODINGS = ("lut", "prune", "off")
#: Values per channel the weights stage tries, most first: 4-, 3-, 2- and 1-bit DECODE LUT indices.
CLUSTER_COUNTS = (16, 8, 4, 2)
#: Values per channel the channels stage plans widths for with ``clusters="auto"``, most first.
AUTO_CLUSTER_COUNTS = (16, 8, 4)
#: Shares of zeros the PRUNE weights stage tries without the channels stage, fewest first.
SPARSITY_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
#: The share of zeros the channels stage plans for when ``weights="prune"`` and no ``sparsity`` is given.
PLANNED_SPARSITY = 0.5
#: Share of the PRUNE stage's training steps over which sparsity ramps up (tfmot's polynomial schedule).
SPARSITY_RAMP = 2 / 3
#: Shares of a group's channels kept when its sensitivity is measured.
SENSITIVITY_LEVELS = (0.75, 0.5, 0.25)
#: Shares of a group's channels the allocation chooses among.
WIDTH_GRID = (1.0, 0.875, 0.75, 0.625, 0.5, 0.4375, 0.375, 0.3125, 0.25, 0.1875, 0.125)
#: Weight of the convex term that spreads a cut where measured losses are flat (nats).
SPREAD = 0.01
#: Prices of a byte (loss per share of the model's int8 bytes) the search bisects between, and its steps.
PRICE_RANGE = (1e-3, 1e4)
PRICE_STEPS = 8
#: Share of the flash and arena budgets the width search leaves free: the fine-tuned clusters can
#: encode a little larger than the evenly spaced ones the search simulates.
PLANNING_MARGIN = 0.03
#: Exported trials of giving channels back after the price search.
GIVE_BACK_TRIES = 6
#: Samples of the validation data that sensitivity is measured on.
SENSITIVITY_SAMPLES = 1000


class BudgetError(ValueError):
    """The budget cannot be met: the message names the smallest figures reached."""


@dataclass
class CompressResult:
    """What :func:`compress` returns: the trained ``model``, its ``artifact``, the ``report``, the ``history``.

    ``report["stages"]`` lists every stage with what it did, the artifact's
    bytes, arena, MACs and accuracy after it, and its seconds.
    """

    model: Any
    artifact: Any
    report: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def meets_budget(self) -> bool:
        """Whether the final artifact fits every limit of the budget."""
        return not self.report["misses"]

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the artifact's files, ``model.keras`` and ``compress.json`` into ``directory``."""
        target = self.artifact.save(directory, overwrite=overwrite)
        self.model.save(target / "model.keras")
        _write_json(target / "compress.json", self.report)
        return target


@dataclass
class _Context:
    """What every stage reads: the teacher, the data, the recipe and the budget."""

    teacher: Any
    train: Any
    x_val: np.ndarray
    y_val: np.ndarray
    calibration: np.ndarray
    budget: Budget
    dense_macs: int
    batch_size: int
    learning_rate: float
    augment: bool
    distill: bool
    seed: int
    verbose: int
    search_steps: int = 8
    # the time budget: the unpruned model's emulated ticks, and the MACs ratio the search plans to
    dense_ticks: int | None = None
    time_macs: float | None = None
    time_plan: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    # exported candidates of the width search, by (widths, encoding): the search revisits prices
    candidates: dict[Any, tuple[bool, dict[str, Any]]] = field(default_factory=dict)


def compress(
    model: Any,
    train: Any,
    val: Any,
    budget: Budget,
    *,
    epochs: int = 10,
    selector: str = "l1",
    allocation: str = "sensitivity",
    channels: bool = True,
    weights: str = "lut",
    clusters: int | str = "auto",
    sparsity: float | None = None,
    qat: bool = False,
    distill: bool = False,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    augment: bool = True,
    representative: Any = None,
    checkpoint: str | Path | None = None,
    search_steps: int = PRICE_STEPS,
    seed: int = 0,
    verbose: int = 1,
) -> CompressResult:
    """The most accurate int8 artifact of ``model`` that fits ``budget`` (see the module docstring).

    Args:
        model: a trained tf.keras Sequential or functional classifier (not changed).
        train: ``(x, y)`` arrays (augmented when they are images and ``augment``)
            or a ``tf.data`` of ``(x, y)`` batches.
        val: ``(x, y)`` arrays: sensitivity and the artifact's accuracy are measured on them.
        budget: the :class:`Budget` to fit.
        epochs: fine-tuning epochs in total, shared by the stages that train.
        selector: which channels of a group go: ``"l1"``, ``"taylor"``, ``"qsae"``, ``"random"``.
        allocation: ``"sensitivity"`` (widths from the measured curves) or
            ``"uniform"`` (one share for every group: the classic L1-filters baseline).
        channels: run the channels stage.
        weights: ``"lut"`` (per-channel clustering, 4-bit LUT), ``"prune"`` (magnitude
            sparsity, DECODE PRUNE) or ``"off"``.
        clusters: values per channel the weights stage keeps (2 to 16), or ``"auto"``: the
            channels stage plans for 16, 8 and 4 and keeps the plan of least validation
            loss; with ``channels=False`` the most values (of ``clusters``, 8, 4, 2) that fit.
        sparsity: with ``weights="prune"``, the share of zeros of each Conv2D and Dense
            kernel; default: the least that fits without the channels stage, 0.5 with it.
        qat: end with quantization-aware training (tfmot; the returned model then holds its
            wrappers: load a saved one inside ``tfprune.baselines.qat_scope()``).
        distill: fine-tune against the original model's soft targets as well as the labels
            (off by default: it did not pay in the benchmark's ablation).
        batch_size, learning_rate: the fine-tuning recipe (Adam, cosine decay).
        augment: random crop and flip of image data while fine-tuning.
        representative: int8 calibration samples; default the first 500 of ``train``.
        checkpoint: a folder where each finished stage is kept; a later call with
            the same folder continues after the last finished stage.
        search_steps: bisection steps of the width search (each converts and
            measures a candidate); fewer is faster and lands less close to the budget.
        seed: seeds the selection, the training and the data order.
        verbose: 0 silent, 1 one line per stage (and Keras progress on a terminal).

    Raises:
        BudgetError: when even the smallest model the stages can make misses the budget.
    """
    check_keras_model(model)
    _check_arguments(epochs, selector, weights, batch_size, learning_rate)
    if clusters != "auto" and (isinstance(clusters, bool) or not isinstance(clusters, int)
                               or not 2 <= clusters <= 16):
        raise ValueError(f"clusters must be \"auto\" or an int from 2 to 16 (values per channel, 4-bit LUT at "
                         f"most), got {clusters!r}")
    if not isinstance(qat, bool):
        raise ValueError(f"qat must be True or False, got {qat!r}")
    if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))
                                 or not 0 < sparsity < 1):
        raise ValueError(f"sparsity must be a share of zeros between 0 and 1, got {sparsity!r}")
    if isinstance(search_steps, bool) or not isinstance(search_steps, int) or search_steps < 1:
        raise ValueError(f"search_steps must be a positive int, got {search_steps!r}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a tfprune.Budget, got {type(budget).__name__}")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    shape = model_sample_shape(model)
    x_val, y_val = labelled_samples(val, shape)
    if y_val is None:
        raise ValueError("val has no labels; give (x, y) arrays")
    calibration = labelled_samples(representative if representative is not None else train, shape, 500)[0]
    context = _Context(
        teacher=model, train=train, x_val=x_val, y_val=y_val, calibration=calibration, budget=budget,
        dense_macs=0, batch_size=batch_size, learning_rate=learning_rate, augment=augment,
        distill=distill, seed=seed, verbose=verbose, search_steps=search_steps)
    store = _Checkpoints(checkpoint)
    stages: list[dict[str, Any]] = []

    reference, figures = _stage(stages, store, "reference", context, model,
                                lambda: (model, "exported the unpruned model int8"), train_epochs=0)
    context.dense_macs, context.dense_ticks = figures["macs"], figures.get("ticks")
    current, artifact = reference, figures["artifact"]
    if budget.misses(figures):
        split = _epoch_split(epochs, channels, weights != "off", qat)
        options = _encodings(weights, clusters, sparsity, channels)
        if channels:
            current, figures = _stage(
                stages, store, "channels", context, current,
                lambda: _channels_stage(current, context, selector, allocation, options, split["channels"]),
                train_epochs=split["channels"])
            if figures["macs"] == context.dense_macs and weights != "off":
                # nothing was cut (the planned weights fit the whole model): the weights stage trains instead
                figures["epochs"], split["weights"] = 0, split["weights"] + split["channels"]
        if weights != "off":
            current, figures = _stage(
                stages, store, "weights", context, current,
                lambda: _weights_stage(current, context, _first_fitting(current, context, options), split["weights"]),
                train_epochs=split["weights"])
        if qat:
            preserve = {"lut": "clusters", "prune": "sparsity"}.get(weights)
            before = current, figures
            current, figures = _stage(stages, store, "qat", context, current,
                                      lambda: _qat_stage(current, context, preserve, split["qat"]),
                                      train_epochs=split["qat"])
            current, figures = _better_int8(before, (current, figures), stages[-1], budget)
        artifact = figures["artifact"]
    misses = budget.misses(figures)
    report = {
        "budget": budget.as_dict(),
        "misses": misses,
        "recipe": _recipe(context, epochs, selector, allocation, weights, clusters, sparsity, qat, channels),
        "time_plan": context.time_plan,
        "stages": [{key: value for key, value in stage.items() if key != "artifact"} for stage in stages],
        "final": {key: value for key, value in figures.items() if key != "artifact"},
    }
    if misses:
        raise BudgetError(f"the budget cannot be met: the smallest artifact reached has {_describe(figures)} "
                          f"({'; '.join(misses)})")
    return CompressResult(current, artifact, report, context.history)


# --- stages -----------------------------------------------------------------------------------


def _stage(stages: list[dict[str, Any]], store: _Checkpoints, name: str, context: _Context, model: Any,
           run: Callable[[], tuple[Any, str]], train_epochs: int) -> tuple[Any, dict[str, Any]]:
    """Run (or resume) one stage, export its model and record its figures."""
    started = time.perf_counter()
    done = store.load(name)
    if done is not None:
        result, did = done
        did += " (resumed from the checkpoint)"
    else:
        result, did = run()
    figures = measure(result, context)
    entry = {"stage": name, "did": did, "epochs": train_epochs, **figures,
             "seconds": round(time.perf_counter() - started, 1)}
    if done is None:
        store.save(name, result, did)
    stages.append(entry)
    _say(context, f"{name}: {did}; {_describe(figures)}, int8 accuracy {figures['accuracy']:.2%}")
    return result, entry


def _channels_stage(model: Any, context: _Context, selector: str, allocation: str,
                    encodings: list[tuple[str, float]], epochs: int) -> tuple[Any, str]:
    """Cut ``model``'s channels to widths whose artifact, weights encoded as planned, meets the budget.

    With several ``encodings`` (``clusters="auto"``) widths are planned for each and
    the plan of least validation loss before fine-tuning is kept.
    """
    from tfprune.core.graph import channel_groups

    groups = channel_groups(model)
    if encodings[0][0] != "off" and _fits(model, groups, {}, {}, context, encodings[0])[0]:
        # checked before the sensitivities are measured: they would rank channels no cut needs
        channels = sum(group.size for group in groups)
        return copy_model(model), (f"kept all {channels} channels: the weights as planned "
                                   f"({_described(encodings[0])}) fit without a cut, so the weights stage "
                                   "trains its epochs")
    importance = _importance(model, selector, context, groups)
    groups = [group for group in groups if group.id in importance]
    curves = _sensitivities(model, groups, importance, context) if allocation == "sensitivity" else \
        _uniform_curves(groups)
    if context.budget.time is not None and context.dense_ticks:
        context.time_macs = _time_as_macs(model, groups, importance, context)
    widths, planned = _plan_widths(model, groups, importance, curves, context, encodings,
                                   give_back=allocation == "sensitivity")
    kept = sum(widths.values())
    total = sum(group.size for group in groups)
    if kept == total and encodings[0][0] != "off":
        return copy_model(model), (f"kept all {total} channels ({selector} selector{planned}): the planned "
                                   f"weights fit without a cut, so the weights stage trains its epochs")
    from tfprune.prune.channels import prune_to_widths

    small = prune_to_widths(model, widths, importance, groups=groups)
    small = _fine_tune(small, context, epochs, "channels")
    return small, (f"kept {kept} of {total} channels ({selector} selector, {allocation} widths{planned}), "
                   f"fine-tuned {epochs} epochs")


def _plan_widths(model: Any, groups: list[Any], importance: dict[int, np.ndarray],
                 curves: dict[int, dict[str, Any]], context: _Context, encodings: list[tuple[str, float]],
                 give_back: bool) -> tuple[dict[int, int], str]:
    """The widths for the one of ``encodings`` whose fitting plan loses least on the validation data.

    Each plan is the model cut to its widths, its kernels given the encoding's
    values, before fine-tuning; its loss is measured on the sensitivity samples.
    Returns the widths and, when there was a choice, a note of the losses.
    """
    if len(encodings) == 1:
        return _search_widths(model, groups, importance, curves, context, encodings[0], give_back), ""
    from tfprune.prune.channels import prune_to_widths

    x, y = context.x_val[:SENSITIVITY_SAMPLES], context.y_val[:SENSITIVITY_SAMPLES]
    plans, error = [], None
    for encoding in encodings:
        try:
            widths = _search_widths(model, groups, importance, curves, context, encoding, give_back)
        except BudgetError as missed:
            error = missed
            continue
        candidate = prune_to_widths(model, widths, importance, groups=groups)
        _simulate(candidate, encoding)
        plans.append((_loss(candidate, x, y), encoding, widths))
    if not plans:
        raise error
    _, encoding, widths = min(plans, key=lambda plan: plan[0])
    losses = ", ".join(f"{int(amount)} values {plan_loss:.2f}" for plan_loss, (_, amount), _ in plans)
    return widths, f"; planned for {int(encoding[1])} values per channel, validation loss before fine-tuning: {losses}"


def _weights_stage(model: Any, context: _Context, encoding: tuple[str, float], epochs: int) -> tuple[Any, str]:
    kind, amount = encoding
    if kind == "prune":
        return _prune_stage(model, context, float(amount), epochs)
    from tfprune.baselines import cluster_strip, cluster_wrap

    wrapped = cluster_wrap(model, int(amount))
    wrapped = _fine_tune(wrapped, context, epochs, "weights", learning_rate=context.learning_rate / 10)
    return cluster_strip(wrapped), f"clustered to {int(amount)} values per channel, fine-tuned {epochs} epochs"


def _better_int8(ptq: tuple[Any, dict[str, Any]], qat: tuple[Any, dict[str, Any]], entry: dict[str, Any],
                 budget: Budget) -> tuple[Any, dict[str, Any]]:
    """The QAT model where its artifact meets the budget and is at least as accurate on the validation
    data as the post-training quantized one before it, else that one; ``entry`` (the qat stage's) says which."""
    missed = budget.misses(qat[1])
    if missed and not budget.misses(ptq[1]):
        entry["did"] += f"; its artifact missed the budget ({'; '.join(missed)}): the previous stage's is kept"
        entry["kept"] = False
        return ptq
    if qat[1]["accuracy"] < ptq[1]["accuracy"]:
        entry["did"] += (f"; int8 accuracy {qat[1]['accuracy']:.2%} against {ptq[1]['accuracy']:.2%} post-training "
                         f"quantized: the previous stage's is kept")
        entry["kept"] = False
        return ptq
    entry["kept"] = True
    return qat


def _qat_stage(model: Any, context: _Context, preserve: str | None, epochs: int) -> tuple[Any, str]:
    from tfprune.baselines import qat_wrap

    wrapped = qat_wrap(model, preserve)
    wrapped = _fine_tune(wrapped, context, epochs, "qat", learning_rate=context.learning_rate / 10)
    kept = {"clusters": ", clusters kept (CQAT)", "sparsity": ", zeros kept (PQAT)"}.get(preserve, "")
    return wrapped, f"quantization-aware training{kept}, fine-tuned {epochs} epochs"


def _prune_stage(model: Any, context: _Context, sparsity: float, epochs: int) -> tuple[Any, str]:
    """tfmot magnitude pruning to ``sparsity``, ramped over the first :data:`SPARSITY_RAMP` of the stage's steps."""
    from tfprune.baselines import magnitude_callbacks, magnitude_strip, magnitude_wrap, zero_smallest_weights

    did = f"{sparsity:.0%} of every Conv2D and Dense kernel zeroed by magnitude"
    if epochs == 0:
        return zero_smallest_weights(copy_model(model), sparsity), f"{did}, not fine-tuned"
    steps = epochs * _training_data(context)[1]
    wrapped = magnitude_wrap(model, sparsity, end_step=max(1, int(steps * SPARSITY_RAMP)))
    wrapped = _fine_tune(wrapped, context, epochs, "weights", callbacks=magnitude_callbacks())
    return magnitude_strip(wrapped), f"{did}, fine-tuned {epochs} epochs"


def _encodings(weights: str, clusters: int | str, sparsity: float | None,
               channels: bool) -> list[tuple[str, float]]:
    """The weight encodings the stages may use, the least lossy first: the channels stage plans for the
    one of least loss, and the weights stage takes the first whose artifact fits."""
    if weights == "lut":
        if clusters == "auto":
            return [("lut", count) for count in (AUTO_CLUSTER_COUNTS if channels else CLUSTER_COUNTS)]
        fewer = [] if channels else [count for count in CLUSTER_COUNTS if count < clusters]
        return [("lut", clusters), *(("lut", count) for count in fewer)]
    if weights == "prune":
        if sparsity is not None:
            return [("prune", sparsity)]
        return [("prune", PLANNED_SPARSITY)] if channels else [("prune", share) for share in SPARSITY_GRID]
    return [("off", 0)]


def _described(encoding: tuple[str, float]) -> str:
    """An encoding in words: "16 values per channel", "50% sparse"."""
    kind, amount = encoding
    return f"{int(amount)} values per channel" if kind == "lut" else f"{amount:.0%} sparse"


def _first_fitting(model: Any, context: _Context, encodings: list[tuple[str, float]]) -> tuple[str, float]:
    """The first of ``encodings`` whose artifact meets the planning budget, else the last: the stage
    then measures the smallest and the budget check says what it missed."""
    if len(encodings) == 1:
        return encodings[0]
    for encoding in encodings:
        candidate = copy_model(model)
        _simulate(candidate, encoding)
        if not _planning_budget(context).misses(_candidate_figures(candidate, context)):
            return encoding
    return encodings[-1]


# --- measuring --------------------------------------------------------------------------------


def measure(model: Any, context: _Context) -> dict[str, Any]:
    """Export ``model`` for Cortex-M and measure the artifact: bytes, arena, MACs, time, accuracy."""
    import tfprune
    from tfprune.deploy.verify import tflite_accuracy

    artifact = tfprune.export(model, context.calibration, target="cortex-m", verify_data=context.x_val[:200],
                              progress=False)
    figures = _artifact_figures(artifact, context)
    if context.budget.time is not None:
        figures.update(_emulated_time(artifact, context))
    reference = artifact.reference_flatbuffer or artifact.flatbuffer
    figures["accuracy"] = round(tflite_accuracy(reference, context.x_val, context.y_val), 6)
    figures["tflm_agreement"] = (artifact.report.get("verification") or {}).get("top1_agreement")
    figures["artifact"] = artifact
    return figures


def _artifact_figures(artifact: Any, context: _Context) -> dict[str, Any]:
    report = artifact.report
    return _figures(int(report["flatbuffer_bytes"]), int(report["tflm"]["arena_bytes"]), int(report["macs"]), context)


def _figures(flash: int, arena: int, macs: int, context: _Context) -> dict[str, Any]:
    return {
        "flash": flash,
        "arena": arena,
        "macs": macs,
        # the ratio of MACs; a stage's artifact is emulated when the budget has a time (_emulated_time)
        "time": round(macs / context.dense_macs, 4) if context.dense_macs else 1.0,
        "time_measured_as": "MACs ratio to the unpruned model",
    }


def _emulated_time(artifact: Any, context: _Context) -> dict[str, Any]:
    """``time`` as the ratio of emulated Cortex-M4 ticks (CMSIS-NN) to the unpruned model's, with ``ticks``.

    Without the emulator's tools the MACs ratio stays, and ``time_measured_as`` says why.
    """
    from tfprune.deploy.emulate import EmulatorUnavailable, emulate

    try:
        ticks = emulate(artifact, context.calibration[:1]).ticks_per_inference
    except EmulatorUnavailable as error:
        return {"time_measured_as": f"MACs ratio to the unpruned model (no emulator: {error})"}
    return {"ticks": ticks, "time": round(ticks / (context.dense_ticks or ticks), 4),
            "time_measured_as": "ratio of emulated Cortex-M4 ticks (CMSIS-NN) to the unpruned model's"}


def _time_as_macs(model: Any, groups: list[Any], importance: dict[int, np.ndarray], context: _Context) -> float:
    """The MACs ratio the width search plans to so that the emulated time meets ``budget.time``.

    Ticks do not fall as fast as MACs (CMSIS-NN does more work per MAC in narrow layers), so
    the search's candidates, measured in MACs, need a tighter target: the line through the
    emulated ticks of the unpruned model and of a probe with every group at half width.
    """
    import tfprune
    from tfprune.prune.channels import prune_to_widths

    probe = prune_to_widths(model, {group.id: max(1, group.size // 2) for group in groups}, importance, groups=groups)
    artifact = tfprune.export(probe, context.calibration, target="cortex-m", verify=False, progress=False)
    measured = _emulated_time(artifact, context)
    if "ticks" not in measured:
        return context.budget.time
    probe_macs, probe_ticks = int(artifact.report["macs"]), measured["ticks"]
    per_mac = (context.dense_ticks - probe_ticks) / max(context.dense_macs - probe_macs, 1)
    fixed = context.dense_ticks - per_mac * context.dense_macs
    macs = (context.budget.time * context.dense_ticks - fixed) / per_mac if per_mac > 0 else context.dense_macs
    ratio = float(np.clip(macs / context.dense_macs, 0.0, 1.0)) * (1 - PLANNING_MARGIN)
    context.time_plan = {"time": context.budget.time, "planned_macs_ratio": round(ratio, 4),
                         "dense_ticks": context.dense_ticks, "probe_ticks": probe_ticks,
                         "probe_macs_ratio": round(probe_macs / context.dense_macs, 4)}
    _say(context, f"time: {context.budget.time:.2f} of the unpruned model's emulated ticks is planned as "
                  f"{ratio:.2f} of its MACs (a half-width probe ran {probe_ticks / context.dense_ticks:.2f} of its "
                  f"ticks at {probe_macs / context.dense_macs:.2f} of its MACs)")
    return ratio


def _describe(figures: dict[str, Any]) -> str:
    return (f"flash {figures['flash']:,} B, arena {figures['arena']:,} B, {figures['macs']:,} MACs "
            f"(time {figures['time']:.2f} of the unpruned model)")


# --- channel allocation ------------------------------------------------------------------------


def _importance(model: Any, selector: str, context: _Context, groups: list[Any]) -> dict[int, np.ndarray]:
    if selector == "qsae":
        from tfprune.prune.qsae.selector import group_importance as qsae_importance

        found = qsae_importance(model, context.x_val, seed=context.seed)
        return {group.id: found[group.id] for group in groups if group.id in found}
    from tfprune.prune.channels import group_importance

    data = (context.x_val[:256], context.y_val[:256])
    return group_importance(model, selector, data, groups=groups, seed=context.seed)


def _sensitivities(model: Any, groups: list[Any], importance: dict[int, np.ndarray],
                   context: _Context) -> dict[int, dict[str, Any]]:
    """Per group: the validation loss at each kept share, and the int8 bytes one channel costs."""
    from tfprune.core.count import int8_weight_bytes
    from tfprune.prune.channels import prune_to_widths

    x, y = context.x_val[:SENSITIVITY_SAMPLES], context.y_val[:SENSITIVITY_SAMPLES]
    base_loss, base_bytes = _loss(model, x, y), int8_weight_bytes(model)
    curves = {}
    for group in groups:
        points, per_channel = {1.0: base_loss}, []
        for share in SENSITIVITY_LEVELS:
            width = max(1, int(round(share * group.size)))
            if width == group.size:
                continue
            smaller = prune_to_widths(model, {group.id: width}, importance, groups=groups)
            points[width / group.size] = max(_loss(smaller, x, y), base_loss)
            per_channel.append((base_bytes - int8_weight_bytes(smaller)) / (group.size - width))
        # a share of the model's bytes, so that prices are comparable across models
        share = float(np.mean(per_channel)) / base_bytes if per_channel else 0.0
        curves[group.id] = {"points": points, "bytes_per_channel": share}
    return curves


def _uniform_curves(groups: list[Any]) -> dict[int, dict[str, Any]]:
    """Curves under which :func:`_allocate` gives every group the same share, moving smoothly with the price.

    Every group gets the same convex "loss" ``(1 - share)**2`` and the same cost
    per share of its channels, so all choose the same grid share, and a higher
    price lowers it step by step (a linear loss would jump from all to nothing).
    """
    shares = sorted({0.0, *WIDTH_GRID})
    return {group.id: {"points": {share: (1.0 - share) ** 2 for share in shares},
                       "bytes_per_channel": 1.0 / group.size} for group in groups}


def _loss(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from tfprune.prune.distill import output_logits
    import tensorflow as tf

    logits = output_logits(model, model.predict(x, batch_size=256, verbose=0))
    return float(tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


def _allocate(groups: list[Any], curves: dict[int, dict[str, Any]], price: float) -> dict[int, int]:
    """Each group's width minimizing predicted loss + price * bytes, over :data:`WIDTH_GRID`.

    A small convex term ``SPREAD * (1 - share)**2`` is added to the measured
    loss: where the measured curves are flat (an undertrained model, or noise),
    it spreads the cut over the groups instead of emptying one, and it makes the
    allocation move gradually with the price, so the search can stop close to
    the budget.
    """
    widths = {}
    for group in groups:
        curve = curves[group.id]
        shares = sorted(curve["points"])
        losses = [curve["points"][share] for share in shares]
        best, best_cost = group.size, math.inf
        for share in WIDTH_GRID:
            width = max(1, int(round(share * group.size)))
            kept = width / group.size
            # below the lowest measured share the loss is extrapolated flat; the spread term still grows
            loss = float(np.interp(kept, shares, losses)) + SPREAD * (1.0 - kept) ** 2
            cost = loss + price * curve["bytes_per_channel"] * width
            if cost < best_cost - 1e-12:
                best, best_cost = width, cost
        widths[group.id] = best
    return widths


def _search_widths(model: Any, groups: list[Any], importance: dict[int, np.ndarray],
                   curves: dict[int, dict[str, Any]], context: _Context, encoding: tuple[str, float],
                   give_back: bool = True) -> dict[int, int]:
    """The cheapest-loss widths whose exported artifact (weights encoded as planned) meets the budget.

    Bisection on the price of a byte (log scale, :data:`PRICE_RANGE`): the
    smallest allocation is tried first, so an unreachable budget fails at once.
    """
    def fits(price: float) -> tuple[bool, dict[str, Any] | None]:
        return _fits(model, groups, importance, _allocate(groups, curves, price), context, encoding)

    whole = {group.id: group.size for group in groups}
    if _fits(model, groups, importance, whole, context, encoding)[0]:  # the planned weights alone fit
        return whole
    low, high = PRICE_RANGE
    fitting, smallest = fits(high)
    while smallest is None and high > low * 10:  # the smallest cut may leave activations TFLite Micro rejects
        high /= 10
        fitting, smallest = fits(high)
    if not fitting:
        reached = _describe(smallest) if smallest else "no artifact TFLite Micro can run"
        raise BudgetError(f"the budget cannot be met: the smallest artifact reached has {reached}")
    for _ in range(context.search_steps):
        middle = math.sqrt(low * high)
        if fits(middle)[0]:
            high = middle
        else:
            low = middle
    widths = _allocate(groups, curves, high)
    return _give_back(model, groups, importance, curves, widths, context, encoding) if give_back else widths


def _give_back(model: Any, groups: list[Any], importance: dict[int, np.ndarray], curves: dict[int, dict[str, Any]],
               widths: dict[int, int], context: _Context, encoding: tuple[str, float]) -> dict[int, int]:
    """Widen groups one grid step at a time, least loss per byte first, while the artifact still fits.

    The allocation jumps between prices (widths are a grid); what the budget
    still allows after the search is given back where it buys the most loss.
    """
    by_id = {group.id: group for group in groups}
    for _ in range(min(GIVE_BACK_TRIES, context.search_steps)):
        options = []
        for group_id, width in widths.items():
            size = by_id[group_id].size
            wider = min(size, width + max(1, int(round(size / 16))))
            if wider == width:
                continue
            curve = curves[group_id]
            shares = sorted(curve["points"])
            losses = [curve["points"][share] for share in shares]
            gain = float(np.interp(width / size, shares, losses) - np.interp(wider / size, shares, losses))
            cost = max(curve["bytes_per_channel"] * (wider - width), 1e-9)
            options.append((gain / cost, group_id, wider))
        for _, group_id, wider in sorted(options, reverse=True):
            trial = {**widths, group_id: wider}
            if _fits(model, groups, importance, trial, context, encoding)[0]:
                widths = trial
                break
        else:
            return widths
    return widths


def _fits(model: Any, groups: list[Any], importance: dict[int, np.ndarray], widths: dict[int, int],
          context: _Context, encoding: tuple[str, float]) -> tuple[bool, dict[str, Any] | None]:
    """Whether the model cut to ``widths``, weights encoded as planned (``encoding``), exports within the budget."""
    key = (tuple(sorted(widths.items())), encoding)
    if key not in context.candidates:
        from tfprune.prune.channels import prune_to_widths

        candidate = prune_to_widths(model, widths, importance, groups=groups)
        _simulate(candidate, encoding)
        try:
            figures = _candidate_figures(candidate, context)
        except ValueError:  # TFLite Micro cannot run it (e.g. an activation a cut emptied): not a candidate
            context.candidates[key] = (False, None)
        else:
            context.candidates[key] = (not _planning_budget(context).misses(figures), figures)
    return context.candidates[key]


def _planning_budget(context: _Context) -> Budget:
    """The budget the search's candidates must meet: :data:`PLANNING_MARGIN` off the flash and arena,
    and the time as the MACs ratio :func:`_time_as_macs` planned (candidates' ``time`` is their MACs ratio)."""
    budget = context.budget

    def tighter(limit: int | None) -> int | None:
        return None if limit is None else max(1, int(limit * (1 - PLANNING_MARGIN)))

    time = context.time_macs if context.time_macs is not None else budget.time
    return Budget(flash=tighter(budget.flash), arena=tighter(budget.arena), macs=budget.macs,
                  time=max(time, 1e-6) if time is not None else None)


def _simulate(model: Any, encoding: tuple[str, float]) -> None:
    """Give ``model``'s kernels the values the weights stage will leave: ``("lut", values)``,
    ``("prune", sparsity)`` or ``("off", 0)`` (unchanged)."""
    from tfprune.baselines import zero_smallest_weights

    kind, amount = encoding
    if kind == "lut":
        _simulate_clustering(model, int(amount))
    elif kind == "prune":
        zero_smallest_weights(model, float(amount))


def _simulate_clustering(model: Any, clusters: int = 16) -> None:
    """Give every kernel :func:`tfprune.baselines.cluster_wrap` would cluster ``clusters`` evenly spaced values.

    Fine-tuned centroids differ, but the encoded size depends only on how many
    values a table holds, so the candidate's bytes are those of the clustered model.
    """
    from tfprune.baselines import clusterable

    for layer in model.layers:
        if not clusterable(layer, clusters):
            continue
        kernel = layer.kernel.numpy()
        axes = tuple(range(kernel.ndim - 1)) if kernel.ndim == 4 else None  # Conv2D per channel, Dense per tensor
        low, high = kernel.min(axis=axes, keepdims=True), kernel.max(axis=axes, keepdims=True)
        step = np.where(high > low, (high - low) / (clusters - 1), 1.0)
        layer.kernel.assign(low + np.round((kernel - low) / step) * step)


def _candidate_figures(model: Any, context: _Context) -> dict[str, Any]:
    """Bytes, arena and MACs of ``model``'s int8 flatbuffer as export stores it (lean, then DECODE where it pays),
    without the C sources and the verification export adds."""
    from tfprune.deploy.flatbuffer import read_model
    from tfprune.deploy.micro import MicroRunner
    from tfprune.deploy.pipeline import micro_flatbuffer
    from tfprune.deploy.tflite import convert

    flatbuffer = micro_flatbuffer(convert(model, context.calibration[:64]), "auto", True, None)[0]
    return _figures(len(flatbuffer), MicroRunner(flatbuffer).arena_bytes, read_model(flatbuffer).macs, context)


# --- fine-tuning ------------------------------------------------------------------------------


def _fine_tune(model: Any, context: _Context, epochs: int, stage: str, learning_rate: float | None = None,
               callbacks: list[Any] | None = None) -> Any:
    """Train ``model`` for ``epochs`` with the recipe: Adam, cosine decay, augmentation, distillation."""
    if epochs == 0:
        return model
    import tensorflow as tf

    from tfprune.prune.distill import Distiller

    dataset, steps = _training_data(context)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate or context.learning_rate, epochs * steps)
    optimizer = tf.keras.optimizers.Adam(schedule)
    student = Distiller(model, context.teacher, alpha=0.9 if context.distill else 0.0)
    student.compile(optimizer, metrics=["accuracy"])
    verbose = (1 if sys.stdout.isatty() else 2) if context.verbose else 0
    history = student.fit(dataset, epochs=epochs, verbose=verbose, callbacks=callbacks or [])
    for key, values in history.history.items():
        context.history.setdefault(f"{stage}_{key}", []).extend(float(v) for v in values)
    return model


def _training_data(context: _Context) -> tuple[Any, int]:
    import tensorflow as tf

    train = context.train
    if isinstance(train, tf.data.Dataset):
        steps = int(train.cardinality())
        return train, max(steps, 1)
    x, y = labelled_samples(train, model_sample_shape(context.teacher))
    if y is None:
        raise ValueError("train has no labels; give (x, y) arrays or a tf.data of (x, y) batches")
    from tfprune.datasets import image_dataset

    augment = context.augment and x.ndim == 4
    dataset = image_dataset(x, y, context.batch_size, augment=augment, seed=context.seed, shuffle=True)
    return dataset, math.ceil(len(x) / context.batch_size)


def _epoch_split(epochs: int, channels: bool, weights: bool, qat: bool = False) -> dict[str, int]:
    qat_epochs = min(epochs, max(1, round(epochs / 8))) if qat else 0
    epochs -= qat_epochs
    if channels and weights:
        weight_epochs = max(1, epochs // 3) if epochs > 1 else 0
        return {"channels": epochs - weight_epochs, "weights": weight_epochs, "qat": qat_epochs}
    return {"channels": epochs if channels else 0, "weights": epochs if weights else 0, "qat": qat_epochs}


def _recipe(context: _Context, epochs: int, selector: str, allocation: str, weights: str, clusters: int | str,
            sparsity: float | None, qat: bool, channels: bool) -> dict[str, Any]:
    return {
        "epochs": epochs, "optimizer": "Adam, cosine decay to 0 per stage",
        "learning_rate": context.learning_rate, "weights_stage_learning_rate": context.learning_rate / 10,
        "batch_size": context.batch_size, "augmentation": "random crop (4 px padding) and flip" if context.augment
        else "none", "distillation": "alpha 0.9, temperature 4" if context.distill else "none",
        "selector": selector if channels else None, "allocation": allocation if channels else None,
        "weights": weights, "clusters": clusters if weights == "lut" else None,
        "sparsity": sparsity if weights == "prune" else None, "qat": qat, "seed": context.seed,
    }


# --- checkpoints ------------------------------------------------------------------------------


class _Checkpoints:
    """Each finished stage's model and description in a folder, so an interrupted run resumes."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, name: str) -> tuple[Any, str] | None:
        if self.folder is None or not (self.folder / f"{name}.json").exists():
            return None
        import tensorflow as tf

        did = json.loads((self.folder / f"{name}.json").read_text())["did"]
        if name == "qat":
            from tfprune.baselines import qat_scope

            with qat_scope():
                return tf.keras.models.load_model(self.folder / f"{name}.keras", compile=False), did
        return tf.keras.models.load_model(self.folder / f"{name}.keras", compile=False), did

    def save(self, name: str, model: Any, did: str) -> None:
        if self.folder is None:
            return
        staging = self.folder / f".{name}.keras"
        model.save(staging)
        staging.replace(self.folder / f"{name}.keras")
        _write_json(self.folder / f"{name}.json", {"did": did})


def _write_json(path: Path, value: Any) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(value, indent=2, default=float))
    staging.replace(path)


def _say(context: _Context, line: str) -> None:
    if context.verbose:
        print(f"compress: {line}", flush=True)


def _check_arguments(epochs: Any, selector: Any, weights: Any, batch_size: Any, learning_rate: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if selector not in SELECTORS:
        raise ValueError(f"unknown selector {selector!r}; choose one of {', '.join(SELECTORS)}")
    if weights not in WEIGHT_ENCODINGS:
        raise ValueError(f"unknown weights encoding {weights!r}; choose one of {', '.join(WEIGHT_ENCODINGS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
