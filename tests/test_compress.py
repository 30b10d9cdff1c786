"""Tests for tfprune.deploy.compress: TFLM LUT compression of int8 flatbuffers.

Models are tiny Keras networks converted to full-integer int8 here, then run in
the TFLite Micro interpreter. Run with ``-s`` to see the measured sizes and
arena bytes.
"""

from __future__ import annotations

import os
import re
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tfprune.deploy import compress as lut
from tfprune.deploy.compress import compress_weights, find_lut_candidates, lut_compress
from tfprune.deploy.tflite import convert

# ---------------------------------------------------------------- helpers


def _convert(model, input_shape: tuple[int, ...], seed: int = 1) -> bytes:
    """Full-integer int8 conversion with a small representative dataset."""
    samples = np.random.default_rng(seed).normal(size=(16, *input_shape)).astype(np.float32)
    return convert(model, samples)


def _set_levels(layer, levels: np.ndarray, rng: np.random.Generator) -> None:
    """Kernel entries levels[k] * a_c, a_c distinct per output channel.

    Keras keeps the output channel last (Conv2D HWIO, Dense IO, DepthwiseConv2D
    HWC1 with C the channel), and per-channel symmetric int8 quantization maps
    the largest level of each channel to +-127, so each channel keeps exactly
    len(levels) int8 values.
    """
    kernel, bias = layer.get_weights()
    channels = kernel.shape[-2] if "depthwise" in layer.name else kernel.shape[-1]
    scale = 0.05 * (1 + np.arange(channels))  # well apart: no two channels round alike
    picks = levels[rng.integers(0, len(levels), size=kernel.shape)]
    shape = (channels, 1) if "depthwise" in layer.name else (channels,)
    layer.set_weights([
        (picks * scale.reshape(shape)).astype(np.float32),
        rng.normal(0, 0.1, size=bias.shape).astype(np.float32),
    ])


def _run_tflm(flatbuffer: bytes, inputs: np.ndarray):
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(flatbuffer, arena_size=256 * 1024)
    outputs = []
    for x in inputs:
        interpreter.set_input(x, 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).copy())
    return np.stack(outputs), interpreter


def _arena_bytes(interpreter) -> int:
    """Parse 'Arena allocation total N bytes' that print_allocations writes to C stderr."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode(errors="replace")
    match = re.search(r"Arena allocation total (\d+) bytes", text)
    assert match, f"no arena total in print_allocations output: {text[:200]!r}"
    return int(match.group(1))


def _decode_operator_count(flatbuffer: bytes) -> int:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    decode = {i for i, code in enumerate(model.operatorCodes) if code.customCode == b"TFLM_DECODE"}
    return sum(op.opcodeIndex in decode for sg in model.subgraphs for op in sg.operators)


def _int8_inputs(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count, 1, *shape), dtype=np.int8)


# ---------------------------------------------------------------- models


@pytest.fixture(scope="module")
def binary_cnn() -> bytes:
    """Conv 3x3x16 -> Conv 3x3x32 -> GAP -> Dense 10 on 16x16x3, every kernel +-a_c."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(0)
    for layer in model.layers[:2]:
        _set_levels(layer, np.array([-1.0, 1.0]), rng)
    # The same 20 levels in every output channel: 20 int8 values whether the converter
    # quantizes the Dense kernel per tensor (TensorFlow 2.15) or per channel (2.21).
    dense = model.layers[-1]
    levels = np.linspace(-1.0, 1.0, 20)
    column = np.concatenate([levels, levels[:12]])
    kernel = np.stack([rng.permutation(column) for _ in range(10)], axis=1)
    dense.set_weights([kernel.astype(np.float32), rng.normal(0, 0.1, size=10).astype(np.float32)])
    return _convert(model, (16, 16, 3))


@pytest.fixture(scope="module")
def binary_conv32() -> bytes:
    """One realistic binary layer: Conv 3x3, 32 -> 32 channels, on 8x8x32."""
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 32)),
        tf.keras.layers.Conv2D(32, 3, padding="same"),
    ])
    _set_levels(model.layers[0], np.array([-1.0, 1.0]), np.random.default_rng(1))
    return _convert(model, (8, 8, 32))


@pytest.fixture(scope="module")
def ternary_depthwise() -> bytes:
    """DepthwiseConv 3x3 (channel on the last axis) -> Conv 1x1, weights in {-a, 0, a}."""
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 8)),
        tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(16, 1),
    ])
    rng = np.random.default_rng(2)
    for layer in model.layers:
        _set_levels(layer, np.array([-1.0, 0.0, 1.0]), rng)
    return _convert(model, (8, 8, 8))


@pytest.fixture(scope="module")
def dense_random() -> bytes:
    """An ordinary float-initialized network: 256-level int8 kernels."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 4)),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(32),
    ])
    return _convert(model, (8, 8, 4))


# ---------------------------------------------------------------- behaviour


def test_binary_convs_are_one_bit_candidates(binary_cnn):
    candidates = find_lut_candidates(binary_cnn)
    assert [(c.operator, c.bits, c.values_per_channel, c.axis) for c in candidates] == [
        ("CONV_2D", 1, 2, 0),
        ("CONV_2D", 1, 2, 0),
    ]
    assert [c.shape for c in candidates] == [(16, 3, 3, 3), (32, 3, 3, 16)]
    # The Dense kernel holds 20 values, over the default 16; TensorFlow 2.15 quantizes
    # it per tensor (one table, axis None), 2.21 per channel (a table per channel, axis 0).
    wide = find_lut_candidates(binary_cnn, max_values=32)
    dense = [c for c in wide if c.operator == "FULLY_CONNECTED"]
    assert [(c.values_per_channel, c.bits) for c in dense] == [(20, 5)]
    assert dense[0].axis in (None, 0)


def test_lut_compress_inserts_decode_and_shrinks_kernels(binary_cnn):
    result = lut_compress(binary_cnn)
    assert result.applied and result.needs_decode and result.mode == "auto"
    assert _decode_operator_count(result.flatbuffer) == 2
    assert _decode_operator_count(binary_cnn) == 0
    assert [t.bits for t in result.tensors] == [1, 1]
    before = sum(t.bytes_before for t in result.tensors)
    after = sum(t.bytes_after for t in result.tensors)
    assert before >= 4 * after, (before, after)
    assert all(t.bytes_before >= 4 * t.bytes_after for t in result.tensors)
    assert result.bytes_after < result.bytes_before == len(binary_cnn)
    assert result.constant_bytes_after < result.constant_bytes_before
    print(
        f"\n[binary CNN] kernels {before} -> {after} B ({before / after:.2f}x); "
        f"constants {result.constant_bytes_before} -> {result.constant_bytes_after} B "
        f"({result.constant_bytes_before / result.constant_bytes_after:.2f}x); "
        f"file {result.bytes_before} -> {result.bytes_after} B\n{result.summary()}"
    )


def test_tflm_outputs_identical_and_arena_reported(binary_cnn):
    inputs = _int8_inputs(20, (16, 16, 3))
    plain, plain_interp = _run_tflm(binary_cnn, inputs)
    auto = lut_compress(binary_cnn)
    packed, packed_interp = _run_tflm(auto.flatbuffer, inputs)
    # max_values=32 also packs the 20-value Dense kernel at 5 bits (generic
    # decoder path), forced through with mode "lut".
    wide = lut_compress(binary_cnn, max_values=32, mode="lut")
    assert sorted(t.bits for t in wide.tensors) == [1, 1, 5]
    packed5, wide_interp = _run_tflm(wide.flatbuffer, inputs)

    assert plain.dtype == packed.dtype == np.int8
    np.testing.assert_array_equal(packed, plain)
    np.testing.assert_array_equal(packed5, plain)
    arena = [_arena_bytes(i) for i in (plain_interp, packed_interp, wide_interp)]
    assert arena[1] >= arena[0] and arena[2] >= arena[0]
    print(f"\n[binary CNN] TFLM arena bytes: int8 {arena[0]}, LUT convs {arena[1]}, "
          f"LUT convs + dense {arena[2]}; file {len(binary_cnn)} -> "
          f"{auto.bytes_after} / {wide.bytes_after} B")


def test_realistic_conv_layer_payload_ratio(binary_conv32):
    result = lut_compress(binary_conv32)
    (kernel,) = result.tensors
    assert (kernel.bits, kernel.bytes_before) == (1, 32 * 3 * 3 * 32)
    assert kernel.bytes_before >= 4 * kernel.bytes_after
    # The product goal: the whole weight payload (kernel, bias, tables) >= 4x smaller.
    payload = result.constant_bytes_before / result.constant_bytes_after
    assert payload >= 4, payload
    inputs = _int8_inputs(20, (8, 8, 32), seed=5)
    plain, plain_interp = _run_tflm(binary_conv32, inputs)
    packed, packed_interp = _run_tflm(result.flatbuffer, inputs)
    np.testing.assert_array_equal(packed, plain)
    print(
        f"\n[conv 32->32 3x3] kernel {kernel.bytes_before} -> {kernel.bytes_after} B "
        f"({kernel.ratio:.2f}x); constants {result.constant_bytes_before} -> "
        f"{result.constant_bytes_after} B ({payload:.2f}x); file {result.bytes_before} -> "
        f"{result.bytes_after} B; arena {_arena_bytes(plain_interp)} -> "
        f"{_arena_bytes(packed_interp)} B"
    )


def test_ternary_depthwise_last_axis_two_bits(ternary_depthwise):
    result = lut_compress(ternary_depthwise, mode="lut")
    assert sorted((t.bits, t.axis) for t in result.tensors) == [(2, 0), (2, 3)]
    inputs = _int8_inputs(20, (8, 8, 8), seed=7)
    plain, _ = _run_tflm(ternary_depthwise, inputs)
    packed, _ = _run_tflm(result.flatbuffer, inputs)
    np.testing.assert_array_equal(packed, plain)


def test_dense_weights_have_no_candidates(dense_random):
    assert find_lut_candidates(dense_random) == []
    result = lut_compress(dense_random)
    assert result.flatbuffer == dense_random
    assert not result.applied and not result.needs_decode and result.tensors == ()
    assert result.bytes_after == result.bytes_before == len(dense_random)
    assert "no int8" in result.note
    with pytest.raises(ValueError, match="mode 'lut' has nothing to compress"):
        lut_compress(dense_random, mode="lut")


def test_mode_off_returns_input(binary_cnn):
    result = lut_compress(bytearray(binary_cnn), mode="off")
    assert result.flatbuffer == binary_cnn and not result.applied and result.note == "mode 'off'"


def test_shared_buffer_is_skipped_with_reason(binary_cnn):
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(binary_cnn)
    graph = model.subgraphs[0]
    second = find_lut_candidates(binary_cnn)[1]
    # An extra tensor reading the same buffer keeps the int8 bytes in the file.
    graph.tensors.append(graph.tensors[second.index].copy(name="alias"))
    aliased = bytes(model.build())

    result = lut_compress(aliased)
    assert [t.name for t in result.tensors] == [find_lut_candidates(binary_cnn)[0].name]
    (skip,) = result.skipped
    assert skip.index == second.index and "shares its buffer" in skip.reason
    assert "'alias'" in skip.reason


@pytest.mark.parametrize(
    "data, error",
    [
        (b"definitely not a model", "not a TFLite flatbuffer"),
        (b"\x10\x00\x00\x00TFL3" + bytes(range(200)), "cannot be parsed"),
        (b"", "not a TFLite flatbuffer"),
    ],
)
def test_garbage_bytes_raise_clear_value_error(data, error):
    for call in (lut_compress, find_lut_candidates):
        with pytest.raises(ValueError, match=error) as info:
            call(data)
        assert "\n" not in str(info.value)


def test_bad_arguments(binary_cnn):
    with pytest.raises(TypeError, match="must be the model's bytes"):
        lut_compress("model.tflite")
    with pytest.raises(ValueError, match="mode must be one of"):
        lut_compress(binary_cnn, mode="zip")
    with pytest.raises(ValueError, match=r"max_values must be 2\.\.128"):
        lut_compress(binary_cnn, max_values=129)
    with pytest.raises(TypeError, match="max_values must be an int"):
        find_lut_candidates(binary_cnn, max_values=2.0)


def test_index_bits_match_tflm_limits():
    from tflite_micro.tensorflow.lite.micro.compression import lut as tflm_lut

    assert lut.MAX_INDEX_BITS == tflm_lut.LutAncillaryData.MAX_BITWIDTH
    widths = [lut.index_bits(n) for n in (2, 3, 4, 5, 8, 9, 16, 17, 128)]
    assert widths == [1, 2, 2, 3, 3, 4, 4, 5, 7]


def _tiny_fc_model(rows: int, cols: int) -> bytes:
    """A one-operator int8 FULLY_CONNECTED model with +-127 weights (no TF needed)."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    int8 = schema.TensorType.INT8
    signs = np.where(np.arange(rows * cols).reshape(rows, cols) % 3, 127, -127).astype(np.int8)
    weights = me.Tensor(shape=(rows, cols), dtype=int8, data=signs, name="w",
                        quantization=me.Quantization([0.01] * rows, [0] * rows, axis=0))
    x = me.Tensor(shape=(1, cols), dtype=int8, quantization=me.Quantization(0.1), name="x")
    y = me.Tensor(shape=(1, rows), dtype=int8, quantization=me.Quantization(0.1), name="y")
    op = me.Operator(opcode=schema.BuiltinOperator.FULLY_CONNECTED, inputs=[x, weights, None],
                     outputs=[y])
    return bytes(me.Model(subgraphs=[me.Subgraph(operators=[op], inputs=[x], outputs=[y])]).build())


def test_tensor_that_would_grow_is_skipped_in_auto_but_forced_in_lut():
    tiny = _tiny_fc_model(4, 4)  # 16 B of weights -> 2 B indices + 16 B header + 8 B tables
    (candidate,) = find_lut_candidates(tiny)
    assert (candidate.bytes_before, candidate.bytes_after) == (16, 26)
    auto = lut_compress(tiny)
    assert auto.flatbuffer == tiny and not auto.applied
    assert "would not shrink" in auto.skipped[0].reason
    forced = lut_compress(tiny, mode="lut")
    assert forced.needs_decode and not forced.applied
    assert forced.bytes_after >= forced.bytes_before
    assert _decode_operator_count(forced.flatbuffer) == 1


# ---------------------------------------------------------------- PRUNE and the per-tensor choice


@pytest.fixture(scope="module")
def sparse_and_binary() -> bytes:
    """Binary conv (LUT pays) -> sparse conv with many values (PRUNE pays) -> GAP -> Dense."""
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 16)),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(3)
    _set_levels(model.layers[0], np.array([-1.0, 1.0]), rng)
    kernel, bias = model.layers[1].get_weights()
    kernel[rng.random(kernel.shape) < 0.8] = 0.0
    model.layers[1].set_weights([kernel, bias])
    return _convert(model, (8, 8, 16))


def test_auto_picks_lut_for_few_values_and_prune_for_zeros(sparse_and_binary):
    result = compress_weights(sparse_and_binary)
    assert result.applied and result.encodings == ("lut", "prune")
    by_encoding = {t.encoding: t for t in result.tensors}
    assert (by_encoding["lut"].bits, by_encoding["lut"].density) == (1, None)
    prune = by_encoding["prune"]
    assert prune.bits is None and 0.15 < prune.density < 0.25
    # 9,216 weights: 1,152 bitmask bytes + 16-byte header + one byte per stored weight
    assert prune.bytes_after == 1152 + 16 + round(prune.density * 9216)
    inputs = _int8_inputs(10, (8, 8, 16), seed=4)
    plain, _ = _run_tflm(sparse_and_binary, inputs)
    packed, _ = _run_tflm(result.flatbuffer, inputs)
    np.testing.assert_array_equal(packed, plain)
    # restricted to one encoding, auto makes a larger file than with both
    for only in (("lut",), ("prune",)):
        alone = compress_weights(sparse_and_binary, encodings=only)
        assert alone.encodings == only and result.bytes_after < alone.bytes_after < len(sparse_and_binary)


def test_lut_compress_never_uses_prune(sparse_and_binary):
    assert lut_compress(sparse_and_binary).encodings == ("lut",)


def test_forced_prune_encodes_every_filter_even_dense_ones(dense_random):
    auto = compress_weights(dense_random)
    assert not auto.applied and auto.flatbuffer == dense_random
    forced = compress_weights(dense_random, mode="prune")
    assert forced.needs_decode and forced.bytes_after > forced.bytes_before
    assert {t.encoding for t in forced.tensors} == {"prune"}
    assert len(forced.tensors) == _decode_operator_count(forced.flatbuffer) == 2  # conv and dense
    inputs = _int8_inputs(10, (8, 8, 4), seed=6)
    np.testing.assert_array_equal(_run_tflm(forced.flatbuffer, inputs)[0], _run_tflm(dense_random, inputs)[0])


def test_prune_on_the_last_axis_of_a_depthwise_kernel(ternary_depthwise):
    # {-a, 0, a}: a third of each kernel is zero; the depthwise kernel's channels are its last axis
    result = compress_weights(ternary_depthwise, mode="prune")
    assert sorted(t.axis for t in result.tensors) == [0, 3]
    inputs = _int8_inputs(10, (8, 8, 8), seed=8)
    np.testing.assert_array_equal(_run_tflm(result.flatbuffer, inputs)[0], _run_tflm(ternary_depthwise, inputs)[0])


def test_compress_weights_arguments(binary_cnn):
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'lut', 'prune', 'off'"):
        compress_weights(binary_cnn, mode="zip")
    with pytest.raises(ValueError, match="encodings must be"):
        compress_weights(binary_cnn, encodings=("huffman",))
    with pytest.raises(ValueError, match="encodings must be"):
        compress_weights(binary_cnn, encodings=())
    assert compress_weights(binary_cnn, mode="off").flatbuffer == binary_cnn


def test_prune_bytes_per_int8_weight_match_the_format():
    # 1/8 + (1 - sparsity) bytes a weight, plus the 16-byte header
    for sparsity, per_weight in ((0.5, 0.625), (0.75, 0.375), (0.9, 0.225)):
        assert lut.prune_bytes(80_000, round(80_000 * (1 - sparsity))) == 80_000 * per_weight + 16
