"""Shared fixtures: real data from ../shared/data and a small CNN trained on MNIST."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's read-only copy of the public datasets (CI has it beside the clone)."""
    if not (SHARED_DATA / "mnist.npz").is_file():
        pytest.fail(f"{SHARED_DATA} is missing: the tests need ../shared/data beside the checkout")
    return SHARED_DATA


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
