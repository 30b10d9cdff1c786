"""Data: CIFAR-10 from npz, TFPRUNE_DATA or the Keras cache, seeded tf.data pipelines, MLPerf indices."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfprune import datasets


def _fake_batches(folder: Path, per_batch: int = 3, offset: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python format: rows of 1024 red, 1024 green, 1024 blue bytes; keys as bytes."""
    folder.mkdir(parents=True)
    written = {}
    for index, name in enumerate(datasets.CIFAR10_BATCHES["train"] + datasets.CIFAR10_BATCHES["test"]):
        rng = np.random.default_rng(index + offset)
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, handle)
        written[name] = (data, labels)
    return written


def _fake_npz(path: Path, images: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
    y = np.arange(images, dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y, x_test=x[::-1], y_test=y[::-1])
    return x, y


@pytest.fixture
def no_project_data(monkeypatch, tmp_path):
    """A machine with neither TFPRUNE_DATA nor the project's data folder; home is tmp_path."""
    monkeypatch.delenv("TFPRUNE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    def missing() -> Path:
        raise ValueError("no data folder found")

    monkeypatch.setattr(datasets, "data_dir", missing)
    return tmp_path


def test_test_split_pipeline_yields_raw_float_pixels_and_int_labels(shared_data):
    x_test, y_test = datasets.cifar10_split("test")
    batches = list(datasets.cifar10_dataset("test", batch_size=16, subset=40))
    assert [tuple(x.shape) for x, _ in batches] == [(16, 32, 32, 3)] * 2 + [(8, 32, 32, 3)]
    x, y = batches[0]
    assert x.dtype.name == "float32" and y.dtype.name == "int32"
    np.testing.assert_array_equal(x.numpy(), x_test[:16].astype(np.float32))  # 0..255, test split unshuffled
    np.testing.assert_array_equal(y.numpy(), y_test[:16])


def test_subset_by_mlperf_indices(shared_data):
    indices = datasets.mlperf_perf_indices()
    calibration = datasets.mlperf_calibration_indices()
    assert indices.shape == (200,) and calibration.shape == (500,)
    assert len(set(indices.tolist())) == 200 and 0 <= indices.min() and indices.max() < 10_000
    x_test, y_test = datasets.cifar10_split("test")
    labels = np.concatenate([y.numpy() for _, y in datasets.cifar10_dataset("test", 64, subset=indices)])
    np.testing.assert_array_equal(labels, y_test[indices])


def test_shuffle_and_augmentation_are_deterministic_under_a_seed(shared_data):
    def epochs(seed: int) -> list[list[np.ndarray]]:
        dataset = datasets.cifar10_dataset("train", 32, augment=True, seed=seed, subset=64)
        return [[x.numpy() for x, _ in dataset] for _ in range(2)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for a, b in zip(sum(first, []), sum(again, [])):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], first[1][0]), "each epoch draws new orders and crops"
    assert not np.array_equal(first[0][0], other[0][0])


def test_augmentation_crops_and_flips_but_keeps_labels(shared_data):
    plain = datasets.cifar10_dataset("test", 32, subset=32)
    augmented = datasets.cifar10_dataset("test", 32, augment=True, seed=0, subset=32, shuffle=False)
    (x, y), (x_aug, y_aug) = next(iter(plain)), next(iter(augmented))
    np.testing.assert_array_equal(y.numpy(), y_aug.numpy())
    changed = [not np.array_equal(a, b) for a, b in zip(x.numpy(), x_aug.numpy())]
    assert sum(changed) >= 24, "most of 32 images should be shifted or flipped"
    pad = datasets.CROP_PADDING
    for image, result in zip(x.numpy(), x_aug.numpy()):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
        windows = [padded[top:top + 32, left:left + 32] for top in range(2 * pad + 1) for left in range(2 * pad + 1)]
        assert any(np.array_equal(result, w) or np.array_equal(result, w[:, ::-1]) for w in windows)


def test_keras_cache_is_read_as_cifar_python_batches(no_project_data):
    written = _fake_batches(no_project_data / ".keras" / "datasets" / "cifar-10-batches-py")
    (x, y), (x_test, y_test) = datasets.load_cifar10()
    assert x.shape == (15, 32, 32, 3) and x_test.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    data, labels = written["data_batch_2"]
    red, green, blue = data[1, :1024], data[1, 1024:2048], data[1, 2048:]
    np.testing.assert_array_equal(x[4, :, :, 0].reshape(-1), red)
    np.testing.assert_array_equal(x[4, :, :, 1].reshape(-1), green)
    np.testing.assert_array_equal(x[4, 0, :, 2], blue[:32])  # row-major: first row of the blue plane
    assert y[3:6].tolist() == labels
    assert y_test.tolist() == written["test_batch"][1]
    shapes = [tuple(batch.shape) for batch, _ in datasets.cifar10_dataset("test", 2)]
    assert shapes == [(2, 32, 32, 3), (1, 32, 32, 3)]


def test_tfprune_data_overrides_the_keras_cache(no_project_data, monkeypatch, tmp_path):
    _fake_batches(no_project_data / ".keras" / "datasets" / "cifar-10-batches-py")
    folder = tmp_path / "mine"
    folder.mkdir()
    x, y = _fake_npz(folder / "cifar10.npz")
    monkeypatch.setenv("TFPRUNE_DATA", str(folder))
    (x_train, y_train), (x_test, _) = datasets.load_cifar10()
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(x_test, x[::-1])
    # a batches folder there is read too
    (folder / "cifar10.npz").unlink()
    _fake_batches(folder / "cifar-10-batches-py", per_batch=2, offset=100)
    assert datasets.cifar10_split("test")[0].shape == (2, 32, 32, 3)
    # and when it holds neither, nothing else is looked at
    monkeypatch.setenv("TFPRUNE_DATA", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="put cifar10.npz in"):
        datasets.cifar10_split("test")


def test_no_download_unless_asked(no_project_data, monkeypatch):
    import tensorflow as tf

    calls = []

    def fake_load_data():
        calls.append(1)
        x = np.zeros((2, 32, 32, 3), np.uint8)
        return (x, np.array([[1], [2]], np.uint8)), (x[:1], np.array([[3]], np.uint8))

    monkeypatch.setattr(tf.keras.datasets.cifar10, "load_data", fake_load_data)
    with pytest.raises(ValueError, match=r"\.keras/datasets/cifar-10-batches-py.*download=True"):
        datasets.load_cifar10()
    assert calls == []
    (_, y), (_, y_test) = datasets.load_cifar10(download=True)
    assert y.tolist() == [1, 2] and y_test.tolist() == [3] and calls


def test_explicit_paths(tmp_path):
    x, _ = _fake_npz(tmp_path / "c.npz")
    np.testing.assert_array_equal(datasets.cifar10_split("train", tmp_path / "c.npz")[0], x)
    _fake_batches(tmp_path / "batches")
    assert datasets.cifar10_split("train", tmp_path / "batches")[0].shape == (15, 32, 32, 3)
    (tmp_path / "batches" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3"):
        datasets.cifar10_split("train", tmp_path / "batches")


@pytest.mark.parametrize("arguments, message", [
    (dict(split="valid", batch_size=8), "split"),
    (dict(split="test", batch_size=0), "batch_size"),
    (dict(split="test", batch_size=8, seed=-1), "seed"),
    (dict(split="test", batch_size=8, subset=10_001), "subset"),
    (dict(split="test", batch_size=8, subset=[0, 10_000]), "subset indices"),
])
def test_bad_arguments_say_what_to_fix(shared_data, arguments, message):
    with pytest.raises(ValueError, match=message):
        datasets.cifar10_dataset(**arguments)


def test_synthetic_keywords_fit_ds_cnn_and_are_seeded():
    x, y = datasets.synthetic_keywords(64, seed=5)
    assert x.shape == (64, 49, 10, 1) and x.dtype == np.float32 and set(y.tolist()) <= set(range(12))
    again, _ = datasets.synthetic_keywords(64, seed=5)
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x, datasets.synthetic_keywords(64, seed=6)[0])
    # learnable: each sample lies nearest to its own class mean
    means = np.stack([x[y == label].mean(0) for label in range(12) if np.any(y == label)])
    present = [label for label in range(12) if np.any(y == label)]
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4)), axis=1)
    assert np.mean(np.array(present)[nearest] == y) > 0.9


def test_importing_data_and_models_does_not_import_tensorflow():
    code = "import sys, tfprune.datasets, tfprune.models; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_data_fails_with_one_line_naming_where_it_looked(monkeypatch, tmp_path):
    from tfprune.models import resnet8

    monkeypatch.setenv("TFPRUNE_DATA", str(tmp_path))
    for call in (lambda: resnet8(weights="mlperf"), datasets.mlperf_perf_indices, datasets.load_mnist):
        with pytest.raises(ValueError) as raised:
            call()
        message = str(raised.value)
        assert "\n" not in message and str(tmp_path) in message and "TFPRUNE_DATA" in message
    monkeypatch.setenv("TFPRUNE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"TFPRUNE_DATA=.*nowhere is not a folder"):
        datasets.data_dir()


def test_reference_model_and_data_load_from_any_folder_with_tfprune_data(shared_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mlperf_tiny").symlink_to(shared_data / "mlperf_tiny")
    (data / "mnist.npz").symlink_to(shared_data / "mnist.npz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("from tfprune import datasets, models; "
            "print(models.resnet8(weights='mlperf').count_params(), len(datasets.mlperf_perf_indices()), "
            "datasets.load_mnist()[1][0].shape, datasets.data_dir())")
    checkout = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TFPRUNE_DATA": str(data), "PYTHONPATH": str(checkout), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["78666", "200", "(10000,", "28,", "28,", "1)", str(data)]
