"""Benchmark methods: a name, where they start, and ``prune(model, data, budget, seed)``.

A method is a plug-in: every pruning method of tfprune adds its rows to the
benchmark through :class:`Method` alone. ``prune`` returns the Keras model to
deploy (or, for a row that is already an artifact, the flatbuffer bytes); the
harness exports and measures it the same way for every method.

Example:
    >>> method = Method("dense", "pretrained", lambda model, data, budget, seed: model)
    >>> method.key_settings()
    '{}'
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

Start = Literal["pretrained", "scratch", "artifact"]


@dataclass
class TrainingLedger:
    """Training time and epochs inside a method's ``prune``, kept apart from pruning time.

    ``seconds`` were spent in this call (the harness subtracts them from its wall time to get
    pruning seconds); ``reused_seconds`` are the training an earlier row of the same run spent
    on weights this row loads (part of the artifact's training, not of this call's wall time).
    ``epochs`` counts both.
    """

    seconds: float = 0.0
    epochs: int = 0
    reused_seconds: float = 0.0


@dataclass(frozen=True)
class BenchData:
    """The tier's data (raw 0..255 float32 images, integer labels) and the run's training ledger."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calibration: np.ndarray
    x_agreement: np.ndarray
    ledger: TrainingLedger = field(default_factory=TrainingLedger)
    #: Extra JSON-ready figures a method measures itself (another target's bytes, say); stored
    #: under the result's ``"extra"``.
    figures: dict[str, Any] = field(default_factory=dict)
    #: What one row leaves for the later rows of the same ``tools/bench`` run (trained weights,
    #: see :func:`fit_once`); the harness makes one per run, so nothing outlives it.
    run_cache: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """What a method may spend: fine-tuning epochs after pruning, training epochs from scratch."""

    finetune_epochs: int
    scratch_epochs: int
    batch_size: int = 64
    learning_rate: float = 3e-4


@dataclass(frozen=True)
class Method:
    """One benchmark row family.

    ``start`` is ``"pretrained"`` (MLPerf Tiny's trained ResNet-8 is handed to
    ``prune``), ``"scratch"`` (a fresh initialisation) or ``"artifact"`` (no
    model: ``prune`` returns a flatbuffer). ``quantization`` is how the result
    is deployed: ``"int8"`` through ``tfprune.export`` for cortex-m, or
    ``"float32"`` for the float reference row. ``model``, when given, builds
    the starting model from the seed instead (``start`` then only says whether
    it is trained); ``tiers`` names the tiers the row runs in.
    """

    name: str
    start: Start
    prune: Callable[[Any, BenchData, Budget, int], Any]
    settings: dict[str, Any] = field(default_factory=dict)
    quantization: str = "int8"
    seeded: bool = True
    description: str = ""
    #: Builds the starting model from the seed instead of the start's ResNet-8 (a binary model, say).
    model: Callable[[int], Any] | None = None
    #: The tiers that run this row; a slow ablation can stay out of the quick tier CI runs.
    tiers: tuple[str, ...] = ("quick", "standard", "full")

    def key_settings(self) -> str:
        """The settings as canonical JSON, part of a result's key."""
        return json.dumps(self.settings, sort_keys=True)


def fit(model: Any, data: BenchData, epochs: int, budget: Budget, seed: int, callbacks: Sequence[Any] = ()) -> Any:
    """Train ``model`` on the tier's training split with Adam; time and epochs go to ``data.ledger``.

    Loss is sparse cross-entropy, from logits unless the model ends in a softmax.
    Plug-ins call this for every epoch they train, so that the benchmark can
    report pruning time apart from training time.
    """
    import tensorflow as tf

    from tfprune.core.scores import ends_in_softmax

    if epochs <= 0:
        return model
    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(budget.learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model)),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=budget.batch_size, epochs=epochs, verbose=0,
              callbacks=list(callbacks), shuffle=True)
    data.ledger.seconds += time.perf_counter() - start
    data.ledger.epochs += epochs
    return model


def fit_once(model: Any, data: BenchData, epochs: int, budget: Budget, seed: int, key: Any) -> Any:
    """:func:`fit`, or load the weights an earlier row of this run trained under the same ``key``.

    A hit spends no training time in this call: the earlier row's seconds go to
    ``data.ledger.reused_seconds`` (the artifact received that training, this call did not
    spend it) and its epochs to ``data.ledger.epochs``.

    Example:
        >>> import tensorflow as tf
        >>> def model():
        ...     tf.keras.utils.set_random_seed(0)
        ...     return tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)])
        >>> x, y = np.zeros((8, 2), "float32"), np.zeros(8, "int64")
        >>> cache = {}
        >>> rows = [BenchData(x, y, x, y, x, x, run_cache=cache) for _ in range(2)]
        >>> _ = fit_once(model(), rows[0], 1, Budget(1, 1), 0, key="dense")
        >>> _ = fit_once(model(), rows[1], 1, Budget(1, 1), 0, key="dense")
        >>> rows[1].ledger.seconds, rows[1].ledger.epochs, rows[1].ledger.reused_seconds == rows[0].ledger.seconds
        (0.0, 1, True)
    """
    cached = data.run_cache.get(key)
    if cached is None:
        seconds, spent_epochs = data.ledger.seconds, data.ledger.epochs
        fit(model, data, epochs, budget, seed)
        data.run_cache[key] = (model.get_weights(), data.ledger.seconds - seconds, data.ledger.epochs - spent_epochs)
        return model
    weights, seconds, spent_epochs = cached
    model.set_weights(weights)
    data.ledger.reused_seconds += seconds
    data.ledger.epochs += spent_epochs
    return model
