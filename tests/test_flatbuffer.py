"""Tests for tfprune.deploy.flatbuffer: sizes, MACs, layers and zeros read from .tflite files.

Expected numbers are derived independently of the reader: by hand from the
ResNet-8 architecture, from the Keras model's layers, and from the kernels the
tests plant before conversion.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from tfprune.deploy.flatbuffer import LayerInfo, ModelInfo, format_table, read_model
from tfprune.deploy.tflite import convert

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf_tiny"


def _mlperf_file(name: str) -> bytes:
    path = MLPERF / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path.read_bytes()


@pytest.fixture(scope="module")
def mlperf_int8() -> ModelInfo:
    return read_model(_mlperf_file("pretrainedResnet_quant.tflite"))


# ---------------------------------------------------------------- MLPerf Tiny ResNet-8

# (output side, output channels, kernel side, input channels) of each conv, in graph order:
# stem, stack 1 (2 convs), stack 2 (2 convs + 1x1 shortcut), stack 3 (same), on 32x32x3.
RESNET8_CONVS = [
    (32, 16, 3, 3),
    (32, 16, 3, 16), (32, 16, 3, 16),
    (16, 32, 3, 16), (16, 32, 3, 32), (16, 32, 1, 16),
    (8, 64, 3, 32), (8, 64, 3, 64), (8, 64, 1, 32),
]
RESNET8_DENSE = (64, 10)


def _resnet8_macs() -> int:
    convs = sum(side * side * out_c * k * k * in_c for side, out_c, k, in_c in RESNET8_CONVS)
    return convs + RESNET8_DENSE[0] * RESNET8_DENSE[1]


def test_mlperf_int8_size_operators_and_io(mlperf_int8: ModelInfo) -> None:
    info = mlperf_int8
    assert info.size_bytes == 98_496
    assert info.op_names == ("CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")
    assert [op.name for op in info.operators].count("CONV_2D") == 9
    assert not info.is_compressed and not any(op.is_custom for op in info.operators)
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.dtype, inp.shape, out.dtype, out.shape) == ("int8", (1, 32, 32, 3), "int8", (1, 10))
    assert len(inp.scales) == 1 and inp.buffer_bytes == 0


def test_mlperf_macs_by_hand(mlperf_int8: ModelInfo) -> None:
    assert _resnet8_macs() == 12_501_632
    assert mlperf_int8.macs == _resnet8_macs()
    expected = [side * side * out_c * k * k * in_c for side, out_c, k, in_c in RESNET8_CONVS]
    assert [layer.macs for layer in mlperf_int8.layers] == expected + [640]
    assert [(layer.input_channels, layer.output_channels) for layer in mlperf_int8.layers] == \
        [(in_c, out_c) for _, out_c, _, in_c in RESNET8_CONVS] + [RESNET8_DENSE]
    # Only conv and dense layers carry MACs.
    assert sum(op.macs for op in mlperf_int8.operators if op.name not in ("CONV_2D", "FULLY_CONNECTED")) == 0


def test_mlperf_macs_and_weights_match_keras_model(mlperf_int8: ModelInfo) -> None:
    tf = pytest.importorskip("tensorflow")
    path = MLPERF / "pretrainedResnet.h5"
    if not path.exists():
        pytest.skip(f"{path} not present")
    model = tf.keras.models.load_model(path, compile=False)
    macs, kernels, biases = 0, {}, 0
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, out_h, out_w, out_c = layer.output_shape
            k_h, k_w, in_c, _ = layer.kernel.shape
            macs += out_h * out_w * out_c * k_h * k_w * in_c
        elif isinstance(layer, tf.keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
        else:
            continue
        kernels[layer.name] = int(np.prod(layer.kernel.shape))
        biases += int(layer.bias.shape[0]) if layer.use_bias else int(layer.kernel.shape[-1])
    assert model.count_params() == 78_666  # BatchNorm's 4 x 240 parameters fold into biases
    assert macs == mlperf_int8.macs
    assert read_model(_mlperf_file("pretrainedResnet.tflite")).macs == macs
    assert {layer.keras_name: layer.weight_count for layer in mlperf_int8.layers} == kernels
    # int8 kernels, one int32 bias per output channel (BatchNorm folded), RESHAPE's int32[2] shape.
    assert mlperf_int8.weight_bytes == sum(kernels.values()) + 4 * biases + 8 == 78_752


def test_mlperf_weight_bytes_are_the_constant_buffers(mlperf_int8: ModelInfo) -> None:
    distinct = {t.buffer: t.buffer_bytes for t in mlperf_int8.tensors if t.is_constant}
    assert mlperf_int8.weight_bytes == sum(distinct.values())
    assert all(t.buffer_bytes == 0 for t in mlperf_int8.inputs + mlperf_int8.outputs)
    kernels = sum(layer.weight_count for layer in mlperf_int8.layers)
    assert kernels == 77_360
    float_info = read_model(_mlperf_file("pretrainedResnet.tflite"))
    # float32 kernels and biases (346 output channels in all), RESHAPE's int32[2] shape.
    assert float_info.weight_bytes == 4 * kernels + 4 * 346 + 8
    assert float_info.inputs[0].dtype == "float32" and float_info.layers[0].weight_zeros == 0


def test_format_table(mlperf_int8: ModelInfo) -> None:
    table = format_table(mlperf_int8)
    lines = table.splitlines()
    assert len(lines) == 1 + 10 + 1
    assert "conv2d_7" in table and "64->64" in table and "2,359,296" in table
    assert lines[-1].startswith("total: 10 layers") and "12,501,632 MACs" in lines[-1]
    assert "98,496 B" in lines[-1]


# ---------------------------------------------------------------- a tiny Keras model, int8

N_CONV_PM = 4  # conv_pm: kernel +-a_c per output channel c, two values per channel


@pytest.fixture(scope="module")
def tiny() -> dict:
    """A small int8 model whose kernels are planted: values and zeros known before conversion."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(N_CONV_PM, 3, padding="same", activation="relu", name="conv_pm")(inp)
    x = tf.keras.layers.Conv2D(6, 3, strides=2, padding="valid", name="conv_zeros")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = tf.keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="tconv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(7, name="fc")(x)
    model = tf.keras.Model(inp, out)

    def plant(name: str, kernel: np.ndarray) -> None:
        layer = model.get_layer(name)
        layer.set_weights([kernel.astype("float32"), *layer.get_weights()[1:]])

    scale = np.arange(1, N_CONV_PM + 1) / N_CONV_PM
    plant("conv_pm", np.where(rng.random((3, 3, 3, N_CONV_PM)) < 0.5, -1.0, 1.0) * scale)
    # Values in {-1, -1/2, 0, 1/2, 1} x a_c: int8 keeps the zeros exact (nothing rounds
    # to 0) and a 3-bit LUT holds each channel.
    levels = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(3, 3, N_CONV_PM, 6), p=[0.2, 0.15, 0.3, 0.15, 0.2])
    levels[0, 0, 0, :] = 1.0  # every channel reaches a_c
    plant("conv_zeros", levels * (np.arange(1, 7) / 6))
    dw = rng.uniform(0.5, 1.0, (3, 3, 6, 1)) * rng.choice([-1.0, 1.0], (3, 3, 6, 1))
    dw[rng.random(dw.shape) < 0.3] = 0.0
    plant("dw", dw)

    flatbuffer = convert(model, rng.standard_normal((16, 8, 8, 3)).astype("float32"))
    return {"model": model, "flatbuffer": flatbuffer, "info": read_model(flatbuffer),
            "zeros": {"conv_pm": 0, "conv_zeros": int(np.sum(levels == 0)), "dw": int(np.sum(dw == 0))}}


def _keras_kernel(layer) -> tuple[int, ...]:
    # DepthwiseConv2D names its kernel "depthwise_kernel"; the kernel is always weights[0].
    return tuple(layer.weights[0].shape)


def _keras_macs(tf, layer) -> int:
    kernel = _keras_kernel(layer)
    if isinstance(layer, tf.keras.layers.Dense):
        return kernel[0] * kernel[1]
    _, out_h, out_w, out_c = layer.output_shape
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return out_h * out_w * out_c * kernel[0] * kernel[1]
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        _, in_h, in_w, in_c = layer.input_shape
        return in_h * in_w * in_c * kernel[0] * kernel[1] * kernel[2]
    return out_h * out_w * out_c * kernel[0] * kernel[1] * kernel[2]


def _by_keras_name(info: ModelInfo) -> dict[str, LayerInfo]:
    return {layer.keras_name: layer for layer in info.layers}


def test_tiny_layers_match_keras(tiny: dict) -> None:
    import tensorflow as tf

    layers = _by_keras_name(tiny["info"])
    keras = {layer.name: layer for layer in tiny["model"].layers if layer.weights}
    assert set(layers) == set(keras)
    for name, layer in keras.items():
        info = layers[name]
        in_c = layer.input_shape[-1]
        out_c = layer.output_shape[-1]
        assert (info.input_channels, info.output_channels) == (in_c, out_c), name
        assert info.weight_count == int(np.prod(_keras_kernel(layer))), name
        assert info.macs == _keras_macs(tf, layer), name
        assert info.op == {"dw": "DEPTHWISE_CONV_2D", "tconv": "TRANSPOSE_CONV",
                           "fc": "FULLY_CONNECTED"}.get(name, "CONV_2D")
    assert tiny["info"].macs == sum(_keras_macs(tf, layer) for layer in keras.values())


def test_tiny_planted_zeros(tiny: dict) -> None:
    layers = _by_keras_name(tiny["info"])
    assert tiny["zeros"]["conv_zeros"] > 20 and tiny["zeros"]["dw"] > 5
    for name, zeros in tiny["zeros"].items():
        assert layers[name].weight_zeros == zeros, name
    assert layers["conv_zeros"].sparsity == pytest.approx(tiny["zeros"]["conv_zeros"] / 216)


# ---------------------------------------------------------------- LUT compression (DECODE)


def _compress(flatbuffer: bytes, info: ModelInfo, plan: dict[str, tuple[int, int]]) -> bytes:
    """LUT-compress the kernels named in plan: keras name -> (index bitwidth, channel axis)."""
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import spec

    layers = _by_keras_name(info)
    specs = [
        spec.Tensor(subgraph=0, tensor=info.operators[layers[name].op_index].inputs[1],
                    compression=[spec.LookUpTableCompression(index_bitwidth=bits, mode=spec.PerChannel(axis=axis))])
        for name, (bits, axis) in plan.items()
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the compressor warns when a tiny tensor grows
        return bytes(compression.compress(flatbuffer, specs))


def test_lut_compressed_model(tiny: dict) -> None:
    plain = tiny["info"]
    packed = read_model(_compress(tiny["flatbuffer"], plain, {"conv_pm": (1, 0), "conv_zeros": (3, 0)}))
    assert packed.is_compressed and "DECODE" in packed.op_names
    decodes = [op for op in packed.operators if op.name == "DECODE"]
    assert len(decodes) == 2 and all(op.is_custom and op.custom_code == "TFLM_DECODE" for op in decodes)
    assert packed.macs == plain.macs
    assert packed.weight_bytes < plain.weight_bytes

    before, after = _by_keras_name(plain), _by_keras_name(packed)
    for name in before:
        assert (after[name].macs, after[name].weight_count, after[name].kernel_shape) == \
            (before[name].macs, before[name].weight_count, before[name].kernel_shape), name
        assert after[name].compressed == (name in ("conv_pm", "conv_zeros")), name
    # 108 int8 values -> 14 bytes of 1-bit indices + 16-byte header + 4 channels x 2 int8 values.
    assert (before["conv_pm"].kernel_bytes, after["conv_pm"].kernel_bytes) == (108, 14 + 16 + 4 * 2)
    # Zeros are counted in the decoded (real-valued) kernel.
    assert after["conv_zeros"].weight_zeros == tiny["zeros"]["conv_zeros"]
    assert after["conv_pm"].weight_zeros == 0


def test_lut_decode_along_last_axis(tiny: dict) -> None:
    # A depthwise kernel's channels are its last axis; 9 values per channel fit 4 bits.
    packed = read_model(_compress(tiny["flatbuffer"], tiny["info"], {"dw": (4, 3)}))
    dw = _by_keras_name(packed)["dw"]
    assert dw.compressed and dw.weight_zeros == tiny["zeros"]["dw"]


def test_prune_compressed_model_names_encodings_and_zeros(tiny: dict) -> None:
    from tfprune.deploy.compress import compress_weights

    # conv_zeros (30% zeros) and dw (30%) PRUNE-encoded; the decoded zeros are the planted ones
    result = compress_weights(tiny["flatbuffer"], mode="prune")
    packed = read_model(result.flatbuffer)
    layers = _by_keras_name(packed)
    assert {name for name, layer in layers.items() if layer.encoding == "prune"} == {"conv_pm", "conv_zeros", "dw", "fc"}
    for name in ("conv_zeros", "dw"):
        assert layers[name].compressed and layers[name].weight_zeros == tiny["zeros"][name], name
    assert layers["conv_pm"].weight_zeros == 0
    # one row per encoded tensor, with the density of stored values and the bytes it saves
    rows = {row.name: row for row in packed.encoded}
    conv = rows[layers["conv_zeros"].weight_name]
    assert conv.encoding == "prune" and conv.bits is None
    assert conv.density == pytest.approx(1 - tiny["zeros"]["conv_zeros"] / 216, abs=1e-6)
    # 216 weights -> 27 bitmask bytes + 16-byte header + one byte per stored weight
    assert conv.stored_bytes == 27 + 16 + (216 - tiny["zeros"]["conv_zeros"])
    assert conv.decoded_bytes == 216 and conv.bytes_saved == 216 - conv.stored_bytes
    assert "CONV_2D (PRUNE)" in format_table(packed)


def test_lut_and_prune_rows_side_by_side(tiny: dict) -> None:
    from tfprune.deploy.compress import compress_weights

    lut = read_model(compress_weights(tiny["flatbuffer"], mode="lut").flatbuffer)
    rows = {row.encoding: row for row in lut.encoded}
    assert set(rows) == {"lut"} and {row.bits for row in lut.encoded} >= {1, 3}
    assert all(row.density is None and row.values_per_channel for row in lut.encoded)


# ---------------------------------------------------------------- Larq Compute Engine


def test_lce_binary_conv() -> None:
    tf = pytest.importorskip("tensorflow")
    lq = pytest.importorskip("larq")
    lce = pytest.importorskip("larq_compute_engine")
    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                  kernel_constraint="weight_clip", use_bias=False)
    inp = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(40, 3, padding="same", name="bconv_a", **binary)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(16, (3, 5), strides=2, padding="valid", name="bconv_b", **binary)(x)
    model = tf.keras.Model(inp, x)
    info = read_model(lce.convert_keras_model(model))

    assert {"LceQuantize", "LceBconv2d"} <= set(info.op_names)
    assert all(op.is_custom for op in info.operators if op.name.startswith("Lce"))
    layers = _by_keras_name(info)
    for name, k_h, k_w, in_c, out_c in [("bconv_a", 3, 3, 8, 40), ("bconv_b", 3, 5, 40, 16)]:
        _, out_h, out_w, _ = model.get_layer(name).output_shape
        layer = layers[name]
        assert (layer.op, layer.input_channels, layer.output_channels) == ("LceBconv2d", in_c, out_c)
        # Reported unpacked, in OHWI like CONV_2D; stored as ceil(in_c / 32) int32 words.
        assert layer.kernel_shape == (out_c, k_h, k_w, in_c)
        assert layer.kernel_bytes == out_c * k_h * k_w * -(-in_c // 32) * 4
        assert layer.macs == out_h * out_w * out_c * k_h * k_w * in_c
        assert layer.weight_zeros is None
    assert info.macs == sum(layer.macs for layer in info.layers)


# ---------------------------------------------------------------- not a model


@pytest.mark.parametrize("data", [
    b"",
    b"TFL3",
    b"this is not a flatbuffer at all",
    bytes(range(256)) * 4,
    b"\xff\xff\xff\x7fTFL3" + bytes(64),
])
def test_not_a_model_raises_one_line_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^not a (usable )?TFLite flatbuffer: ") as caught:
        read_model(data)
    assert "\n" not in str(caught.value)  # the parser's own error stays chained as its cause


def test_truncated_model_raises_value_error() -> None:
    data = _mlperf_file("pretrainedResnet_quant.tflite")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer: truncated or corrupt"):
        read_model(data[:20_000])
