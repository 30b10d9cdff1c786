"""Reference models.

Example:
    >>> model = small_cnn((32, 32, 3), classes=10)
    >>> model.output_shape
    (None, 10)
"""

from __future__ import annotations

from typing import Any


def small_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    widths: tuple[int, ...] = (16, 32, 64),
    rescale: float | None = 1.0 / 255.0,
    seed: int = 0,
) -> Any:
    """A small CNN: per stage conv 3x3 -> BatchNorm -> ReLU -> max-pool, then a dense classifier.

    ``rescale`` puts a ``Rescaling`` layer first so the model takes raw 0..255
    pixels (it folds into the int8 input scale; no operator on the device).

    Example:
        >>> small_cnn((28, 28, 1), classes=10, widths=(8,)).count_params()
        15778
    """
    import tensorflow as tf

    layers = tf.keras.layers
    initializer = tf.keras.initializers.HeNormal(seed=seed)
    inputs = tf.keras.Input(input_shape, name="input")
    x = layers.Rescaling(rescale, name="rescale")(inputs) if rescale else inputs
    for stage, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=initializer,
                          name=f"conv{stage}")(x)
        x = layers.BatchNormalization(name=f"bn{stage}")(x)
        x = layers.ReLU(name=f"relu{stage}")(x)
        x = layers.MaxPooling2D(name=f"pool{stage}")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
                           name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="small_cnn")
