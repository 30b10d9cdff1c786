"""Writes the Keras 3 fixtures of tests/test_keras3_file.py; run with Keras 3 (the current stack):

    KERAS_BACKEND=tensorflow .venv-tf2.21/bin/python tests/data/make_keras3_fixtures.py

(without TF_USE_LEGACY_KERAS, and without importing tfprune, so that ``keras`` is Keras 3).
Written with Keras 3.15.1 and TensorFlow 2.21.0.
"""

from pathlib import Path

import keras
import numpy as np

HERE = Path(__file__).resolve().parent


def small_resnet() -> keras.Model:
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(image)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.Conv2D(8, 1, kernel_regularizer=keras.regularizers.L2(1e-4), name="pw")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    model = keras.Model(image, keras.layers.Dense(4, name="logits")(x), name="small_resnet")
    bn = model.get_layer("stem_bn")  # statistics of a trained model, not the initial ones
    bn.set_weights([np.random.uniform(0.5, 1.5, 8), np.random.normal(0, 0.1, 8), np.random.normal(0, 0.1, 8),
                    np.random.uniform(0.5, 2, 8)])
    return model


def main() -> None:
    keras.utils.set_random_seed(0)
    functional = small_resnet()
    functional.save(HERE / "keras3_functional.keras")
    sequential = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu", name="hidden"),
                                   keras.layers.Dense(3, name="out")], name="mlp")
    sequential.save(HERE / "keras3_sequential.keras")
    x_functional = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    x_sequential = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    np.savez(HERE / "keras3_outputs.npz", x_functional=x_functional,
             y_functional=functional.predict(x_functional, verbose=0),
             x_sequential=x_sequential, y_sequential=sequential.predict(x_sequential, verbose=0))
    unsupported = keras.Sequential([keras.Input((4, 6)), keras.layers.RMSNormalization(name="rms"),
                                    keras.layers.Dense(2)], name="unsupported")
    unsupported.save(HERE / "keras3_unsupported.keras")
    tiny = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="out")], name="tiny")
    tiny.save(HERE / "keras3_tiny.h5")


if __name__ == "__main__":
    main()
