"""A drifting CIFAR-10 stream: phases whose class mix and corruption change over time.

The drift scenario of the QSAE controller (seed 000): a device sees one distribution, then
another. Each :class:`Phase` draws its training and test images from CIFAR-10 with its own
class weights and corrupts them the same way (Gaussian pixel noise of ``noise`` std,
contrast scaled by ``contrast`` around the image mean, brightness shifted by ``brightness``;
pixels stay 0..255 float32, as ResNet-8 takes them). Everything is drawn from ``seed``.

The default phases:

==========  =======================================  =====  ========  ==========
phase       classes                                  noise  contrast  brightness
==========  =======================================  =====  ========  ==========
clean       all ten, uniform                         0      1.0       0
vehicles    airplane, automobile, ship, truck x4     5      0.9       0
animals     the six animals x4                       10     0.75      -10
night       all ten, uniform                         15     0.6       -30
==========  =======================================  =====  ========  ==========

Example:
    >>> phases = cifar10_drift_stream(train_per_phase=40, test_per_phase=20, seed=0)
    >>> [(p.name, p.x_train.shape[0], p.x_test.shape[0]) for p in phases][:2]
    [('clean', 40, 20), ('vehicles', 40, 20)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: CIFAR-10's vehicle classes (airplane, automobile, ship, truck); the other six are animals.
VEHICLES = (0, 1, 8, 9)


@dataclass(frozen=True)
class PhaseSpec:
    """How one phase draws and corrupts images: relative class weights and the corruption.

    Example:
        >>> PhaseSpec("clean").weights().tolist() == [0.1] * 10
        True
    """

    name: str
    class_weights: tuple[float, ...] = (1.0,) * 10
    noise: float = 0.0
    contrast: float = 1.0
    brightness: float = 0.0

    def weights(self) -> np.ndarray:
        """The class weights normalised to sum to 1."""
        w = np.asarray(self.class_weights, np.float64)
        if w.shape != (10,) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"phase {self.name!r}: class_weights must be 10 numbers >= 0, not all 0")
        return w / w.sum()


def _mix(favoured: Sequence[int], factor: float = 4.0) -> tuple[float, ...]:
    return tuple(factor if c in favoured else 1.0 for c in range(10))


DEFAULT_PHASES: tuple[PhaseSpec, ...] = (
    PhaseSpec("clean"),
    PhaseSpec("vehicles", _mix(VEHICLES), noise=5.0, contrast=0.9),
    PhaseSpec("animals", _mix([c for c in range(10) if c not in VEHICLES]), noise=10.0, contrast=0.75,
              brightness=-10.0),
    PhaseSpec("night", noise=15.0, contrast=0.6, brightness=-30.0),
)


@dataclass(frozen=True)
class Phase:
    """One phase of the stream: its spec and its corrupted training and test images."""

    spec: PhaseSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def name(self) -> str:
        """The phase's name."""
        return self.spec.name


def corrupt(images: np.ndarray, spec: PhaseSpec, rng: np.random.Generator) -> np.ndarray:
    """``images`` (0..255) with the phase's contrast, brightness and noise, clipped to 0..255, float32.

    Example:
        >>> x = np.full((1, 2, 2, 3), 100.0)
        >>> float(corrupt(x, PhaseSpec("dim", brightness=-50.0), np.random.default_rng(0)).max())
        50.0
    """
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * spec.contrast + mean + spec.brightness
    if spec.noise:
        x = x + rng.normal(0.0, spec.noise, x.shape).astype(np.float32)
    return np.clip(x, 0.0, 255.0).astype(np.float32)


def cifar10_drift_stream(
    phases: Sequence[PhaseSpec] = DEFAULT_PHASES,
    train_per_phase: int = 10_000,
    test_per_phase: int = 2_000,
    seed: int = 0,
    data: Any = None,
) -> list[Phase]:
    """The phases of the drifting stream, drawn from CIFAR-10's train and test splits.

    Training images of different phases are disjoint draws (without replacement across the
    stream as long as the split lasts, then with fresh draws); test images come from the test
    split. ``data`` is ``((x_train, y_train), (x_test, y_test))`` to use instead of
    :func:`tfprune.datasets.load_cifar10` (tests pass small arrays).
    """
    if not phases:
        raise ValueError("phases is empty; give at least one PhaseSpec")
    for name, value in (("train_per_phase", train_per_phase), ("test_per_phase", test_per_phase)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if data is None:
        from tfprune.datasets import load_cifar10

        data = load_cifar10()
    (x_train, y_train), (x_test, y_test) = data
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    rng = np.random.default_rng(seed)
    used = np.zeros(len(y_train), bool)
    stream = []
    for spec in phases:
        weights = spec.weights()
        train_idx = _draw(y_train, weights, train_per_phase, rng, used)
        used[train_idx] = True
        test_idx = _draw(y_test, weights, test_per_phase, rng, None)
        stream.append(Phase(spec, corrupt(x_train[train_idx], spec, rng), y_train[train_idx].astype(np.int64),
                            corrupt(x_test[test_idx], spec, rng), y_test[test_idx].astype(np.int64)))
    return stream


def _draw(labels: np.ndarray, weights: np.ndarray, count: int, rng: np.random.Generator,
          used: np.ndarray | None) -> np.ndarray:
    """``count`` indices whose labels follow ``weights``, avoiding ``used`` ones while enough remain."""
    per_class = rng.multinomial(count, weights)
    chosen = []
    for label, k in enumerate(per_class):
        if k == 0:
            continue
        pool = np.flatnonzero(labels == label)
        if used is not None and (~used[pool]).sum() >= k:
            pool = pool[~used[pool]]
        if len(pool) == 0:
            raise ValueError(f"no image of class {label} to draw from")
        chosen.append(rng.choice(pool, k, replace=len(pool) < k))
    indices = np.concatenate(chosen)
    return indices[rng.permutation(len(indices))]
