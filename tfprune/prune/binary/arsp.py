"""ARSP end to end (seed 001): scores, PPO keep ratios, reservoir-sampled masks, fine-tuning.

:func:`arsp` takes a trained binary (larq) model and labelled training data and

1. holds out a fixed validation split (the last ``validation_samples`` of the data,
   or ``validation_data``), never the test set;
2. wraps the binary layers in masks and scores their weights once
   (:func:`tfprune.prune.binary.reservoir.layer_scores`);
3. finds per-layer keep ratios: ``controller="ppo"`` trains tf-agents' PPOClipAgent
   (:mod:`tfprune.prune.binary.ppo`; each episode samples masks with the episode's ratios
   and measures validation accuracy, reward ``accuracy - lam * density``),
   ``"random"`` tries as many random ratios instead (the ablation), ``"fixed"``
   takes ``ratios`` as given;
4. samples the final masks with the best ratios and fine-tunes (SGD, lr 0.01, 10
   epochs by default, as the seed says), optionally re-sampling every N steps.

It returns the masked model (``tfprune.export`` strips the masks and cuts pruned
channels; :mod:`tfprune.deploy.binary` makes it run on Cortex-M) and an
:class:`ARSPReport`.

Example:
    >>> round(hyperscore(0.9), 2)
    105.2
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.keras_model import labelled_samples, model_sample_shape
from tfprune.prune.binary.reservoir import (GRANULARITIES, SCORES, apply_masks, binary_layers, density, filter_layers,
                                      layer_scores, resolve_ratios, sample_masks, ReservoirPruning)

CONTROLLERS = ("ppo", "random", "fixed")


def hyperscore(value: float, beta: float = 5.0, gamma: float = -math.log(2.0), kappa: float = 2.0) -> float:
    """The seed's HyperScore ``100 * [1 + (sigmoid(beta * ln V + gamma)) ** kappa]``, a reporting score only.

    ``value`` is a score in (0, 1] (here validation accuracy). The seed leaves beta,
    gamma and kappa open; the defaults are those its template papers use
    (beta 5, gamma -ln 2, kappa 2). It ranges over (100, 200] and orders results
    as ``value`` does; ARSP never optimizes it.

    Example:
        >>> hyperscore(1.0) > hyperscore(0.5) > 100
        True
    """
    if not 0 <= value <= 1:
        raise ValueError(f"HyperScore takes a value in [0, 1] such as an accuracy, got {value!r}")
    if value == 0:
        return 100.0
    z = beta * math.log(value) + gamma
    return 100.0 * (1.0 + (1.0 / (1.0 + math.exp(-z))) ** kappa)


@dataclass
class ARSPReport:
    """What :func:`arsp` did and measured (validation split only, never the test set)."""

    granularity: str
    score: str
    controller: str
    layers: list[str]
    ratios: dict[str, float]
    density: float
    validation_samples: int
    accuracy_dense: float
    accuracy_pruned: float
    accuracy_finetuned: float
    hyperscore: float
    episodes: list[dict[str, Any]] = field(default_factory=list)
    search_seconds: float = 0.0
    finetune_seconds: float = 0.0
    finetune_epochs: int = 0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def arsp(
    model: Any,
    data: tuple[np.ndarray, np.ndarray],
    *,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    validation_samples: int = 1000,
    layers: Sequence[str] | None = None,
    granularity: str = "filters",
    score: str = "survival",
    controller: str = "ppo",
    ratios: float | Mapping[str, float] | None = None,
    episodes: int = 24,
    episodes_per_iteration: int = 4,
    initial: float = 0.5,
    lam: float = 0.1,
    score_samples: int = 256,
    finetune_epochs: int = 10,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    resample_every: int | None = None,
    seed: int = 0,
    log_dir: str | None = None,
) -> tuple[Any, ARSPReport]:
    """Prune a binary model by adaptive reservoir sampling with PPO keep ratios; fine-tune it.

    Args:
        model: a trained larq model (or one already wrapped by ``tfprune.wrap``).
        data: ``(x, y)`` training arrays; the last ``validation_samples`` are the
            validation split unless ``validation_data`` is given.
        layers: the layers to prune; default every binary layer (for filters,
            those whose channels no residual ties).
        granularity: ``"filters"`` (default) removes whole output channels: the
            deployed model is smaller and stays 1-bit. ``"connections"`` masks single
            weights, which makes the kernels ternary (+1, -1, 0): on Cortex-M they
            take 2 bits per weight instead of 1 and on Android LCE runs them as float
            convolutions, so both artifacts grow past the unpruned binary model's
            (binary ResNet-8, BENCHMARKS.md: 56,192 B vs 46,848 B on Cortex-M,
            318,996 B vs 33,412 B with LCE) unless most weights are pruned.
        score: ``"survival"`` (the seed's formula), ``"taylor"``, ``"magnitude"`` or ``"uniform"``.
        controller: ``"ppo"``, ``"random"`` (as many random ratios, best kept) or
            ``"fixed"`` (``ratios``: one keep ratio or one per layer).
        episodes, episodes_per_iteration, initial, lam: the search's budget, the keep
            ratio actions move from, the density penalty.
        finetune_epochs, learning_rate, batch_size: the SGD fine-tuning.
        resample_every: re-sample the masks every N fine-tuning steps (the
            :class:`~tfprune.prune.binary.reservoir.ReservoirPruning` callback), or never.
        seed: seeds the split-free parts (sampling, the agent, fine-tuning order)
            through local generators: the global random states of Python, NumPy
            and TensorFlow are the caller's (the PPO agent's scoped seeding
            excepted, see :mod:`tfprune.prune.binary.ppo`).
        log_dir: TensorBoard logs of the search (reward, accuracy, density, ratios)
            and of the fine-tuning.

    Returns:
        ``(masked model, ARSPReport)``: a new model; ``model`` itself is neither
        changed nor compiled.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
        >>> y = np.arange(64) % 10
        >>> pruned, report = arsp(binary_small_vgg(input_shape=(8, 8, 3)), (x, y), validation_samples=16,
        ...                       controller="fixed", ratios=0.25, finetune_epochs=1)
        >>> report.granularity, report.ratios["conv2"]  # a quarter of conv2's filters kept
        ('filters', 0.25)
    """
    import tfprune

    x, y, x_val, y_val = _split(model, data, validation_data, validation_samples)
    _check_arguments(granularity, score, controller, ratios, finetune_epochs, learning_rate)
    keras_model.check_keras_model(model)
    targets = _targets(model, layers, granularity)
    # A clone (wrap shares no variables): the caller's model keeps its weights, masks and compiled state.
    # The binary layers beside the targets are wrapped too: filter pruning masks the rows that read a
    # pruned channel, which a binary reader's input quantizer would otherwise turn from 0 into +1.
    wrapped = tfprune.wrap(model, layers=sorted(set(targets) | set(binary_layers(model))))
    scored = layer_scores(wrapped, (x[:score_samples], y[:score_samples]), score, targets)
    accuracy_dense = _accuracy(wrapped, x_val, y_val)

    def evaluate(keep: np.ndarray) -> float:
        masks = sample_masks(wrapped, dict(zip(targets, keep.tolist())), scored, granularity, seed=seed)
        apply_masks(wrapped, masks, granularity)
        return _accuracy(wrapped, x_val, y_val)

    search = None
    if controller == "fixed":
        best = resolve_ratios(ratios, targets)
    else:
        search = _search(controller, wrapped, evaluate, targets, x, y, score_samples, episodes,
                         episodes_per_iteration, initial, lam, seed, log_dir)
        best = dict(zip(targets, search.best.ratios))
    evaluate(np.array([best[name] for name in targets]))
    accuracy_pruned = _accuracy(wrapped, x_val, y_val)
    seconds = _finetune(wrapped, x, y, best, targets, granularity, score, finetune_epochs, learning_rate,
                        batch_size, resample_every, seed, log_dir)
    accuracy_finetuned = _accuracy(wrapped, x_val, y_val)
    report = ARSPReport(
        granularity=granularity, score=score, controller=controller, layers=list(targets),
        ratios={name: round(value, 6) for name, value in best.items()},
        density=round(density(wrapped, targets), 6), validation_samples=len(x_val),
        accuracy_dense=accuracy_dense, accuracy_pruned=accuracy_pruned, accuracy_finetuned=accuracy_finetuned,
        hyperscore=round(hyperscore(accuracy_finetuned), 4),
        episodes=[asdict(episode) for episode in search.history] if search else [],
        search_seconds=round(search.seconds, 2) if search else 0.0,
        finetune_seconds=round(seconds, 2), finetune_epochs=finetune_epochs, seed=seed)
    return wrapped, report


# --- steps ----------------------------------------------------------------------------------


def _search(controller: str, model: Any, evaluate: Any, targets: list[str], x: np.ndarray, y: np.ndarray,
            score_samples: int, episodes: int, per_iteration: int, initial: float, lam: float, seed: int,
            log_dir: str | None) -> Any:
    from tfprune.prune.binary import ppo  # imports tf-agents, only when a search runs

    features, sizes = _layer_features(model, targets, x[:score_samples], y[:score_samples])
    if controller == "ppo":
        return ppo.search(evaluate, features, sizes, episodes=episodes, episodes_per_iteration=per_iteration,
                          initial=initial, lam=lam, seed=seed, log_dir=log_dir, layer_names=targets)
    return ppo.random_search(evaluate, features, sizes, episodes=episodes, initial=initial, lam=lam, seed=seed,
                             log_dir=log_dir, layer_names=targets)


def _layer_features(model: Any, targets: list[str], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Per layer: mean |w| (latent) and mean |dL/dw|, and the kernel's size."""
    from tfprune.core import scores

    kernels = {name: kernel for name, kernel in keras_model.kernels(model).items() if name in targets}
    grads = scores.mean_gradients(model, kernels, (x, y), None, 1, False)
    features = np.array([[np.abs(kernels[name].numpy()).mean(), np.abs(grads[name]).mean()] for name in targets])
    return features, [int(np.prod(kernels[name].shape)) for name in targets]


def _finetune(model: Any, x: np.ndarray, y: np.ndarray, ratios: dict[str, float], targets: list[str],
              granularity: str, score: str, epochs: int, learning_rate: float, batch_size: int,
              resample_every: int | None, seed: int, log_dir: str | None) -> float:
    import tensorflow as tf

    from tfprune.core.scores import ends_in_softmax

    if epochs == 0:
        return 0.0
    callbacks = []
    if resample_every:
        callbacks.append(ReservoirPruning((x[:256], y[:256]), ratios, score, granularity, resample_every, seed))
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(f"{log_dir}/finetune"))
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model)),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(_ShuffledBatches(x, y, batch_size, seed), epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)
    return time.perf_counter() - start


def _shuffled_batches_base() -> type:
    import tensorflow as tf

    return tf.keras.utils.Sequence


class _ShuffledBatches(_shuffled_batches_base()):
    """``(x, y)`` batches in a new order each epoch, drawn from a generator of its own.

    ``fit(shuffle=True)`` would draw the order from TensorFlow's global seed, which is the caller's.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[chosen], self.y[chosen]

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.x))


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    predictions = model.predict(x, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == y))


# --- checks ---------------------------------------------------------------------------------


def _split(model: Any, data: Any, validation: Any, samples: int) -> tuple[np.ndarray, ...]:
    x, y = _arrays(model, data, "data")
    if validation is not None:
        x_val, y_val = _arrays(model, validation, "validation_data")
        return x, y, x_val, y_val
    if isinstance(samples, bool) or not isinstance(samples, int) or not 0 < samples < len(x):
        raise ValueError(f"validation_samples={samples!r} must be a positive number below the {len(x)} "
                         "training samples; or pass validation_data=(x, y)")
    return x[:-samples], y[:-samples], x[-samples:], y[-samples:]


def _arrays(model: Any, data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = labelled_samples(data, model_sample_shape(model))
    if y is None:
        raise ValueError(f"{what} has no labels; give (x, y) arrays or a tf.data of (x, y) batches")
    return x, y.astype(np.int64)


def _check_arguments(granularity: str, score: str, controller: str, ratios: Any, epochs: Any, lr: Any) -> None:
    for what, value, choices in (("granularity", granularity, GRANULARITIES), ("score", score, SCORES),
                                 ("controller", controller, CONTROLLERS)):
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    if controller == "fixed" and ratios is None:
        raise ValueError("controller='fixed' needs ratios=: one keep ratio or one per layer")
    if controller != "fixed" and ratios is not None:
        raise ValueError(f"ratios are only for controller='fixed'; controller={controller!r} finds them")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"finetune_epochs={epochs!r} must be a non-negative integer")
    if not lr > 0:
        raise ValueError(f"learning_rate must be positive, got {lr!r}")


def _targets(model: Any, layers: Sequence[str] | None, granularity: str) -> list[str]:
    names = list(layers) if layers is not None else binary_layers(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no binary layer to prune; name layers=[...]")
    unknown = [name for name in names if name not in {layer.name for layer in model.layers}]
    if unknown:
        raise ValueError(f"model {model.name!r} has no layer(s) {unknown}; its binary layers are {binary_layers(model)}")
    if granularity == "filters":
        untied = filter_layers(model, names)
        if layers is None:
            names = untied
        if not names or set(names) - set(untied):
            raise ValueError(f"filter pruning needs layers whose channels no residual Add ties; "
                             f"of {list(layers or [])} these are {untied}")
    return names
