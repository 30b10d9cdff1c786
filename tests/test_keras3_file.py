"""Keras 3 files: rebuilt as Keras 2 models where Keras 2 has their layers, else one line.

The fixtures in tests/data were written by Keras 3.15.1 (tests/data/make_keras3_fixtures.py),
so these run on both stacks, including the pinned one that has no Keras 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfprune
from tfprune.keras_model import prunable_layers, tensor_origin

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_keras3_file_loads_as_a_keras2_model_with_the_same_outputs(kind):
    model = tfprune.load_model(DATA / f"keras3_{kind}.keras")
    saved = np.load(DATA / "keras3_outputs.npz")
    assert isinstance(model, tf.keras.Model)
    np.testing.assert_allclose(model.predict(saved[f"x_{kind}"], verbose=0), saved[f"y_{kind}"], atol=1e-5)


def test_keras3_functional_model_keeps_names_graph_and_regularizer_and_can_be_pruned():
    model = tfprune.load_model(DATA / "keras3_functional.keras")
    assert list(prunable_layers(model)) == ["stem", "dw", "pw", "logits"]
    assert model.get_layer("pw").kernel_regularizer is not None
    producers = [tensor_origin(tensor)[0].name for tensor in model.get_layer("residual").input]
    assert producers == ["re_lu", "pw"]
    pruned = tfprune.l1_filter_pruning(model, sparsity=0.5)
    assert pruned.get_layer("stem").kernel.shape[-1] < 8


def test_keras3_layer_keras2_lacks_gives_one_line():
    with pytest.raises(ValueError) as error:
        tfprune.load_model(DATA / "keras3_unsupported.keras")
    message = str(error.value)
    assert "\n" not in message and "RMSNormalization" in message and "'rms'" in message


def test_keras3_h5_file_says_to_save_as_keras():
    with pytest.raises(ValueError) as error:
        tfprune.load_model(DATA / "keras3_tiny.h5")
    message = str(error.value)
    assert "\n" not in message and "Keras 3" in message and "model.save('model.keras')" in message


def test_keras3_model_in_memory_says_how_to_get_a_keras2_one():
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3"):
        pytest.skip("Keras 3 exists only on the current stack")  # the pinned stack's keras is 2.15
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError) as error:
        tfprune.export(model)
    message = str(error.value)
    assert "\n" not in message and "Keras 3" in message and "tfprune.load_model" in message


def test_tf_keras_is_keras_2_on_every_stack():
    from tfprune.keras_model import keras_version

    assert keras_version().startswith("2.")
    assert tf.keras.layers.Dense.__module__.split(".")[0] in ("keras", "tf_keras")
