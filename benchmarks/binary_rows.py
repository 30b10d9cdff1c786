"""Benchmark rows of ARSP (seed 001): a binary ResNet-8 pruned by adaptive reservoir sampling.

Every row builds :func:`tfprune.models.binary_resnet8` from the seed (binary 3x3 convs of
the residual stacks; first conv, shortcuts and classifier in full precision), trains it
from scratch for ``budget.scratch_epochs`` with Adam (lr 0.001, the seed's) through
:func:`benchmarks.methods.fit_once` (the rows of one ``tools/bench`` run with the same seed
share that training: the first row spends it, the others book it as reused), prunes its
binary convs' connections and fine-tunes ``budget.finetune_epochs`` with SGD (lr 0.01, the
seed's); the fine-tuning time and epochs go to the row's ledger. The last ``VALIDATION`` training images are the fixed validation
split every search and report reads; they are not trained on. The row is deployed as
:func:`tfprune.deploy.binary.for_micro` makes it: int8, binary activations as exact int8
steps, LUT-compressed weights (2-bit where pruned, 1-bit where not).

* ``bnn-dense``: no pruning, the same training (the accuracy the pruning rows lose from);
* ``bnn-static``: the seed's baseline, a static random mask at 50% sparsity;
* ``bnn-reservoir``: reservoir sampling with the survival score, uniform 50% keep ratio;
* ``arsp``: PPO keep ratios (``EPISODES`` episodes), survival or Taylor score; with a
  density penalty of ``STEEP_LAMBDA`` instead of 0.1; over filters instead of connections
  (the residual stacks' first convs, whose channels no residual ties: channels are cut and
  the model stays 1-bit, where connection pruning makes it ternary, 2 bits on Cortex-M);
* ``arsp-magnitude`` and ``arsp-random-ratios``: the ablations (magnitude-only scores;
  random ratios, the best of as many episodes as PPO gets).

Each result's ``extra`` holds the Android LCE flatbuffer's bytes, the larq model's test
accuracy (what int8 deployment changes), the binary weights the deployed model keeps (after
channels are cut) and the search's report.

Example:
    >>> sorted({m.name for m in methods()})
    ['arsp', 'arsp-magnitude', 'arsp-random-ratios', 'bnn-dense', 'bnn-reservoir', 'bnn-static']
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from benchmarks.methods import BenchData, Budget, Method, fit_once

#: PPO episodes per search (4 per iteration): about a minute on the 2-core host.
EPISODES = 16
#: Training images held out as the validation split (a tenth of a smaller tier's).
VALIDATION = 2000
#: Accuracy the ARSP row may lose against the static baseline and still count as "equal".
EQUAL_ACCURACY_POINTS = 1.0
#: The ``lam`` of the ARSP row that asks the agent for more compression than the default 0.1.
STEEP_LAMBDA = 1.0
_LONG = ("standard", "full")
_NAMES = ("bnn-dense", "bnn-static", "bnn-reservoir", "arsp", "arsp-magnitude", "arsp-random-ratios")
_PRUNED = _NAMES[1:]


def _model(seed: int) -> Any:
    from tfprune.models import binary_resnet8

    return binary_resnet8(seed=seed)


def _split(data: BenchData) -> tuple[BenchData, tuple[np.ndarray, np.ndarray]]:
    held = min(VALIDATION, len(data.x_train) // 10)
    train = dataclasses.replace(data, x_train=data.x_train[:-held], y_train=data.y_train[:-held])
    return train, (data.x_train[-held:], data.y_train[-held:])


def _row(controller: str, score: str = "survival", ratios: float | None = None, prune: bool = True,
         lam: float = 0.1, granularity: str = "connections"):
    def run(model: Any, data: BenchData, budget: Budget, seed: int) -> Any:
        from tfprune.deploy import binary as deploy
        from tfprune.prune.binary import arsp

        train, validation = _split(data)
        _train_once(model, train, budget, seed)
        if prune:
            pruned, report = arsp.arsp(model, (train.x_train, train.y_train), validation_data=validation,
                                       score=score, controller=controller, ratios=ratios, episodes=EPISODES, lam=lam,
                                       granularity=granularity,
                                       finetune_epochs=budget.finetune_epochs, batch_size=budget.batch_size,
                                       seed=seed)
            data.ledger.seconds += report.finetune_seconds
            data.ledger.epochs += report.finetune_epochs
            figures = report.as_dict()
            figures["episodes"] = len(figures["episodes"])
        else:
            pruned, figures = _finetune_dense(model, train, validation, budget, seed)
        _add_figures(data, pruned, figures)
        return deploy.for_micro(pruned)

    return run


def _train_once(model: Any, train: BenchData, budget: Budget, seed: int) -> None:
    """Train from scratch with Adam 1e-3, or load what an earlier row of this run trained the same way."""
    key = ("binary_resnet8", seed, budget.scratch_epochs, budget.batch_size, len(train.x_train),
           hash(train.x_train[:8].tobytes()))
    fit_once(model, train, budget.scratch_epochs, dataclasses.replace(budget, learning_rate=1e-3), seed, key)


def _finetune_dense(model: Any, train: BenchData, validation: Any, budget: Budget, seed: int) -> tuple[Any, dict]:
    """The dense row: the same SGD fine-tuning as the pruned rows, nothing masked."""
    from tfprune.prune.binary import arsp

    pruned, report = arsp.arsp(model, (train.x_train, train.y_train), validation_data=validation,
                               controller="fixed", ratios=1.0, score="magnitude", granularity="connections",
                               finetune_epochs=budget.finetune_epochs, batch_size=budget.batch_size, seed=seed)
    train.ledger.seconds += report.finetune_seconds
    train.ledger.epochs += report.finetune_epochs
    figures = report.as_dict()
    figures["episodes"] = 0
    return pruned, figures


def _add_figures(data: BenchData, model: Any, report: dict[str, Any]) -> None:
    import tfprune
    from tfprune.core.surgery import without_masks
    from tfprune.deploy import binary as deploy
    from tfprune.prune.binary import reservoir

    lce = tfprune.export(deploy.for_lce(model), target="android-lce", verify=False, progress=False)
    predictions = model.predict(data.x_test, batch_size=500, verbose=0)
    layers = reservoir.binary_layers(model)
    deployed = without_masks(model)  # channels a filter mask removes take their readers' rows along
    kept = sum(int(np.count_nonzero(deployed.get_layer(name).get_weights()[0])) for name in layers)
    data.figures.update({
        "model": "binary_resnet8",
        "android_lce_bytes": lce.report["flatbuffer_bytes"],
        "larq_test_accuracy": round(float(np.mean(np.argmax(predictions, -1) == data.y_test)), 6),
        "binary_weights_kept": kept,
        "binary_weights": sum(int(np.prod(model.get_layer(name).kernel_shape)) for name in layers),
        "arsp": report,
    })


def methods() -> list[Method]:
    """The ARSP rows and their baselines (see the module docstring)."""
    text = "binary ResNet-8 from scratch (Adam 1e-3), "
    return [
        Method("bnn-dense", "scratch", _row("fixed", prune=False), {"model": "binary_resnet8"},
               description=text + "unpruned, SGD fine-tuned like the pruned rows", model=_model, tiers=_LONG),
        Method("bnn-static", "scratch", _row("fixed", "uniform", 0.5), {"model": "binary_resnet8", "sparsity": 0.5},
               description=text + "static random mask at 50% of the binary weights (the seed's baseline), "
                                  "SGD fine-tuned", model=_model),
        Method("bnn-reservoir", "scratch", _row("fixed", "survival", 0.5),
               {"model": "binary_resnet8", "keep": 0.5, "score": "survival"},
               description=text + "reservoir sampling by the survival score, uniform 50% keep ratio",
               model=_model, tiers=_LONG),
        *[Method("arsp", "scratch", _row("ppo", score), {"model": "binary_resnet8", "score": score,
                                                          "episodes": EPISODES},
                 description=text + f"ARSP: PPO keep ratios, {score} score, reservoir sampling, SGD fine-tuned",
                 model=_model, tiers=_LONG) for score in ("survival", "taylor")],
        Method("arsp", "scratch", _row("ppo", "survival", lam=STEEP_LAMBDA),
               {"model": "binary_resnet8", "score": "survival", "episodes": EPISODES, "lambda": STEEP_LAMBDA},
               description=text + f"ARSP with a density penalty of {STEEP_LAMBDA:g} (the default 0.1 barely "
                                  "rewards pruning below 50%)", model=_model, tiers=_LONG),
        Method("arsp", "scratch", _row("ppo", "survival", granularity="filters"),
               {"model": "binary_resnet8", "score": "survival", "episodes": EPISODES, "granularity": "filters"},
               description=text + "ARSP over filters (channels cut, the model stays 1-bit): the residual "
                                  "stacks' first convs", model=_model, tiers=_LONG),
        Method("arsp-magnitude", "scratch", _row("ppo", "magnitude"),
               {"model": "binary_resnet8", "score": "magnitude", "episodes": EPISODES},
               description=text + "ablation: ARSP with |w| scores", model=_model, tiers=_LONG),
        Method("arsp-random-ratios", "scratch", _row("random", "survival"),
               {"model": "binary_resnet8", "score": "survival", "episodes": EPISODES},
               description=text + "ablation: ARSP with random keep ratios (best of as many episodes)",
               model=_model, tiers=_LONG),
    ]


# --- the measured paragraph -----------------------------------------------------------------


def _groups(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Mean figures per (method, exact settings) of this plug-in's rows, in ``_NAMES`` order."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r["key"]["method"] in _NAMES and "extra" in r:
            rows.setdefault((r["key"]["method"], r["key"]["settings"]), []).append(r)
    return {key: _mean(rows[key]) for key in sorted(rows, key=lambda k: (_NAMES.index(k[0]), k[1]))}


def _first(groups: dict[tuple[str, str], dict[str, float]], method: str) -> dict[str, float] | None:
    return next((m for (name, _), m in groups.items() if name == method), None)


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    def avg(get: Any) -> float:
        return float(np.mean([get(r) for r in rows]))

    return {"accuracy": avg(lambda r: r["accuracy"]), "larq": avg(lambda r: r["extra"]["larq_test_accuracy"]),
            "kept": avg(lambda r: r["extra"]["binary_weights_kept"]),
            "density": avg(lambda r: r["extra"]["binary_weights_kept"] / r["extra"]["binary_weights"]),
            "micro": avg(lambda r: r["flatbuffer_bytes"]), "lce": avg(lambda r: r["extra"]["android_lce_bytes"]),
            "seeds": len(rows)}


def summary(results: list[dict[str, Any]]) -> str | None:
    """Per row: accuracy (int8 Cortex-M artifact, and the larq model), kept binary weights, bytes on
    both targets; then whether ARSP reaches the seed's claim against the static baseline."""
    groups = _groups(results)
    if not groups:
        return None
    cells = []
    for (method, settings), m in groups.items():
        shown = {k: v for k, v in json.loads(settings).items() if k != "model"}
        label = f"`{method}`" + (f" {json.dumps(shown, sort_keys=True)}" if shown else "")
        cells.append(f"{label}: {m['accuracy']:.2%} int8 Cortex-M ({m['larq']:.2%} larq), "
                     f"{m['density']:.1%} of binary weights kept, {m['micro']:,.0f} B Cortex-M, "
                     f"{m['lce']:,.0f} B LCE")
    lines = ["**ARSP (seed 001), binary ResNet-8.** Mean over seeds; Cortex-M bytes are the LUT-compressed "
             "int8 flatbuffer, LCE bytes the Larq Compute Engine one (connection pruning makes a layer "
             "ternary, which LCE runs as a float convolution). " + "; ".join(cells) + ".",
             _against_dense(groups), _claim(groups)]
    return " ".join(line for line in lines if line)


def _against_dense(groups: dict[tuple[str, str], dict[str, float]]) -> str:
    """Which pruned rows are smaller on each target than the unpruned binary model (ternary costs a bit)."""
    base = _first(groups, "bnn-dense")
    if base is None:
        return ""
    smaller: dict[str, list[str]] = {"micro": [], "lce": []}
    for (method, settings), m in groups.items():
        for target in smaller:
            if method in _PRUNED and m[target] < base[target]:
                smaller[target].append(f"`{method}` {_label(json.loads(settings))} ({base[target] / m[target]:.2f}x)")
    names = {"micro": "Cortex-M", "lce": "LCE"}
    return " ".join(
        f"Smaller on {names[t]} than the unpruned binary model ({base[t]:,.0f} B): "
        + (", ".join(smaller[t]) if smaller[t] else "none") + "." for t in smaller)


def _label(settings: dict[str, Any]) -> str:
    parts = [f"{settings['score']} score"] if "score" in settings else []
    parts += [f"sparsity {settings['sparsity']:g}"] if "sparsity" in settings else []
    parts += [f"lambda {settings['lambda']:g}"] if "lambda" in settings else []
    parts += [settings["granularity"]] if "granularity" in settings else []
    return ", ".join(parts)


def _claim(groups: dict[tuple[str, str], dict[str, float]]) -> str:
    base = _first(groups, "bnn-static")
    arsp_groups = {settings: m for (method, settings), m in groups.items() if method == "arsp"}
    if base is None or not any(json.loads(k).get("score") == "survival" for k in arsp_groups):
        return ("The seed's claim (2-5x more compression than a statically pruned BNN at 50% sparsity, "
                "at equal accuracy) needs the `bnn-static` and `arsp` survival rows of this tier.")
    verdicts = []
    for settings, m in arsp_groups.items():
        factor = base["kept"] / m["kept"] if m["kept"] else float("inf")
        points = 100 * (m["accuracy"] - base["accuracy"])
        equal = points >= -EQUAL_ACCURACY_POINTS
        reached = equal and factor >= 2.0
        label = _label(json.loads(settings))
        verdicts.append(f"ARSP ({label}) keeps {m['kept']:,.0f} binary weights against the static "
                        f"baseline's {base['kept']:,.0f} ({factor:.2f}x more compression) at {points:+.1f} points "
                        f"of accuracy ({m['accuracy']:.2%} vs {base['accuracy']:.2%}): the seed's claim of 2-5x at "
                        f"equal accuracy (within {EQUAL_ACCURACY_POINTS:g} point) is "
                        f"{'reached' if reached else 'not reached'}"
                        + ("" if reached else (" (less than 2x)" if equal else " (accuracy not equal)"))
                        + f"; its artifacts are {base['micro'] / m['micro']:.2f}x smaller on Cortex-M "
                        f"({m['micro']:,.0f} B) and {base['lce'] / m['lce']:.2f}x on LCE ({m['lce']:,.0f} B).")
    return " ".join(verdicts)
