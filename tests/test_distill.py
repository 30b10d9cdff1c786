"""Distiller: a student learns the teacher's outputs, trains only itself, and round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfprune.prune.distill import Distiller


def _mlp(seed: int, softmax: bool = True) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(16, "relu"),
                                tf.keras.layers.Dense(3, "softmax" if softmax else None)])


def test_distilled_student_moves_toward_the_teacher_and_only_the_student_trains():
    x = np.random.default_rng(0).normal(size=(256, 6)).astype("float32")
    teacher = _mlp(1)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student = _mlp(2)
    gap = lambda: float(np.abs(student.predict(x, verbose=0) - teacher.predict(x, verbose=0)).mean())  # noqa: E731
    before = gap()
    distiller = Distiller(student, teacher, temperature=2.0, alpha=1.0)
    distiller.compile(tf.keras.optimizers.Adam(1e-2))
    # labels carry no information here (alpha=1 ignores them): only the teacher can be learnt
    distiller.fit(x, np.zeros(len(x)), epochs=30, batch_size=64, verbose=0)
    assert gap() < 0.5 * before
    assert all(np.array_equal(a, b) for a, b in zip(teacher_before, teacher.get_weights()))


def test_distiller_with_logits_models_and_alpha_zero_is_plain_training():
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    y = np.arange(8) % 3
    teacher, student = _mlp(1, softmax=False), _mlp(2, softmax=False)
    distiller = Distiller(student, teacher, alpha=0.0)
    total, labels, distillation, _ = distiller.losses_of(tf.constant(x), tf.constant(y), False)
    assert float(total) == pytest.approx(float(labels)) and float(distillation) > 0


def test_student_saves_and_loads_and_the_distiller_config_round_trips(tmp_path):
    teacher, student = _mlp(1), _mlp(2)
    distiller = Distiller(student, teacher, temperature=3.0, alpha=0.5)
    distiller.compile("adam")
    distiller.fit(np.ones((8, 6)), np.zeros(8), epochs=1, verbose=0)
    student.save(tmp_path / "student.keras")
    loaded = tf.keras.models.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(loaded.predict(np.ones((2, 6)), verbose=0), student.predict(np.ones((2, 6)), verbose=0))
    again = Distiller(loaded, teacher, **distiller.get_config())
    assert (again.temperature, again.alpha) == (3.0, 0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0), "temperature"), (dict(alpha=1.5), "alpha"),
])
def test_bad_distiller_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        Distiller(_mlp(1), _mlp(2), **kwargs)
    assert "\n" not in str(error.value)


def test_student_and_teacher_must_have_the_same_outputs():
    other = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="same outputs"):
        Distiller(other, _mlp(1))
