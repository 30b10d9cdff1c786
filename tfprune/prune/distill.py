"""Knowledge distillation: a student learns from a teacher's soft targets as well as the labels.

The standard way to recover a pruned network (Hinton et al., 2015): the loss is
``alpha * T**2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(y, s)``
with ``t`` and ``s`` the teacher's and the student's logits at temperature
``T``. Models that end in a softmax are read as ``log p``, which is the logits
up to a constant that the softmax ignores, so MLPerf's ResNet-8 (softmax output)
distils like a logits model.

:class:`Distiller` is a Keras model wrapping the student: ``compile`` and
``fit`` it like any model; it trains the student's weights only, and
``distiller.student`` is the trained model to export.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> teacher = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    >>> student = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    >>> distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
    >>> distiller.compile(tf.keras.optimizers.Adam(1e-2))
    >>> history = distiller.fit(np.ones((8, 4)), np.zeros(8), epochs=1, verbose=0)
    >>> sorted(history.history)
    ['distillation_loss', 'loss', 'student_loss']
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfprune.core.scores import ends_in_softmax
from tfprune.keras_model import check_keras_model


def output_logits(model: Any, outputs: Any) -> Any:
    """``outputs`` of ``model`` as logits: ``log p`` when the model ends in a softmax.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Softmax()])
        >>> p = model(tf.constant([[0.0, 1.0]]))
        >>> bool(tf.reduce_all(tf.abs(tf.nn.softmax(output_logits(model, p)) - p) < 1e-6))
        True
    """
    if ends_in_softmax(model):
        return tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))
    return outputs


@tf.keras.utils.register_keras_serializable(package="tfprune")
class Distiller(tf.keras.Model):
    """Trains ``student`` on ``alpha`` of the teacher's soft targets at ``temperature`` and the rest labels.

    Args:
        student: the model that learns (a Keras 2 functional or Sequential model).
        teacher: the model it learns from; never trained (its weights stay).
        temperature: ``T`` > 0; higher spreads the teacher's probabilities.
        alpha: share of the distillation term in [0, 1]; 0 is plain training.

    ``compile(optimizer)`` takes only an optimizer (and metrics, which see the
    student's outputs); the losses are fixed. ``save`` the ``student``: the
    distiller holds two models and is for training. ``get_config`` keeps the
    temperature and alpha, so a distiller can be re-made around loaded models.

    Example:
        >>> teacher = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, "softmax")])
        >>> distiller = Distiller(tf.keras.models.clone_model(teacher), teacher)
        >>> distiller.get_config()
        {'temperature': 4.0, 'alpha': 0.9}
    """

    def __init__(self, student: Any, teacher: Any, temperature: float = 4.0, alpha: float = 0.9,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_keras_model(student)
        check_keras_model(teacher)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if tuple(student.output_shape) != tuple(teacher.output_shape):
            raise ValueError(f"the student's output {student.output_shape} and the teacher's "
                             f"{teacher.output_shape} differ; distil between models with the same outputs")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self._labels_loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._trackers = {name: tf.keras.metrics.Mean(name) for name in ("loss", "student_loss", "distillation_loss")}

    def call(self, inputs: Any, training: Any = None) -> Any:
        return self.student(inputs, training=training)

    @property
    def metrics(self) -> list[Any]:
        return [*self._trackers.values(), *super().metrics]

    def losses_of(self, x: Any, y: Any, training: bool) -> tuple[Any, Any, Any, Any]:
        """(total, label, distillation) losses of a batch, and the student's outputs.

        Example:
            >>> teacher = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)])
            >>> distiller = Distiller(tf.keras.models.clone_model(teacher), teacher, alpha=0.0)
            >>> total, labels, _, _ = distiller.losses_of(tf.ones((1, 2)), tf.zeros(1), False)
            >>> float(total) == float(labels)
            True
        """
        teacher_logits = output_logits(self.teacher, self.teacher(x, training=False))
        outputs = self.student(x, training=training)
        student_logits = output_logits(self.student, outputs)
        label_loss = self._labels_loss(y, student_logits)
        soft_teacher = tf.nn.softmax(teacher_logits / self.temperature)
        log_student = tf.nn.log_softmax(student_logits / self.temperature)
        distillation = tf.reduce_mean(tf.reduce_sum(
            soft_teacher * (tf.math.log(tf.clip_by_value(soft_teacher, 1e-12, 1.0)) - log_student), axis=-1))
        distillation = distillation * self.temperature ** 2
        total = self.alpha * distillation + (1.0 - self.alpha) * label_loss
        return total, label_loss, distillation, outputs

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            total, label_loss, distillation, outputs = self.losses_of(x, y, training=True)
            # the student's own regularizers (weight decay) still apply
            total_with_regularizers = total + tf.add_n(self.student.losses) if self.student.losses else total
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total_with_regularizers, variables), variables))
        return self._record(y, total, label_loss, distillation, outputs)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        total, label_loss, distillation, outputs = self.losses_of(x, y, training=False)
        return self._record(y, total, label_loss, distillation, outputs)

    def _record(self, y: Any, total: Any, label_loss: Any, distillation: Any, outputs: Any) -> dict[str, Any]:
        for name, value in (("loss", total), ("student_loss", label_loss), ("distillation_loss", distillation)):
            self._trackers[name].update_state(value)
        self.compiled_metrics.update_state(y, outputs)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "alpha": self.alpha}
