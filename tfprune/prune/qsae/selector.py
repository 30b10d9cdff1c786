"""QSAE as a channel selector: every prunable group ranked by its autoencoder's importance.

The same ranking the :class:`tfprune.prune.qsae.PruningController` prunes by (a
QSAE per tapped group, trained on the group's activations, channels eliminated
one by one), for a caller that decides the widths itself: the ``qsae`` selector
of :func:`tfprune.compress`.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="hidden"),
    ...                              tf.keras.layers.Dense(2, name="out")])
    >>> importance = group_importance(model, np.random.default_rng(0).normal(size=(64, 4)), steps=20)
    >>> {group: scores.shape for group, scores in importance.items()}
    {0: (3,)}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfprune.keras_model import labelled_samples, model_sample_shape
from tfprune.prune.qsae.activations import probe_model, read_activations, resolve_taps
from tfprune.prune.qsae.autoencoder import QSAE


def group_importance(model: Any, data: Any, *, samples: int = 512, steps: int = 300, refit_steps: int = 50,
                     seed: int = 0) -> dict[int, np.ndarray]:
    """Group id -> QSAE channel scores in [0, 1] (higher: more important) of every prunable group.

    ``data`` is read as any tfprune sample data (arrays, ``(x, y)``, ``tf.data``);
    the first ``samples`` inputs are used. Groups of one channel get score 1.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, name="h"),
        ...                              tf.keras.layers.Dense(2, name="out")])
        >>> group_importance(model, np.ones((8, 3)))[0].tolist()
        [1.0]
    """
    x = labelled_samples(data, model_sample_shape(model), samples)[0]
    taps = resolve_taps(model, "all")
    activations = read_activations(probe_model(model, taps), taps, x)
    importance = {}
    for tap in taps:
        if tap.size < 2:
            importance[tap.group.id] = np.ones(tap.size)
            continue
        ranking = QSAE(steps=steps, refit_steps=refit_steps, seed=seed).rank(activations[tap.name])
        importance[tap.group.id] = np.asarray(ranking.scores, np.float64)
    return importance
