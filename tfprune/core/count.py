"""Counting a Keras model: kernels, nonzero weights, distinct values, int8 bytes and MACs.

What every comparison needs to put methods at the same size: the prunable
kernels (:func:`tfprune.keras_model.prunable_layers`), their nonzeros, their
values per channel, and the int8 bytes and multiply-accumulates of the model.
Biases and BatchNorm parameters are not kernels.

Example:
    >>> import tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, kernel_initializer="ones")])
    >>> nonzero_count(model), int8_weight_bytes(model), model_macs(model)
    (12, 24, 12)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.keras_model import is_depthwise, prunable_layers


def prunable_kernels(model: Any) -> dict[str, np.ndarray]:
    """The kernel of every Conv2D, DepthwiseConv2D and Dense layer (larq's too), by layer name.

    The layers of :func:`tfprune.keras_model.prunable_layers`; these kernels are what
    :func:`nonzero_count` counts (biases and BatchNorm parameters are not).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="fc")])
        >>> {name: kernel.shape for name, kernel in prunable_kernels(model).items()}
        {'fc': (4, 3)}
    """
    return {name: keras_model.kernel(layer).numpy() for name, layer in prunable_layers(model).items()}


def nonzero_count(model: Any) -> int:
    """Number of nonzero weights in the prunable kernels (see :func:`prunable_kernels`).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, kernel_initializer="ones")])
        >>> nonzero_count(model)
        12
    """
    return int(sum(np.count_nonzero(kernel) for kernel in prunable_kernels(model).values()))


def kernel_sparsity(model: Any) -> dict[str, float]:
    """Share of exact zeros in each prunable kernel, by layer name, rounded to 4 digits.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2, kernel_initializer="zeros", name="fc")])
        >>> kernel_sparsity(model)
        {'fc': 1.0}
    """
    return {name: round(float(np.mean(kernel == 0)), 4) for name, kernel in prunable_kernels(model).items()}


def values_per_channel(model: Any) -> dict[str, int]:
    """Most distinct values in one output channel (last kernel axis) of each prunable kernel.

    For DepthwiseConv2D the channel axis is the third (the kernel is
    ``(h, w, channels, multiplier)``); the multiplier axis is folded in.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2, kernel_initializer="ones", name="fc")])
        >>> values_per_channel(model)
        {'fc': 1}
    """
    layers = prunable_layers(model)
    counts: dict[str, int] = {}
    for name, kernel in prunable_kernels(model).items():
        if is_depthwise(layers[name]):
            kernel = kernel.reshape(*kernel.shape[:-2], -1)
        rows = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)
        counts[name] = int(max(len(np.unique(row)) for row in rows))
    return counts


def int8_weight_bytes(model: Any) -> int:
    """Bytes the int8 model stores for its prunable layers: 1 per kernel weight (zeros too), 4 per bias.

    An estimate for budgets (BatchNorm folds into the int32 bias); the
    flatbuffer adds its structure, a few KB. Masks do not count: TFLite Micro
    stores a masked weight like any other.

    Example:
        >>> import tensorflow as tf
        >>> int8_weight_bytes(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]))
        14
    """
    return int(sum(int(np.prod(keras_model.kernel(layer).shape)) + 4 * output_channels(model, name)
                   for name, layer in prunable_layers(model).items()))


def model_macs(model: Any) -> int:
    """Multiply-accumulates per inference of the conv, depthwise and dense layers (zeros included).

    Example:
        >>> import tensorflow as tf
        >>> model_macs(tf.keras.Sequential([tf.keras.Input((4, 4, 1)), tf.keras.layers.Conv2D(2, 3)]))
        72
    """

    total = 0
    for name, kernel in keras_model.kernels(model).items():
        outputs = model.get_layer(name).output_shape
        positions = int(np.prod(outputs[1:-1])) if len(outputs) > 2 else 1
        total += positions * int(np.prod(kernel.shape))
    return total


def output_channels(model: Any, name: str) -> int:
    """The number of output channels of layer ``name`` (its output's last axis).

    Example:
        >>> import tensorflow as tf
        >>> output_channels(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="d")]), "d")
        2
    """
    # the outer layer: a wrapped layer's inner layer is never called, so it has no output shape
    return int(model.get_layer(name).output_shape[-1])
