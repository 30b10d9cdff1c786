"""Local data: CIFAR-10 and MNIST, MLPerf Tiny's index files, tf.data pipelines, synthetic data.

Nothing here downloads unless asked to (``download=True``). The data folder is
``$TFPRUNE_DATA`` when set, else ``../shared/data`` beside this checkout of
tfprune (the project's read-only copy of the public datasets); the working
directory plays no part, and every loader also takes an explicit path. A file
that is not there fails with one line naming where it was looked for.
CIFAR-10 may also come from the Keras cache
(``~/.keras/datasets/cifar-10-batches-py``, where Keras's own download puts it).
TensorFlow is imported only by the functions that build ``tf.data`` pipelines.

Example:
    >>> x, y = synthetic_images(8, (8, 8, 1), classes=2, seed=0)
    >>> x.shape, sorted(set(y.tolist())) <= [0, 1]
    ((8, 8, 8, 1), True)
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Where ``tf.keras.datasets.cifar10.load_data()`` leaves the extracted batches, under the Keras home.
CIFAR10_CACHE = Path("datasets") / "cifar-10-batches-py"
#: The pickled batches of CIFAR-10's "python version", per split.
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SPLITS = ("train", "test")
#: Zero padding on each side before the random 32x32 crop of ``augment=True``.
CROP_PADDING = 4
#: The data folder when ``TFPRUNE_DATA`` is not set: ``shared/data`` beside the checkout holding this package.
CHECKOUT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_dir() -> Path:
    """The folder that holds ``cifar10.npz``, ``mnist.npz`` and ``mlperf_tiny/``.

    ``$TFPRUNE_DATA`` when set, else ``shared/data`` beside this checkout
    (:data:`CHECKOUT_DATA`); a ``ValueError`` naming where it looked otherwise.

    Example:
        >>> sorted(path.name for path in data_dir().glob("*.npz"))
        ['cifar10.npz', 'mnist.npz']
    """
    override = os.environ.get("TFPRUNE_DATA")
    if override:
        folder = Path(override).expanduser()
        if not folder.is_dir():
            raise ValueError(f"TFPRUNE_DATA={override} is not a folder; point it at the folder holding "
                             "cifar10.npz, mnist.npz and mlperf_tiny/")
        return folder
    if CHECKOUT_DATA.is_dir():
        return CHECKOUT_DATA
    raise ValueError(
        f"no data folder: TFPRUNE_DATA is not set and {CHECKOUT_DATA} (beside this checkout) does not exist; "
        "set TFPRUNE_DATA to the folder holding cifar10.npz, mnist.npz and mlperf_tiny/, or pass the file's path"
    )


def mlperf_path(name: str) -> Path:
    """A file of MLPerf Tiny's image-classification reference, in the data folder's ``mlperf_tiny/``.

    ``ValueError`` naming the path it looked at when the file is not there.

    Example:
        >>> mlperf_path("pretrainedResnet_quant.tflite").stat().st_size
        98496
    """
    path = data_dir() / "mlperf_tiny" / name
    if not path.is_file():
        source = "from TFPRUNE_DATA" if os.environ.get("TFPRUNE_DATA") else "beside this checkout"
        raise ValueError(f"{path}: no such file (data folder {source}); set TFPRUNE_DATA to a folder holding "
                         f"mlperf_tiny/{name}, or pass the file's path")
    return path


def keras_cache_dirs() -> list[Path]:
    """Where Keras 2's ``get_file`` caches downloads: ``~/.keras``, or ``/tmp/.keras`` when home is read-only.

    Example:
        >>> [path.name for path in keras_cache_dirs()]
        ['.keras', '.keras']
    """
    return [Path(os.path.expanduser("~")) / ".keras", Path("/tmp") / ".keras"]


def load_cifar10(path: str | os.PathLike | None = None, download: bool = False) -> Arrays:
    """CIFAR-10 as uint8 ``(x_train, y_train), (x_test, y_test)``, NHWC, labels flat.

    ``path`` is a ``.npz`` (arrays ``x_train``, ``y_train``, ``x_test``,
    ``y_test``) or a ``cifar-10-batches-py`` folder. Without it the data comes
    from, in order: ``$TFPRUNE_DATA`` (``cifar10.npz`` or
    ``cifar-10-batches-py/`` there; when set it is the only place looked at),
    the project's ``shared/data/cifar10.npz``, the Keras cache, and, only with
    ``download=True``, ``tf.keras.datasets.cifar10.load_data()``.

    Example:
        >>> (x, y), (xt, yt) = load_cifar10()
        >>> x.shape, xt.shape
        ((50000, 32, 32, 3), (10000, 32, 32, 3))
    """
    return cifar10_split("train", path, download), cifar10_split("test", path, download)


def cifar10_split(
    split: str, path: str | os.PathLike | None = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 split as uint8 ``(x, y)``, reading only that split (see :func:`load_cifar10`).

    Example:
        >>> x, y = cifar10_split("test")
        >>> x.shape, x.dtype, y[:5].tolist()
        ((10000, 32, 32, 3), dtype('uint8'), [3, 8, 8, 0, 6])
    """
    if split not in SPLITS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; choose 'train' or 'test'")
    source = Path(path) if path is not None else _find_cifar10(download)
    if source is None:
        return _download_cifar10(split)
    if source.is_dir():
        return _read_cifar10_batches(source, split)
    return _load_npz_split(source, split)


def cifar10_dataset(
    split: str,
    batch_size: int,
    augment: bool = False,
    seed: int = 0,
    subset: int | Sequence[int] | np.ndarray | None = None,
    shuffle: bool | None = None,
    path: str | os.PathLike | None = None,
    download: bool = False,
) -> Any:
    """A ``tf.data.Dataset`` of CIFAR-10 ``(x, y)`` batches: float32 pixels 0..255, int32 labels.

    Raw pixels, as MLPerf Tiny's ResNet-8 expects them (models that want 0..1
    put a ``Rescaling`` layer first). ``augment`` pads 4 pixels of zeros on
    each side, crops a random 32x32 window and flips half the images
    horizontally. ``shuffle`` (default: the train split only) reshuffles each
    epoch. Both are seeded: the same ``seed`` gives the same batches epoch by
    epoch, and each epoch draws new crops and orders. ``subset`` keeps the
    first ``n`` images, or the images at the given indices (e.g.
    :func:`mlperf_perf_indices`). ``path`` and ``download`` as in
    :func:`load_cifar10`.

    Example:
        >>> dataset = cifar10_dataset("test", batch_size=4, subset=8)
        >>> [tuple(x.shape) for x, _ in dataset]
        [(4, 32, 32, 3), (4, 32, 32, 3)]
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, not {batch_size!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, not {seed!r}")
    x, y = cifar10_split(split, path, download)
    x, y = _take_subset(x, y, subset)
    return image_dataset(x, y, batch_size, augment=augment, seed=seed,
                         shuffle=split == "train" if shuffle is None else shuffle)


def image_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool = False, seed: int = 0, shuffle: bool = False
) -> Any:
    """Batches ``(float32 x, int32 y)`` from image arrays ``(N, H, W, C)``, seeded shuffle and augmentation.

    The pipeline of :func:`cifar10_dataset`, for any images.

    Example:
        >>> x, y = synthetic_images(6, (8, 8, 3), seed=0)
        >>> [int(b.shape[0]) for _, b in image_dataset(x, y, batch_size=4, augment=True)]
        [4, 2]
    """
    import tensorflow as tf

    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need images (N, H, W, C) and N labels, got shapes {x.shape} and {y.shape}")
    dataset = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    cast = lambda image, label: (tf.cast(image, tf.float32), label)  # noqa: E731
    if augment:
        # Seeds drawn per image from a seeded stream: reproducible, yet new crops each epoch.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, keys)).map(
            lambda pair, key: _augment(*cast(*pair), key, x.shape[1:]), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(cast, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _augment(image: Any, label: Any, key: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    import tensorflow as tf

    crop_key = tf.stack([key[0], 0])
    flip_key = tf.stack([key[1], 1])
    pad = CROP_PADDING
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_key)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_key), label


def _take_subset(x: np.ndarray, y: np.ndarray, subset: Any) -> tuple[np.ndarray, np.ndarray]:
    if subset is None:
        return x, y
    if isinstance(subset, (int, np.integer)) and not isinstance(subset, bool):
        if not 0 < subset <= len(x):
            raise ValueError(f"subset must be between 1 and {len(x)} images, not {subset}")
        return x[:subset], y[:subset]
    indices = np.asarray(subset)
    if indices.ndim != 1 or indices.size == 0 or indices.dtype.kind not in "iu":
        raise ValueError("subset must be an int or a non-empty 1-D array of integer indices")
    if indices.min() < 0 or indices.max() >= len(x):
        raise ValueError(f"subset indices must lie in 0..{len(x) - 1}, got {indices.min()}..{indices.max()}")
    return x[indices], y[indices]


def _find_cifar10(download: bool) -> Path | None:
    """The first CIFAR-10 source found; None means download; ValueError when there is none."""
    override = os.environ.get("TFPRUNE_DATA")
    if override:
        candidates = [Path(override) / "cifar10.npz", Path(override) / CIFAR10_CACHE.name]
    else:
        candidates = [folder / CIFAR10_CACHE for folder in keras_cache_dirs()]
        try:
            candidates.insert(0, data_dir() / "cifar10.npz")
        except ValueError:
            pass  # no project data folder: the Keras cache may still hold CIFAR-10
    for candidate in candidates:
        if candidate.is_file() or (candidate.is_dir() and (candidate / "test_batch").is_file()):
            return candidate
    if download and not override:
        return None
    raise ValueError(
        f"CIFAR-10 not found in {', '.join(str(c) for c in candidates)}: put cifar10.npz in "
        "$TFPRUNE_DATA (or the extracted cifar-10-batches-py/ in the Keras cache), "
        "or pass download=True where a network exists"
    )


def _download_cifar10(split: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    train, test = tf.keras.datasets.cifar10.load_data()
    x, y = train if split == "train" else test
    return x, y.reshape(-1)


def _read_cifar10_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's pickled "python version" batches, as the Keras download extracts them.

    Unpickling runs code from the file: these are the user's own cache files, read as Keras reads them.
    """
    images, labels = [], []
    for name in CIFAR10_BATCHES[split]:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{path}: missing CIFAR-10 batch; the folder must hold data_batch_1..5 and test_batch")
        with open(path, "rb") as handle:
            batch = {_text(key): value for key, value in pickle.load(handle, encoding="bytes").items()}
        if "data" not in batch or "labels" not in batch:
            raise ValueError(f"{path}: not a CIFAR-10 batch (no 'data' and 'labels' entries)")
        # Rows hold 1024 red, then green, then blue values: channels first.
        images.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], np.uint8).reshape(-1))
    return np.concatenate(images), np.concatenate(labels)


def _text(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


def mlperf_perf_indices(path: str | os.PathLike | None = None) -> np.ndarray:
    """The 200 CIFAR-10 test-set indices of MLPerf Tiny's accuracy/performance subset.

    Example:
        >>> indices = mlperf_perf_indices()
        >>> len(indices), len(set(indices.tolist()))
        (200, 200)
    """
    return _load_indices(path, "perf_samples_idxs.npy")


def mlperf_calibration_indices(path: str | os.PathLike | None = None) -> np.ndarray:
    """The 500 CIFAR-10 test-set indices MLPerf Tiny used to calibrate its int8 ResNet-8.

    Example:
        >>> len(mlperf_calibration_indices())
        500
    """
    return _load_indices(path, "calibration_samples_idxs.npy")


def _load_indices(path: str | os.PathLike | None, name: str) -> np.ndarray:
    path = Path(path) if path is not None else mlperf_path(name)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    indices = np.load(path)
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected a 1-D array of integer indices, got {indices.dtype} {indices.shape}")
    return indices.astype(np.int64)


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
    return _load_npz_split(path, "train"), _load_npz_split(path, "test")


def _load_npz_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ValueError(f"{path}: no such file; set TFPRUNE_DATA to the folder holding {path.name}, or pass its path")
    with np.load(path) as archive:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        return archive[f"x_{split}"], archive[f"y_{split}"].reshape(-1)


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


def synthetic_keywords(
    count: int, seed: int = 0, classes: int = 12, shape: tuple[int, int, int] = (49, 10, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable keyword-spotting stand-in for :func:`tfprune.models.ds_cnn`: (49, 10, 1) "MFCCs".

    Each class is a fixed pattern of standard-normal coefficients, smooth
    along time as MFCC frames are, plus noise; float32, labels 0..classes-1.

    Example:
        >>> x, y = synthetic_keywords(5, seed=0)
        >>> x.shape, x.dtype, int(y.max()) < 12
        ((5, 49, 10, 1), dtype('float32'), True)
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, not {count!r}")
    if not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an int >= 2, not {classes!r}")
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 1, (classes, *shape))
    # A running mean over 5 frames gives neighbouring frames correlated coefficients.
    kernel = np.ones(5) / 5
    patterns = np.apply_along_axis(lambda column: np.convolve(column, kernel, "same"), 1, patterns)
    patterns /= patterns.std(axis=(1, 2, 3), keepdims=True)
    labels = rng.integers(0, classes, count)
    noise = rng.normal(0, 0.5, (count, *shape))
    return (patterns[labels] + noise).astype(np.float32), labels.astype(np.int64)


def __getattr__(name: str) -> Any:
    # one release of the old path; the stream moved to tfprune.drift, which reads this module
    if name == "cifar10_drift_stream":
        import importlib
        import warnings

        warnings.warn("tfprune.datasets.cifar10_drift_stream moved to tfprune.drift.cifar10_drift_stream",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module("tfprune.drift").cifar10_drift_stream
    raise AttributeError(f"module 'tfprune.datasets' has no attribute {name!r}")
