"""Shared fixtures: the real data (``$TFPRUNE_DATA``, see ../conftest.py) and a small CNN trained on MNIST.

A test asking for one of them is an integration test (../conftest.py marks it).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's read-only copy of the public datasets: ``$TFPRUNE_DATA``, CI's ../shared/data."""
    from tfprune.datasets import data_dir

    try:
        folder = data_dir()
    except ValueError as error:
        pytest.fail(f"the integration tests need the data: {error}")
    if not (folder / "mnist.npz").is_file():
        pytest.fail(f"{folder} holds no mnist.npz: the tests need the project's data folder (../shared/data)")
    return folder


@pytest.fixture(scope="session")
def mlperf_quant(shared_data: Path) -> Path:
    """MLPerf Tiny's int8 ResNet-8 reference flatbuffer."""
    return shared_data / "mlperf_tiny" / "pretrainedResnet_quant.tflite"


@pytest.fixture(scope="session")
def trained_mnist(shared_data: Path):
    """A small CNN trained on 6,000 MNIST images; 300 held-out test images to check on.

    Returns (model, x_calibration, (x_held_out, y_held_out)); inputs are raw 0..255 floats.
    """
    import tensorflow as tf

    from tfprune.datasets import load_mnist
    from tfprune.models import small_cnn

    tf.keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = load_mnist(shared_data / "mnist.npz")
    x, y = x[:6000].astype(np.float32), y[:6000]
    model = small_cnn((28, 28, 1), classes=10, widths=(16, 32))
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    held_out = (x_test[:300].astype(np.float32), y_test[:300])
    return model, x[:200], held_out
