"""Reference models: MLPerf Tiny's networks, a small VGG, larq binary variants, a small CNN.

The MLPerf Tiny builders reproduce the layer shapes of MLPerf Tiny's training
code (mlcommons/tiny, ``benchmark/training``): ``resnet8`` (image
classification, CIFAR-10, 78,666 parameters), ``ds_cnn`` (keyword spotting,
49x10 MFCCs, 24,908) and ``mobilenet_v1`` (visual wake words, 96x96 RGB,
221,794), each ending in a softmax as MLPerf's do. Every builder returns a
functional tf.keras model with deterministic layer names, and takes a ``seed``
from which each layer gets its own initializer seed.

Example:
    >>> model = small_cnn((32, 32, 3), classes=10)
    >>> model.output_shape
    (None, 10)
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

#: Parameter counts of MLPerf Tiny's reference networks at their default shapes.
MLPERF_PARAMETERS = {"resnet8": 78_666, "ds_cnn": 24_908, "mobilenet_v1": 221_794}

#: MobileNetV1's pointwise widths at alpha=1 and the stride of each block's depthwise conv.
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

#: The arguments larq's examples give an inner binary layer: binary inputs and weights.
_BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}


class _Initializers:
    """Hands each layer its own seeded initializer.

    One Keras initializer instance reused with a fixed seed gives every layer of
    the same shape the same weights, so each call derives a fresh seed.
    """

    def __init__(self, seed: int) -> None:
        self._seeds = itertools.count(seed * 10_000)

    def __call__(self, kind: str = "he_normal") -> Any:
        import tensorflow as tf

        classes = {"he_normal": tf.keras.initializers.HeNormal,
                   "glorot_uniform": tf.keras.initializers.GlorotUniform}
        return classes[kind](seed=next(self._seeds))


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
        15794
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


def resnet8(
    weights: str | os.PathLike | None = None,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    seed: int = 0,
    weight_decay: float = 1e-4,
) -> Any:
    """MLPerf Tiny's ResNet-8 for CIFAR-10: three residual stacks of 16, 32 and 64 filters.

    It takes raw RGB pixels 0..255 as float32 (no normalisation) and ends in a
    softmax, as MLPerf's ``resnet_v1_eembc`` does.

    Args:
        weights: ``None`` (seeded initialisation), ``"mlperf"`` (MLPerf's trained
            ``pretrainedResnet.h5`` from ``mlperf_tiny/`` in the data folder,
            ``$TFPRUNE_DATA`` or the checkout's, see :func:`tfprune.datasets.data_dir`;
            87.19% top-1 on the CIFAR-10 test set), or the path of a Keras model
            file in MLPerf's layout (``.h5``/``.keras``, e.g. a retrained
            ``trainedResnet.h5``) or of a weights file this builder's model saved.
        input_shape, classes: the input and the number of classes; MLPerf's
            weights need the defaults.
        seed: seeds the initialisation.
        weight_decay: L2 factor of the conv kernels' regularizer (MLPerf: 1e-4).

    Example:
        >>> resnet8().count_params()
        78666
    """
    _check_image_arguments(input_shape, classes, seed)
    path = None if weights is None else _resnet8_weights_path(weights, input_shape, classes)
    model = _resnet8_graph(input_shape, classes, seed, weight_decay, binary=False)
    if path is not None:
        _load_resnet8_weights(model, path)
    return model


def binary_resnet8(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    seed: int = 0,
) -> Any:
    """ResNet-8 with binary 3x3 convolutions (larq): the MLPerf layer shapes, 1-bit inner layers.

    Every 3x3 conv of the residual stacks is a ``QuantConv2D`` with binary
    inputs and weights (``ste_sign``, ``weight_clip``) followed by BatchNorm;
    the first conv, the 1x1 downsampling shortcuts and the classifier stay in
    full precision (as in Bi-Real Net and larq's ResNetE). There is no ReLU
    before a binary conv, since sign(ReLU(x)) would be +1 everywhere; one ReLU
    before the final pool. The binary convs have no bias (their BatchNorm adds
    it), so it has :func:`resnet8`'s weights less those 224 biases.

    Example:
        >>> binary_resnet8().count_params()
        78442
    """
    _check_image_arguments(input_shape, classes, seed)
    return _resnet8_graph(input_shape, classes, seed, 0.0, binary=True)


def ds_cnn(
    input_shape: tuple[int, int, int] = (49, 10, 1),
    classes: int = 12,
    seed: int = 0,
    weight_decay: float = 1e-4,
) -> Any:
    """MLPerf Tiny's DS-CNN for keyword spotting: a 10x4 conv and four depthwise-separable blocks.

    Input: 49 frames of 10 MFCCs. 64 filters throughout; dropout 0.2 after the
    first conv and 0.4 before pooling; the average pool spans
    ``(frames // 2, coefficients // 2)`` as in MLPerf's code; softmax output.

    Example:
        >>> ds_cnn().count_params()
        24908
    """
    import tensorflow as tf

    _check_image_arguments(input_shape, classes, seed)
    layers = tf.keras.layers
    init = _Initializers(seed)
    regularizer = _l2(weight_decay)
    inputs = tf.keras.Input(input_shape, name="input")
    x = layers.Conv2D(64, (10, 4), strides=2, padding="same", kernel_initializer=init("glorot_uniform"),
                      kernel_regularizer=regularizer, name="conv0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = layers.ReLU(name="relu0")(x)
    x = layers.Dropout(0.2, seed=seed, name="dropout0")(x)
    for block in range(1, 5):
        x = layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=init("glorot_uniform"),
                                   depthwise_regularizer=regularizer, name=f"block{block}_dw")(x)
        x = layers.BatchNormalization(name=f"block{block}_dw_bn")(x)
        x = layers.ReLU(name=f"block{block}_dw_relu")(x)
        x = layers.Conv2D(64, 1, padding="same", kernel_initializer=init("glorot_uniform"),
                          kernel_regularizer=regularizer, name=f"block{block}_pw")(x)
        x = layers.BatchNormalization(name=f"block{block}_pw_bn")(x)
        x = layers.ReLU(name=f"block{block}_pw_relu")(x)
    x = layers.Dropout(0.4, seed=seed, name="dropout1")(x)
    x = layers.AveragePooling2D((input_shape[0] // 2, input_shape[1] // 2), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=init("glorot_uniform"),
                           name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="ds_cnn")


def mobilenet_v1(
    alpha: float = 0.25,
    input_shape: tuple[int, int, int] = (96, 96, 3),
    classes: int = 2,
    seed: int = 0,
    weight_decay: float = 1e-4,
) -> Any:
    """MLPerf Tiny's MobileNetV1 for visual wake words (alpha 0.25: 8 to 256 filters).

    A stride-2 3x3 conv, then 13 depthwise-separable blocks (depthwise 3x3 ->
    BN -> ReLU -> pointwise 1x1 -> BN -> ReLU), an average pool over the whole
    feature map, and a softmax classifier. Convs keep their biases and use
    ReLU, not ReLU6, as MLPerf's ``vww_model.py`` does.

    Example:
        >>> mobilenet_v1().count_params()
        221794
    """
    import tensorflow as tf

    _check_image_arguments(input_shape, classes, seed)
    if not isinstance(alpha, (int, float)) or int(32 * alpha) < 1:
        raise ValueError(f"alpha must be a number >= 1/32 (filters = int(32 * alpha)), not {alpha!r}")
    layers = tf.keras.layers
    init = _Initializers(seed)
    regularizer = _l2(weight_decay)
    inputs = tf.keras.Input(input_shape, name="input")
    x = layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", kernel_initializer=init(),
                      kernel_regularizer=regularizer, name="conv0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = layers.ReLU(name="relu0")(x)
    for block, (width, stride) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", depthwise_initializer=init(),
                                   depthwise_regularizer=regularizer, name=f"block{block}_dw")(x)
        x = layers.BatchNormalization(name=f"block{block}_dw_bn")(x)
        x = layers.ReLU(name=f"block{block}_dw_relu")(x)
        x = layers.Conv2D(int(width * alpha), 1, padding="same", kernel_initializer=init(),
                          kernel_regularizer=regularizer, name=f"block{block}_pw")(x)
        x = layers.BatchNormalization(name=f"block{block}_pw_bn")(x)
        x = layers.ReLU(name=f"block{block}_pw_relu")(x)
    x = layers.AveragePooling2D(tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=init(), name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="mobilenet_v1")


def small_vgg(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    seed: int = 0,
    rescale: float | None = 1.0 / 255.0,
) -> Any:
    """A small VGG: six 3x3 convs (32-32-64-64-128-128), each conv -> BN -> ReLU, max-pool per pair.

    Convs have no bias (the BatchNorm after each supplies it). The head is
    global average pooling and one softmax dense layer. ``rescale`` puts a
    ``Rescaling`` layer first so the model takes raw 0..255 pixels, as
    :func:`tfprune.datasets.cifar10_dataset` yields them.

    Example:
        >>> small_vgg().count_params()
        289642
    """
    _check_image_arguments(input_shape, classes, seed)
    return _vgg_graph(input_shape, classes, seed, rescale, binary=False)


#: VGG-16's convolution widths, a max-pool after each stage (Simonyan and Zisserman, 2015).
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    seed: int = 0,
    rescale: float | None = 1.0 / 255.0,
) -> Any:
    """VGG-16 for CIFAR-sized inputs, the setting of the Reconvene paper: 13 3x3 convs -> BN -> ReLU.

    Five stages of 64-64, 128-128, 256x3, 512x3, 512x3 filters with a max-pool
    after each, global average pooling and one softmax dense layer (the CIFAR
    variant of Tanaka et al.'s and DNNShifter's code). Convs have no bias.

    Example:
        >>> vgg16().count_params()
        14732490
    """
    _check_image_arguments(input_shape, classes, seed)
    return _vgg_graph(input_shape, classes, seed, rescale, binary=False, stages=VGG16_STAGES, name="vgg16")


def binary_small_vgg(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    seed: int = 0,
    rescale: float | None = 1.0 / 255.0,
) -> Any:
    """:func:`small_vgg` with binary inner convs (larq); the first conv and the classifier in full precision.

    Convs 2 to 6 are ``QuantConv2D`` with binary inputs and weights
    (``ste_sign``, ``weight_clip``, ``pad_values=1`` so the padding is binary
    too), each followed by BatchNorm (which Larq Compute Engine fuses into the
    binary conv) and, per pair, max-pool; no ReLU. Same parameter count as
    :func:`small_vgg`.

    Example:
        >>> binary_small_vgg().count_params()
        289642
    """
    _check_image_arguments(input_shape, classes, seed)
    return _vgg_graph(input_shape, classes, seed, rescale, binary=True)


def _resnet8_graph(input_shape: tuple[int, int, int], classes: int, seed: int, weight_decay: float,
                   binary: bool) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    init = _Initializers(seed)
    regularizer = _l2(weight_decay)

    def conv(filters: int, size: int, strides: int, name: str, binary_layer: bool = False) -> Any:
        if binary_layer:
            import larq as lq

            return lq.layers.QuantConv2D(filters, size, strides=strides, padding="same", pad_values=1.0,
                                         use_bias=False, kernel_initializer=init("glorot_uniform"),
                                         name=name, **_BINARY)
        return layers.Conv2D(filters, size, strides=strides, padding="same", kernel_initializer=init(),
                             kernel_regularizer=regularizer, name=name)

    def activation(name: str) -> Any:
        # A binary conv reads the sign of its input: a ReLU in front would make it all +1.
        return (lambda t: t) if binary else layers.ReLU(name=name)

    inputs = tf.keras.Input(input_shape, name="input")
    x = conv(16, 3, 1, "conv0")(inputs)
    x = layers.BatchNormalization(name="bn0")(x)
    x = activation("relu0")(x)
    for stack, filters in enumerate((16, 32, 64), start=1):
        strides = 1 if stack == 1 else 2
        # MLPerf creates the residual branch before the shortcut; keeping that order
        # keeps model.layers in the order of its saved model, which weight loading checks.
        y = conv(filters, 3, strides, f"stack{stack}_conv1", binary)(x)
        y = layers.BatchNormalization(name=f"stack{stack}_bn1")(y)
        y = activation(f"stack{stack}_relu1")(y)
        y = conv(filters, 3, 1, f"stack{stack}_conv2", binary)(y)
        y = layers.BatchNormalization(name=f"stack{stack}_bn2")(y)
        if stack > 1:
            x = conv(filters, 1, 2, f"stack{stack}_shortcut")(x)
        x = layers.Add(name=f"stack{stack}_add")([x, y])
        x = activation(f"stack{stack}_relu")(x)
    if binary:
        x = layers.ReLU(name="relu_out")(x)
    x = layers.AveragePooling2D(int(min(x.shape[1:3])), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=init(), name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="binary_resnet8" if binary else "resnet8")


def _vgg_graph(input_shape: tuple[int, int, int], classes: int, seed: int, rescale: float | None,
               binary: bool, stages: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128)),
               name: str | None = None) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    init = _Initializers(seed)
    inputs = tf.keras.Input(input_shape, name="input")
    x = layers.Rescaling(rescale, name="rescale")(inputs) if rescale else inputs
    widths = [filters for stage in stages for filters in stage]
    last_of_stage = {sum(len(stage) for stage in stages[: i + 1]) - 1 for i in range(len(stages))}
    for index, filters in enumerate(widths):
        if binary and index > 0:
            import larq as lq

            x = lq.layers.QuantConv2D(filters, 3, padding="same", pad_values=1.0, use_bias=False,
                                      kernel_initializer=init("glorot_uniform"), name=f"conv{index}",
                                      **_BINARY)(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(),
                              name=f"conv{index}")(x)
        x = layers.BatchNormalization(name=f"bn{index}")(x)
        if not binary:
            x = layers.ReLU(name=f"relu{index}")(x)
        if index in last_of_stage:
            x = layers.MaxPooling2D(name=f"pool{sorted(last_of_stage).index(index)}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=init("glorot_uniform"),
                           name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name=name or ("binary_small_vgg" if binary else "small_vgg"))


def _resnet8_weights_path(weights: str | os.PathLike, input_shape: tuple[int, ...], classes: int) -> Path:
    if isinstance(weights, str) and weights == "mlperf":
        if tuple(input_shape) != (32, 32, 3) or classes != 10:
            raise ValueError("weights='mlperf' needs input_shape=(32, 32, 3) and classes=10")
        from tfprune.datasets import mlperf_path

        return mlperf_path("pretrainedResnet.h5")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, 'mlperf' or a file path, not {type(weights).__name__}")
    path = Path(weights)
    if not path.exists():
        raise ValueError(f"{path}: no such weights file; pass an existing .h5/.keras file or weights=None")
    return path


def _load_resnet8_weights(model: Any, path: Path) -> None:
    if _is_saved_model_file(path):
        import tensorflow as tf

        _copy_weights(tf.keras.models.load_model(path, compile=False), model)
    else:
        model.load_weights(str(path))


def _is_saved_model_file(path: Path) -> bool:
    """Whether ``path`` holds a whole Keras model (not only weights saved by ``save_weights``)."""
    if path.suffix == ".keras":
        return True
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as archive:
            return "model_config" in archive.attrs
    return False


def _copy_weights(source: Any, target: Any) -> None:
    """Copy weights layer by layer, pairing the layers that hold weights in ``model.layers`` order."""
    sources = [layer for layer in source.layers if layer.weights]
    targets = [layer for layer in target.layers if layer.weights]
    if len(sources) != len(targets):
        raise ValueError(f"{source.name!r} has {len(sources)} layers with weights, {target.name!r} "
                         f"{len(targets)}: the file does not hold a {target.name} in MLPerf's layout")
    for from_layer, to_layer in zip(sources, targets):
        values = from_layer.get_weights()
        expected = [tuple(weight.shape) for weight in to_layer.weights]
        if [value.shape for value in values] != expected:
            raise ValueError(f"layer {from_layer.name!r} holds shapes {[v.shape for v in values]}, "
                             f"{to_layer.name!r} needs {expected}: not a {target.name} in MLPerf's layout")
        to_layer.set_weights(values)


def _l2(factor: float) -> Any:
    import tensorflow as tf

    if not isinstance(factor, (int, float)) or factor < 0:
        raise ValueError(f"weight_decay must be a number >= 0, not {factor!r}")
    return tf.keras.regularizers.L2(factor) if factor else None


def _check_image_arguments(input_shape: Any, classes: Any, seed: Any) -> None:
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(isinstance(size, int) and size > 0 for size in input_shape)):
        raise ValueError(f"input_shape must be three positive ints (height, width, channels), not {input_shape!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise ValueError(f"classes must be an int >= 2, not {classes!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, not {seed!r}")
