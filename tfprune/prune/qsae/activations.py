"""Which channels a controller watches, and reading their activations from a Keras model.

A *tap* is one tied channel group (:func:`tfprune.core.graph.channel_groups`) and the tensor its
deepest consumer reads: the next layer's input. A group's activation for a sample is one
value per group channel: the consumer's input summarised per channel by the spatial mean
(a ``Dense`` behind a ``Flatten`` reads a channel at ``H*W`` positions; their mean is taken).

``layers`` chooses the taps: ``"penultimate"`` (the groups the model's last layer reads:
what feeds the classifier), ``"all"`` (every prunable group), or producer layer names.

Example:
    >>> import tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(6, name="hidden"),
    ...                              tf.keras.layers.Dense(2, name="out")])
    >>> [(tap.name, tap.size, tap.consumer) for tap in resolve_taps(model, "penultimate")]
    [('hidden', 6, 'out')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tfprune.core.graph import ChannelGroup

LAYER_CHOICES = ("penultimate", "all")


@dataclass(frozen=True)
class Tap:
    """A watched channel group: named by its first producer, read at ``consumer``'s input."""

    name: str
    group: ChannelGroup
    consumer: str
    rows: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        """Channels in the group."""
        return self.group.size

    @property
    def producers(self) -> list[str]:
        """The layers whose output channels the group's mask prunes."""
        return [member.layer for member in self.group.producers]


def resolve_taps(model: Any, layers: str | Sequence[str] = "penultimate") -> list[Tap]:
    """The taps for ``layers`` (see the module docstring); ValueError names a layer that is not there."""
    from tfprune.core.graph import channel_groups, group_of

    groups = channel_groups(model)
    if isinstance(layers, str) and layers in LAYER_CHOICES:
        if layers == "all":
            chosen = list(groups)
        else:
            last = model.layers[-1].name
            chosen = [g for g in groups if any(c.layer == last for c in g.consumers)]
            if not chosen:
                chosen = [g for g in groups if g.consumers][-1:]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"layers must be 'penultimate', 'all' or a list of layer names, got {layers!r}")
        known = {layer.name for layer in model.layers}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"model {model.name!r} has no layer(s) {unknown}; name conv/dense layers "
                             f"whose channels to prune, or use layers='penultimate' or 'all'")
        ids = {g.id for g in groups}
        chosen = []
        for name in names:
            found = [g for g in group_of(model, name) if g.id in ids]
            if not found:
                raise ValueError(f"the channels of layer {name!r} cannot be pruned (they are tied to the model's "
                                 "input or output); choose another layer")
            chosen += [g for g in found if g.id not in {c.id for c in chosen}]
    if not chosen:
        raise ValueError(f"model {model.name!r} has no prunable channel group for layers={layers!r}")
    taps = []
    for group in chosen:
        if not group.consumers:
            raise ValueError(f"no layer reads the channels of {group.producers[0].layer!r} through a kernel, "
                             "so their activations cannot be read; choose another layer")
        consumer = group.consumers[-1]
        taps.append(Tap(group.producers[0].layer, group, consumer.layer, consumer.rows))
    return taps


def probe_model(model: Any, taps: Sequence[Tap]) -> Any:
    """A Keras model from ``model``'s inputs to each tap's consumer input (sharing its layers)."""
    import tensorflow as tf

    outputs = [model.get_layer(tap.consumer).input for tap in taps]
    return tf.keras.Model(model.inputs, outputs)


def read_activations(probe: Any, taps: Sequence[Tap], x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Tap name -> (N, group size) summarised activations of the samples ``x`` (inference mode)."""
    parts: dict[str, list[np.ndarray]] = {tap.name: [] for tap in taps}
    for start in range(0, len(x), batch_size):
        outputs = probe(x[start:start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for tap, out in zip(taps, outputs):
            values = np.asarray(out, np.float64)
            if values.ndim > 2:  # spatial mean per input channel of the consumer
                values = values.mean(axis=tuple(range(1, values.ndim - 1)))
            parts[tap.name].append(np.stack([values[:, list(rows)].mean(axis=1) for rows in tap.rows], axis=1))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


