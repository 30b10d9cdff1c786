"""``PruningController``: the Keras callback that keeps a network pruned while it trains or drifts.

At the start of ``fit`` the controller reads the watched layers' activations on recent inputs,
trains a QSAE per channel group (:mod:`tfprune.prune.qsae.autoencoder`), picks the threshold by KL
(:mod:`tfprune.prune.qsae.threshold`) and prunes the chosen channels through the model's
``MaskedLayer`` channel masks (``tfprune.wrap``). Then at every check (each epoch, or every
``check_every`` steps) it looks at the monitored metric and, when

* the metric fell more than ``trigger_drop`` below its best since the last derivation (``"drop"``),
* ``interval`` checks passed since the last derivation (``"interval"``), or
* the activation distribution moved more than ``drift_threshold`` from the one the masks were
  derived on (``"drift"``, label-free: the KL between the mean per-channel softmax
  distributions of the latest inputs and of the inputs of the last derivation, both read
  through the network as it is now, so training alone is not drift; see :func:`drift_score`),

it retrains the QSAEs on the latest activations and derives the masks again (a trigger at the
end of a fit's last epoch waits for the start of the next fit, so that training follows every
new mask; a new fit also checks the drift first). A pruned channel
can come back: the controller keeps the weights of the channels it prunes (the optimizer's mask
constraint zeroes them in the model) and puts them back before it reads activations, so every
derivation sees the whole network. Each derivation is an *event*: one line at ``verbose=1``,
a dict in :attr:`PruningController.events`, and the values ``qsae_tau``, ``qsae_kl``,
``qsae_sparsity`` (and ``qsae_drift``) in the epoch ``logs``, so in ``History`` and, with
``log_dir``, in TensorBoard. ``update(model, data)`` does the same outside ``fit``.

Example:
    >>> import numpy as np, tensorflow as tf, tfprune
    >>> inputs = tf.keras.Input((8,))
    >>> hidden = tf.keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    >>> model = tfprune.wrap(tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="out")(hidden)))
    >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    >>> controller = PruningController(target_sparsity=0.5, verbose=0)
    >>> event = controller.update(model, x)
    >>> event["channels_pruned"], int((~model.get_layer("hidden").get_channel_mask()).sum())
    (8, 8)
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfprune.keras_model import labelled_samples, model_sample_shape
from tfprune.prune.qsae.activations import Tap, probe_model, read_activations, resolve_taps
from tfprune.prune.qsae.autoencoder import QSAE, Ranking
from tfprune.prune.qsae.threshold import Threshold, channel_distribution, check_budget, search_threshold, temperature

#: The KL budget when neither ``kl_budget`` nor ``target_sparsity`` is given (nats).
DEFAULT_KL_BUDGET = 0.05


def drift_score(reference: np.ndarray, current: np.ndarray, temp: float) -> float:
    """KL(current || reference) of the mean per-channel softmax distributions, at temperature ``temp``.

    Example:
        >>> a = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> drift_score(a, a, 1.0)
        0.0
    """
    p = channel_distribution(current, None, temp).mean(axis=0)
    q = channel_distribution(reference, None, temp).mean(axis=0)
    return float(max(np.sum(p * (np.log(p) - np.log(q))), 0.0))


class PruningController(tf.keras.callbacks.Callback):
    """Prunes channels chosen by a QSAE within a KL budget, and re-derives the masks when needed.

    The model must hold its prunable layers in ``MaskedLayer`` s: ``model = tfprune.wrap(model)``
    before ``compile``. See the module docstring for what happens when.

    Args:
        layers: ``"penultimate"`` (the channels the last layer reads), ``"all"`` (every prunable
            channel group) or a list of conv/dense layer names.
        kl_budget: largest KL(p_before || p_after) per group, in nats (default 0.05 when
            ``target_sparsity`` is not given either).
        target_sparsity: share of each group's channels to prune, instead of a KL budget.
        data: where activations come from: an array of inputs (its first ``samples`` are read),
            ``(x, y)``, a ``tf.data`` of ``x`` or ``(x, y)`` batches (read as a stream: each
            derivation takes the next ``samples``), or a function returning any of these.
            Not part of ``get_config``.
        monitor: the metric in the epoch (or batch) logs to watch; ``mode`` ``"max"`` or ``"min"``
            (``"auto"``: min for a name containing ``loss``).
        trigger_drop: re-derive when the metric is this much worse than its best since the last
            derivation; ``None`` never.
        interval: re-derive every ``interval`` checks; ``None`` never.
        drift_threshold: re-derive when :func:`drift_score` exceeds it; ``None`` never.
        check_every: ``"epoch"`` or a number of training steps between checks.
        samples: inputs read per derivation.
        source: the mask source the controller owns on each ``MaskedLayer``.
        stickiness: margin (a share of the score) by which a pruned channel must beat a kept one
            to come back, so that re-deriving on new samples of unchanged data changes little.
        l1, steps, refit_steps: the QSAE's lambda, training steps and elimination steps.
        log_dir: a TensorBoard folder for the scalars; ``None`` for none.
        verbose: 1 prints one line per event, 0 nothing.
        seed: seeds the QSAEs.

    Example:
        >>> PruningController(kl_budget=0.1, verbose=0).get_config()["kl_budget"]
        0.1
    """

    def __init__(self, layers: str | Sequence[str] = "penultimate", kl_budget: float | None = None,
                 target_sparsity: float | None = None, data: Any = None, *, monitor: str = "val_accuracy",
                 mode: str = "auto", trigger_drop: float | None = 0.02, interval: int | None = None,
                 drift_threshold: float | None = None, check_every: str | int = "epoch", samples: int = 512,
                 source: str = "default", stickiness: float = 0.1, l1: float = 1e-3, steps: int = 300,
                 refit_steps: int = 50,
                 log_dir: str | None = None, verbose: int = 1, seed: int = 0) -> None:
        super().__init__()
        if kl_budget is None and target_sparsity is None:
            kl_budget = DEFAULT_KL_BUDGET
        check_budget(kl_budget, target_sparsity)
        if not (isinstance(layers, str) or (isinstance(layers, (list, tuple)) and layers
                                            and all(isinstance(n, str) for n in layers))):
            raise ValueError(f"layers must be 'penultimate', 'all' or a list of layer names, got {layers!r}")
        if mode not in ("auto", "max", "min"):
            raise ValueError(f"mode must be 'auto', 'max' or 'min', got {mode!r}")
        for name, value in (("trigger_drop", trigger_drop), ("drift_threshold", drift_threshold),
                            ("stickiness", stickiness)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
        for name, value in (("interval", interval), ("samples", samples)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1{' or None' if name == 'interval' else ''}, got {value!r}")
        if check_every != "epoch" and (isinstance(check_every, bool) or not isinstance(check_every, int)
                                       or check_every < 1):
            raise ValueError(f"check_every must be 'epoch' or a number of steps >= 1, got {check_every!r}")
        if samples < 2:
            raise ValueError(f"samples must be >= 2, got {samples}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        QSAE(l1=l1, steps=steps, refit_steps=refit_steps, seed=seed)  # validates them
        self.layers = list(layers) if not isinstance(layers, str) else layers
        self.kl_budget, self.target_sparsity, self.data = kl_budget, target_sparsity, data
        self.monitor, self.mode, self.trigger_drop, self.interval = monitor, mode, trigger_drop, interval
        self.drift_threshold, self.check_every = drift_threshold, check_every
        self.samples, self.source = samples, source
        self.stickiness, self.l1, self.steps, self.refit_steps = stickiness, l1, steps, refit_steps
        self.log_dir, self.verbose, self.seed = log_dir, verbose, seed
        #: Every derivation: reason, epoch, step, metric, drift, tau, kl, sparsity, channel counts,
        #: channels restored and newly pruned, seconds taken, and per-layer tau/kl/pruned/size.
        self.events: list[dict[str, Any]] = []
        #: The last threshold per watched group (tau, KL, keep mask and the KL curve).
        self.thresholds: dict[str, Threshold] = {}
        self._reset_model_state(None)
        self._writer = None
        self._stream = None
        self._warned: set[str] = set()

    # --- configuration -------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments except ``data`` (give it again to ``from_config``'s result)."""
        return {"layers": self.layers, "kl_budget": self.kl_budget, "target_sparsity": self.target_sparsity,
                "monitor": self.monitor, "mode": self.mode, "trigger_drop": self.trigger_drop,
                "interval": self.interval, "drift_threshold": self.drift_threshold,
                "check_every": self.check_every, "samples": self.samples, "source": self.source,
                "stickiness": self.stickiness, "l1": self.l1,
                "steps": self.steps, "refit_steps": self.refit_steps, "log_dir": self.log_dir,
                "verbose": self.verbose, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningController:
        """A controller with ``config``'s arguments (no data, no events)."""
        return cls(**config)

    # --- the public operations -----------------------------------------------------------

    def update(self, model: Any, data: Any, force: bool = True) -> dict[str, Any] | None:
        """Re-derive ``model``'s masks from ``data`` outside ``fit`` (field data on the host).

        With ``force=False`` it does so only when :meth:`drift` exceeds ``drift_threshold`` (or
        when nothing was derived yet); returns the event, or None when nothing changed.
        Re-export the model with ``tfprune.export`` afterwards: that is the re-quantization.
        """
        self._attach(model)
        x = self._samples(data)
        if not force and self.events and self._reference_x is not None:
            if self.drift_threshold is None:
                raise ValueError("update(force=False) needs drift_threshold set; or call update(model, data)")
            score = self._drift(x)
            if score <= self.drift_threshold:
                return None
            return self._derive(x, "drift", drift=score)
        return self._derive(x, "update")

    def drift(self, model: Any, data: Any) -> float:
        """The label-free drift score of ``data`` against the inputs of the last derivation.

        Both are read through the network as it is now (masks lifted), so training between the
        derivation and the check does not count as drift: only the data moved.
        """
        self._attach(model)
        return self._drift(self._samples(data))

    def _drift(self, x: np.ndarray) -> float:
        if self._reference_x is None:
            raise ValueError("no derivation yet: the drift is measured against the inputs masks were derived on")
        both = self._lifted_activations(np.concatenate([self._reference_x, x]))
        count = len(self._reference_x)
        return max(drift_score(a[:count], a[count:], temperature(a[:count])) for a in both.values())

    # --- Keras hooks ---------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._attach(self.model)
        if self.data is None:
            raise ValueError("PruningController needs data=... to read activations: an array of a few hundred "
                             "inputs, a tf.data of batches, or a function returning them")
        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        self._fit_epoch = 0
        if not self.events:
            self._derive(self._window(), "start")
        elif self._pending is not None:
            # a trigger at the end of the previous fit: derive now, so that training follows it
            reason, metric, drift = self._pending
            self._derive(self._window(), reason, metric=metric, drift=drift)
        elif self.drift_threshold is not None:
            x = self._window()
            drift = self._last_drift = self._drift(x)
            if drift > self.drift_threshold:
                self._derive(x, "drift", drift=drift)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._step += 1
        if self.check_every != "epoch" and self._step % self.check_every == 0:
            self._check(logs or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch += 1
        self._fit_epoch += 1
        logs = logs if logs is not None else {}
        if self.check_every == "epoch":
            self._check(logs)
        logs.update(self._log_values())
        if self._writer is not None:
            with self._writer.as_default():
                for key, value in logs.items():
                    if key.startswith("qsae_") or key == self.monitor:
                        tf.summary.scalar(key.replace("qsae_", "qsae/"), float(value), step=self._epoch)
            self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.flush()

    # --- checks --------------------------------------------------------------------------

    def _check(self, logs: dict) -> None:
        self._checks_since += 1
        metric = logs.get(self.monitor)
        reason, drift = None, None
        if metric is None:
            if self.monitor not in self._warned and self.trigger_drop is not None:
                self._warned.add(self.monitor)
                warnings.warn(f"PruningController: metric {self.monitor!r} is not in the logs "
                              f"({sorted(logs)}); pass validation_data to fit or choose monitor=...", stacklevel=2)
        else:
            metric = float(metric)
            self._last_metric = metric
            if self._best is None or self._sign * (metric - self._best) > 0:
                self._best = metric
            if self.trigger_drop is not None and self._sign * (self._best - metric) > self.trigger_drop:
                reason = "drop"
        if reason is None and self.interval is not None and self._checks_since >= self.interval:
            reason = "interval"
        x = None
        if reason is None and self.drift_threshold is not None:
            x = self._window()
            drift = self._drift(x)
            self._last_drift = drift
            if drift > self.drift_threshold:
                reason = "drift"
        if reason is None:
            return
        if self.check_every == "epoch" and self._fit_epoch >= (self.params or {}).get("epochs", math.inf):
            # no training would follow a derivation after the last epoch: keep it for the next fit
            self._pending = (reason, metric, drift)
            return
        self._derive(x if x is not None else self._window(), reason, metric=metric, drift=drift)

    @property
    def _sign(self) -> float:
        mode = self.mode if self.mode != "auto" else ("min" if "loss" in self.monitor else "max")
        return 1.0 if mode == "max" else -1.0

    def _log_values(self) -> dict[str, float]:
        if not self.events:
            return {}
        last = self.events[-1]
        values = {"qsae_tau": last["tau"], "qsae_kl": last["kl"], "qsae_sparsity": last["sparsity"]}
        if self._last_drift is not None:
            values["qsae_drift"] = self._last_drift
        return values

    # --- derivation ----------------------------------------------------------------------

    def _derive(self, x: np.ndarray, reason: str, metric: float | None = None,
                drift: float | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        before = self._pruned_channels()
        activations = self._lifted_activations(x)
        details = {}
        for tap in self._taps:
            a = activations[tap.name]
            ranking = QSAE(l1=self.l1, steps=self.steps, refit_steps=self.refit_steps, seed=self.seed).rank(a)
            ranking = sticky_ranking(ranking, self._kept(tap), self.stickiness)
            choice = search_threshold(a, ranking, kl_budget=self.kl_budget, target_sparsity=self.target_sparsity)
            self.thresholds[tap.name] = choice
            self._apply(tap, choice.keep)
            details[tap.name] = {"tau": choice.tau, "kl": choice.kl, "pruned": choice.pruned, "size": tap.size}
        self._reference_x = x
        after = self._pruned_channels()
        total = sum(tap.size for tap in self._taps)
        pruned = sum(d["pruned"] for d in details.values())
        event = {"reason": reason, "epoch": self._epoch, "step": self._step, "metric": metric, "drift": drift,
                 "tau": float(np.mean([d["tau"] for d in details.values()])),
                 "kl": float(np.mean([d["kl"] for d in details.values()])),
                 "sparsity": pruned / total, "channels_pruned": pruned, "channels_total": total,
                 "restored": len(before - after), "newly_pruned": len(after - before),
                 "seconds": time.perf_counter() - start, "layers": details}
        self.events.append(event)
        self._best, self._checks_since, self._pending = None, 0, None
        if self.verbose:
            print(self._event_line(event))
        return event

    def _event_line(self, event: dict[str, Any]) -> str:
        reason = event["reason"]
        if reason == "drop":
            why = f"{self.monitor} dropped to {event['metric']:.4g}"
        elif reason == "drift":
            why = f"activation drift {event['drift']:.4g} > {self.drift_threshold:g}"
        elif reason == "interval":
            why = f"every {self.interval} checks"
        else:
            why = {"start": "first derivation"}.get(reason, reason)
        return (f"PruningController epoch {event['epoch']} step {event['step']}: {why}: tau {event['tau']:.3f}, "
                f"KL {event['kl']:.4f}, {event['channels_pruned']}/{event['channels_total']} channels pruned "
                f"({event['sparsity']:.1%}), {event['newly_pruned']} newly pruned, {event['restored']} back")

    # --- model state ---------------------------------------------------------------------

    def _reset_model_state(self, model: Any) -> None:
        self._model = model
        self._taps: list[Tap] = []
        self._probe = None
        self._saved: dict[tuple[str, int], tuple[np.ndarray, Any]] = {}
        self._reference_x: np.ndarray | None = None
        self._best: float | None = None
        self._last_metric: float | None = None
        self._last_drift: float | None = None
        self._checks_since = 0
        self._pending: tuple[str, float | None, float | None] | None = None
        self._epoch = 0
        self._fit_epoch = 0
        self._step = 0

    def _attach(self, model: Any) -> None:
        if model is self._model:
            return
        from tfprune.core.masks import MaskedLayer

        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"model must be a tf.keras model, got {type(model).__name__}")
        self._reset_model_state(model)
        self.events, self.thresholds = [], {}
        taps = resolve_taps(model, self.layers)
        for tap in taps:
            for name in tap.producers:
                layer = model.get_layer(name)
                if not isinstance(layer, MaskedLayer):
                    raise ValueError(f"layer {name!r} is not wrapped for pruning; wrap the model first: "
                                     "model = tfprune.wrap(model) (before compile)")
                if self.source not in layer.sources:
                    raise ValueError(f"layer {name!r} has no mask source {self.source!r} (it has "
                                     f"{list(layer.sources)}); set PruningController(source=...) to one of them")
        self._taps = taps
        self._probe = probe_model(model, taps)

    def _window(self) -> np.ndarray:
        data = self.data() if callable(self.data) else self.data
        if isinstance(data, tf.data.Dataset):
            if self._stream is None or self._stream[0] is not data:
                self._stream = (data, iter(data.repeat()))
            # the window moves on along the repeated stream: each call reads the next samples
            return self._samples(self._stream[1])
        return self._samples(data)

    def _samples(self, data: Any) -> np.ndarray:
        return labelled_samples(data, model_sample_shape(self._model), self.samples)[0]

    def _lifted_activations(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Activations with this controller's masks lifted and its pruned channels' weights back."""
        saved_masks = {}
        for tap in self._taps:
            for name in tap.producers:
                layer = self._model.get_layer(name)
                saved_masks[name] = layer.get_channel_mask(self.source)
                self._restore(layer, np.flatnonzero(~saved_masks[name]))
                layer.set_channel_mask(np.ones(layer.channels, bool), self.source)
        try:
            return read_activations(self._probe, self._taps, x)
        finally:
            for name, keep in saved_masks.items():
                self._model.get_layer(name).set_channel_mask(keep, self.source)

    def _apply(self, tap: Tap, keep: np.ndarray) -> None:
        for member in tap.group.producers:
            layer = self._model.get_layer(member.layer)
            mask = layer.get_channel_mask(self.source)
            channels = member.offset + np.arange(tap.size)
            newly = channels[mask[channels] & ~keep]
            self._save(layer, newly)
            for channel in channels[keep]:
                self._saved.pop((layer.name, int(channel)), None)
            mask[channels] = keep
            layer.set_channel_mask(mask, self.source)

    def _kept(self, tap: Tap) -> np.ndarray:
        member = tap.group.producers[0]
        return self._model.get_layer(member.layer).get_channel_mask(self.source)[member.offset:member.offset + tap.size]

    def _pruned_channels(self) -> set[tuple[str, int]]:
        """(tap, group channel) pairs this controller prunes now (a group counts once, not per producer)."""
        pruned = set()
        for tap in self._taps:
            member = tap.group.producers[0]
            mask = self._model.get_layer(member.layer).get_channel_mask(self.source)
            pruned |= {(tap.name, int(k)) for k in np.flatnonzero(~mask[member.offset:member.offset + tap.size])}
        return pruned

    def _save(self, layer: Any, channels: np.ndarray) -> None:
        kernel, bias = _variables(layer)
        kernel_value = kernel.numpy()
        bias_value = bias.numpy() if bias is not None else None
        for channel in channels:
            self._saved[(layer.name, int(channel))] = (
                kernel_value[..., channel].copy(), None if bias_value is None else float(bias_value[channel]))

    def _restore(self, layer: Any, channels: np.ndarray) -> None:
        stored = [(int(c), self._saved[(layer.name, int(c))]) for c in channels if (layer.name, int(c)) in self._saved]
        if not stored:
            return
        kernel, bias = _variables(layer)
        kernel_value, bias_value = kernel.numpy(), None if bias is None else bias.numpy()
        for channel, (kernel_slice, bias_entry) in stored:
            kernel_value[..., channel] = kernel_slice
            if bias_value is not None and bias_entry is not None:
                bias_value[channel] = bias_entry
        kernel.assign(kernel_value)
        if bias is not None:
            bias.assign(bias_value)


def sticky_ranking(ranking: Ranking, kept: np.ndarray, stickiness: float) -> Ranking:
    """The ranking with the scores of the channels kept now raised by ``stickiness`` (a share).

    A QSAE trained on another window of the same data ranks near-equal channels differently;
    without a margin every re-derivation would swap some of them for nothing. A channel pruned
    now comes back only when its score beats a kept one's by the margin. This is what
    :class:`PruningController`'s ``stickiness`` does at each re-derivation.

    Example:
        >>> ranking = Ranking(np.array([0, 1, 2, 3]), np.array([0.5, 0.95, 0.97, 1.0]), np.zeros(4))
        >>> kept = np.array([True, True, False, True])  # channel 2 is pruned now
        >>> sticky_ranking(ranking, kept, 0.1).order.tolist()  # 0.97 does not beat 0.95 * 1.1
        [0, 2, 1, 3]
    """
    if stickiness == 0 or kept.all():
        return ranking
    scores = ranking.scores * np.where(kept, 1.0 + stickiness, 1.0)
    order = np.lexsort((np.argsort(ranking.order), scores))      # by score, ties in the old order
    scores = np.maximum.accumulate(scores[order])
    normalised = np.empty_like(scores)
    normalised[order] = scores / scores[-1]
    return Ranking(order=order, scores=normalised, importance=ranking.importance)


def _variables(layer: Any) -> tuple[Any, Any]:
    """The stored kernel and bias variables of a ``MaskedLayer``'s inner layer (output channels last)."""
    from tfprune.keras_model import latent_variable

    inner = layer.layer
    bias = inner.bias if getattr(inner, "use_bias", False) else None
    return latent_variable(layer._kernel_variable()), bias
