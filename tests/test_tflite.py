"""Conversion inputs: representative data in every accepted form, and models we refuse."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from tfprune import keras_model
from tfprune.deploy import tflite


def tiny_model() -> tf.keras.Model:
    return tf.keras.Sequential([tf.keras.Input((4, 4, 2)), tf.keras.layers.Conv2D(3, 3),
                                tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)])


def test_representative_array_takes_arrays_datasets_and_npz(tmp_path):
    x = np.arange(700 * 32, dtype=np.uint8).reshape(700, 4, 4, 2)
    y = np.arange(700) % 3
    from_array = tflite.representative_array(x, (4, 4, 2))
    assert from_array.shape == (500, 4, 4, 2) and from_array.dtype == np.float32
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    np.testing.assert_array_equal(tflite.representative_array(batches, (4, 4, 2)), from_array)
    singles = tf.data.Dataset.from_tensor_slices(x[:10])
    np.testing.assert_array_equal(tflite.representative_array(singles, (4, 4, 2)), from_array[:10])
    np.savez(tmp_path / "only.npz", samples=x[:20])
    np.savez(tmp_path / "named.npz", x=x[:30], y=y[:30])
    assert tflite.representative_array(tmp_path / "only.npz", (4, 4, 2)).shape[0] == 20
    samples, labels = keras_model.labelled_samples(tmp_path / "named.npz", (4, 4, 2))
    assert samples.shape[0] == 30 and labels.tolist() == y[:30].tolist()


def test_labels_from_batches_and_one_hot():
    x = np.zeros((10, 4, 4, 2), np.float32)
    y = np.eye(3)[np.arange(10) % 3]
    _, labels = keras_model.labelled_samples(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), (4, 4, 2))
    assert labels.tolist() == (np.arange(10) % 3).tolist()


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((5, 4, 4, 3), np.float32), r"samples of shape \(4, 4, 3\) but the model takes \(4, 4, 2\)"),
        (np.array([["a"] * 32] * 2).reshape(2, 4, 4, 2), "must be numeric"),
        (np.full((2, 4, 4, 2), np.nan, np.float32), "NaN"),
        (np.zeros((0, 4, 4, 2), np.float32), "empty"),
        (42, "must be an array"),
    ],
)
def test_bad_representative_data_gets_one_line(data, message):
    with pytest.raises((ValueError, TypeError), match=message) as raised:
        tflite.representative_array(data, (4, 4, 2))
    assert "\n" not in str(raised.value)


def test_npz_with_several_unnamed_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4, 2)), b=np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="name the samples array 'x'"):
        tflite.representative_array(tmp_path / "two.npz", (4, 4, 2))


def test_int8_without_representative_data_is_refused():
    with pytest.raises(ValueError, match="needs representative data"):
        tflite.convert(tiny_model(), None)


def test_subclassed_and_foreign_models_are_refused():
    class Subclassed(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="subclassed Keras model"):
        keras_model.check_keras_model(model)
    with pytest.raises(TypeError, match="expected a tf.keras"):
        keras_model.check_keras_model(object())


def test_load_model_refuses_what_is_not_a_keras_2_model(tmp_path):
    (tmp_path / "notes.keras").write_text("hello")
    with pytest.raises(ValueError, match="not a Keras model"):
        keras_model.load_model(tmp_path / "notes.keras")
    keras3 = tmp_path / "k3.keras"
    with zipfile.ZipFile(keras3, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        archive.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="saved by Keras 3.3.3 but has no model.weights.h5"):
        keras_model.load_model(keras3)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel"):
        keras_model.load_model(tmp_path / "empty_dir")


def test_load_model_round_trips_keras_h5_and_savedmodel(tmp_path):
    model = tiny_model()
    x = np.random.default_rng(0).random((2, 4, 4, 2)).astype(np.float32)
    for path in (tmp_path / "m.keras", tmp_path / "m.h5", tmp_path / "saved"):
        model.save(path)
        np.testing.assert_allclose(keras_model.load_model(path)(x), model(x), rtol=1e-6)


def test_ops_without_tflite_builtin_are_named():
    inputs = tf.keras.Input((8,))
    outputs = tf.keras.layers.Lambda(lambda t: tf.math.igamma(t, t), name="special")(inputs)
    model = tf.keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="tf.Igamma") as raised:
        tflite.convert(model, np.ones((4, 8), np.float32))
    assert "\n" not in str(raised.value)


def test_importing_tfprune_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, tfprune; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
