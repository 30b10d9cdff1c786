"""Local data: CIFAR-10 and MNIST from ``.npz`` files, and synthetic data for tests.

Nothing here downloads. The data folder is ``$TFPRUNE_DATA`` when set, else
the first ``shared/data`` found beside the working directory or this checkout
(the project's read-only copy of the public datasets).

Example:
    >>> x, y = synthetic_images(8, (8, 8, 1), classes=2, seed=0)
    >>> x.shape, sorted(set(y.tolist())) <= [0, 1]
    ((8, 8, 8, 1), True)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def data_dir() -> Path:
    """The folder that holds ``cifar10.npz``, ``mnist.npz`` and ``mlperf_tiny/``.

    Example:
        >>> data_dir().name
        'data'
    """
    if os.environ.get("TFPRUNE_DATA"):
        return Path(os.environ["TFPRUNE_DATA"])
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise ValueError(
        "no data folder found: set TFPRUNE_DATA to a folder holding cifar10.npz / mnist.npz "
        "(arrays x_train, y_train, x_test, y_test)"
    )


def load_cifar10(path: str | os.PathLike | None = None) -> Arrays:
    """CIFAR-10 as uint8 ``(x_train, y_train), (x_test, y_test)``, labels flat.

    Example:
        >>> (x, y), (xt, yt) = load_cifar10()
        >>> x.shape, xt.shape
        ((50000, 32, 32, 3), (10000, 32, 32, 3))
    """
    return _load_npz(Path(path) if path else data_dir() / "cifar10.npz")


def load_mnist(path: str | os.PathLike | None = None) -> Arrays:
    """MNIST as uint8 ``(x_train, y_train), (x_test, y_test)`` with a channel axis added.

    Example:
        >>> (x, y), _ = load_mnist()
        >>> x.shape
        (60000, 28, 28, 1)
    """
    (x, y), (xt, yt) = _load_npz(Path(path) if path else data_dir() / "mnist.npz")
    return (x[..., None], y), (xt[..., None], yt)


def _load_npz(path: Path) -> Arrays:
    if not path.is_file():
        raise ValueError(f"{path}: no such file; set TFPRUNE_DATA or pass the .npz path")
    with np.load(path) as archive:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        return (
            (archive["x_train"], archive["y_train"].reshape(-1)),
            (archive["x_test"], archive["y_test"].reshape(-1)),
        )


def synthetic_images(
    count: int, shape: tuple[int, ...], classes: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable image task: each class is a fixed random pattern plus noise, floats in 0..1.

    Example:
        >>> x, y = synthetic_images(4, (4, 4, 3), classes=3, seed=1)
        >>> float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        True
    """
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 1, (classes, *shape))
    labels = rng.integers(0, classes, count)
    noise = rng.normal(0, 0.15, (count, *shape))
    return np.clip(patterns[labels] + noise, 0, 1).astype(np.float32), labels.astype(np.int64)
