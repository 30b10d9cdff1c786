"""PRUNE (TFLite Micro DECODE type 2) in the pinned interpreter, and the lean flatbuffer, on real models.

The pinned ``tflite-micro`` package's interpreter is the judge: a PRUNE-encoded
or lean file must give bit-identical outputs to the file it was made from.
Run with ``-s`` to see the sizes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tfprune.deploy.compress import compress_weights, prune_encode
from tfprune.deploy.flatbuffer import read_model
from tfprune.deploy.lean import align_flatbuffer, lean_flatbuffer
from tfprune.deploy.micro import MicroRunner
from tfprune.deploy.tflite import convert
from tfprune.deploy.verify import quantize_input

SPARSITIES = (0.5, 0.75, 0.9)
FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _outputs(flatbuffer: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    runner = MicroRunner(flatbuffer)
    return np.stack([runner.run(x) for x in inputs])


def _int8_inputs(flatbuffer: bytes, count: int, seed: int = 0) -> list[np.ndarray]:
    details = MicroRunner(flatbuffer).input_details
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=details["shape"]).astype(np.int8) for _ in range(count)]


# ---------------------------------------------------------------- the pinned interpreter decodes PRUNE


def test_pinned_tflite_micro_decodes_prune_with_identical_outputs():
    """A small model whose conv, depthwise and dense kernels are 70% zero, PRUNE-encoded."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((12, 12, 3)),
        tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.DepthwiseConv2D(3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            kernel[rng.random(kernel.shape) < 0.7] = 0.0
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    plain = convert(model, rng.normal(size=(32, 12, 12, 3)).astype(np.float32))
    result = compress_weights(plain, mode="prune")
    encoded = read_model(result.flatbuffer)
    assert [row.encoding for row in encoded.encoded] == ["prune"] * 3
    assert [op.name for op in encoded.operators].count("DECODE") == 3
    inputs = _int8_inputs(plain, 20)
    np.testing.assert_array_equal(_outputs(result.flatbuffer, inputs), _outputs(plain, inputs))
    assert result.bytes_after < result.bytes_before


# ---------------------------------------------------------------- a hand-built tensor


def _msb_first_bitmask(keep: np.ndarray) -> bytes:
    """The bitmask written out bit by bit, independently of numpy's packbits."""
    bits = "".join("1" if k else "0" for k in keep.reshape(-1))
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def _decode_only_model(encoded: bytes, ancillary: bytes, shape: tuple[int, ...], dtype: int,
                       scales: list[float] | None, zero_points: list[int] | None, axis: int | None) -> bytes:
    """A graph whose only operator is DECODE, and whose output is the decoded tensor."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    uint8 = schema.TensorType.UINT8
    quantization = None if scales is None else me.Quantization(scales=scales, zero_points=zero_points, axis=axis)
    out = me.Tensor(shape=shape, dtype=dtype, quantization=quantization)
    op = me.Operator(opcode=schema.BuiltinOperator.CUSTOM, custom_code="TFLM_DECODE",
                     inputs=[me.Tensor(shape=(len(encoded),), dtype=uint8, data=encoded),
                             me.Tensor(shape=(len(ancillary),), dtype=uint8, data=ancillary)],
                     outputs=[out])
    # the interpreter wants an input; this one is read by nothing
    unused = me.Tensor(shape=(1,), dtype=schema.TensorType.INT8, quantization=me.Quantization(scales=1.0))
    graph = me.Subgraph(operators=[op], inputs=[unused], outputs=[out])
    return align_flatbuffer(bytes(me.Model(subgraphs=[graph]).build()))


def _decode_in_tflite_micro(model: bytes) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=64 * 1024)
    interpreter.invoke()
    return np.array(interpreter.get_output(0))


@pytest.mark.parametrize("axis", [0, 2], ids=["first-axis", "last-axis"])
def test_hand_built_int8_tensor_decodes_with_per_channel_zero_points(axis):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    zero_points = np.array([-3, 0, 5, 7], np.int8)  # distinct, so a wrong channel shows
    shape = [2, 3, 3]
    shape[axis] = 4
    zeros = np.broadcast_to(zero_points.reshape([-1 if d == axis else 1 for d in range(3)]), shape)
    rng = np.random.default_rng(axis)
    keep = rng.random(shape) < 0.4
    expected = np.where(keep, rng.integers(-128, 128, size=shape), zeros).astype(np.int8)
    keep = expected != zeros  # a random value may have hit its zero point
    header = bytes([2, 1, 0, 0, 1]) + bytes(11)  # DECODE type 2 (PRUNE), DCM version 1, PRUNE version 1
    mask, values = _msb_first_bitmask(keep), expected[keep].tobytes()
    assert prune_encode(expected, zero_points, axis) == (mask, header + values)

    model = _decode_only_model(mask, header + values, tuple(shape), schema.TensorType.INT8,
                               [0.1] * 4, [int(z) for z in zero_points], axis)
    np.testing.assert_array_equal(_decode_in_tflite_micro(model), expected)
    (row,) = read_model(model).encoded
    assert row.encoding == "prune" and row.density == pytest.approx(keep.mean(), abs=1e-6)


@pytest.mark.parametrize("kind", ["int8-per-tensor", "int32", "float32"])
def test_hand_built_tensor_of_one_zero_point_decodes(kind):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    rng = np.random.default_rng(7)
    keep = rng.random((5, 7)) < 0.3
    if kind == "int8-per-tensor":
        dtype, expected, zero = schema.TensorType.INT8, np.full((5, 7), -9, np.int8), -9
        expected[keep] = rng.integers(-128, 128, keep.sum())
        quant = ([0.5], [zero], 0)
    elif kind == "int32":
        dtype, expected, zero = schema.TensorType.INT32, np.zeros((5, 7), np.int32), 0
        expected[keep] = rng.integers(-10**6, 10**6, keep.sum())
        quant = ([0.01] * 5, [0] * 5, 0)
    else:
        dtype, expected, zero = schema.TensorType.FLOAT32, np.zeros((5, 7), np.float32), 0
        expected[keep] = rng.normal(size=keep.sum())
        quant = (None, None, None)
    keep = expected != zero
    mask, ancillary = prune_encode(expected, zero)
    assert mask == _msb_first_bitmask(keep)
    assert ancillary[16:] == expected[keep].astype(expected.dtype.newbyteorder("<")).tobytes()
    model = _decode_only_model(mask, ancillary, (5, 7), dtype, *quant)
    np.testing.assert_array_equal(_decode_in_tflite_micro(model), expected)


# ---------------------------------------------------------------- the reference models


def _randomize_statistics(model, seed: int) -> None:
    """BatchNorm statistics and biases away from their initial values, as a trained model has them."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
        elif getattr(layer, "use_bias", False) and layer.bias is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))


def _reference(name: str, shared_data) -> tuple[bytes, np.ndarray]:
    """The int8 flatbuffer of a reference model (MLPerf's trained ResNet-8; the others seeded) and samples."""
    from tfprune import models

    rng = np.random.default_rng(0)
    if name == "resnet8":
        model = models.resnet8(weights="mlperf")
        with np.load(shared_data / "cifar10.npz") as data:
            samples = data["x_test"][:24].astype(np.float32)
    else:
        build, shape, top = {"ds_cnn": (models.ds_cnn, (49, 10, 1), 1.0),
                             "mobilenet_v1": (models.mobilenet_v1, (96, 96, 3), 255.0),
                             "small_vgg": (models.small_vgg, (32, 32, 3), 255.0)}[name]
        model = build(seed=3)
        _randomize_statistics(model, seed=1)
        samples = rng.uniform(0, top, (24, *shape)).astype(np.float32)
    flatbuffer = convert(model, samples[:16])
    return flatbuffer, samples[16:]  # 8 verification samples the calibration did not see


@pytest.fixture(scope="module", params=["resnet8", "ds_cnn", "mobilenet_v1", "small_vgg"])
def reference(request, shared_data) -> dict:
    flatbuffer, samples = _reference(request.param, shared_data)
    details = MicroRunner(flatbuffer).input_details
    return {"name": request.param, "flatbuffer": flatbuffer,
            "inputs": [quantize_input(x[None], details) for x in samples]}


def magnitude_masked(flatbuffer: bytes, sparsity: float) -> bytes:
    """``flatbuffer`` with the smallest ``sparsity`` of every conv, depthwise and dense kernel set to 0.

    A magnitude mask per layer, as tfmot's magnitude pruning leaves it, applied to the int8 weights
    (zero point 0): exactly ``round(sparsity * size)`` zeros a kernel, ties broken by position.
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(flatbuffer)
    done = set()
    for op in model.subgraphs[0].operators:
        if op.opcode_name in FILTER_OPS and id(op.inputs[1]) not in done:
            kernel = op.inputs[1]
            done.add(id(kernel))
            values = kernel.array.copy().reshape(-1)
            smallest = np.argsort(np.abs(values.astype(np.int16)), kind="stable")[:round(sparsity * values.size)]
            values[smallest] = 0
            kernel.array = values.reshape(kernel.shape)
    return align_flatbuffer(bytes(model.build()))


def _kernel_sizes(flatbuffer: bytes) -> list[int]:
    return [layer.weight_count for layer in read_model(flatbuffer).layers]


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_prune_encoded_reference_model_is_smaller_with_identical_outputs(reference, sparsity):
    plain = magnitude_masked(reference["flatbuffer"], sparsity)
    layers = read_model(plain).layers
    assert all(layer.weight_zeros >= int(sparsity * layer.weight_count) for layer in layers)
    expected = _outputs(plain, reference["inputs"])

    result = compress_weights(plain)
    assert result.applied and "prune" in result.encodings
    np.testing.assert_array_equal(_outputs(result.flatbuffer, reference["inputs"]), expected)
    # what tfprune.export deploys: the lean file, DECODE-compressed, lean again
    lean = lean_flatbuffer(plain).flatbuffer
    on_lean = compress_weights(lean)
    deployed = lean_flatbuffer(on_lean.flatbuffer).flatbuffer
    np.testing.assert_array_equal(_outputs(deployed, reference["inputs"]), expected)
    assert len(deployed) < len(result.flatbuffer) < len(plain)
    # without names to repeat, every kernel of 1,000 weights or more pays for its bitmask and DECODE at 50%
    # sparsity (PRUNE, or LUT indices for a masked depthwise kernel left with few values a channel)
    info = read_model(lean)
    large = {info.operators[layer.op_index].inputs[1] for layer in info.layers if layer.weight_count >= 1000}
    assert large <= {t.index for t in on_lean.tensors}
    print(f"\n[{reference['name']} {sparsity:.0%}] plain {len(plain):,} B -> PRUNE {result.bytes_after:,} B "
          f"-> lean + PRUNE {len(deployed):,} B")


def test_lean_reference_model_is_smaller_with_identical_outputs(reference):
    plain = reference["flatbuffer"]
    result = lean_flatbuffer(plain)
    assert result.applied and result.bytes_after < len(plain)
    assert result.removed["tensor names"] > 0
    np.testing.assert_array_equal(_outputs(result.flatbuffer, reference["inputs"]),
                                  _outputs(plain, reference["inputs"]))
    # TFLite Micro sees the same model: same operators, layers, arena
    before, after = read_model(plain), read_model(result.flatbuffer)
    assert [op.name for op in after.operators] == [op.name for op in before.operators]
    assert after.weight_bytes == before.weight_bytes and _kernel_sizes(result.flatbuffer) == _kernel_sizes(plain)
    assert MicroRunner(result.flatbuffer).arena_bytes == MicroRunner(plain).arena_bytes
    print(f"\n[{reference['name']}] converter {len(plain):,} B -> lean {result.bytes_after:,} B "
          f"({result.saved:,} B saved)")


# ---------------------------------------------------------------- export


def test_export_of_a_magnitude_pruned_resnet8_reports_prune_and_lean(shared_data):
    import tfprune
    from tfprune import models

    model = models.resnet8(weights="mlperf")
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim in (2, 4):  # conv and dense kernels, 75% by magnitude
            kernel = weights[0]
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0.0
            layer.set_weights([kernel, *weights[1:]])
    with np.load(shared_data / "cifar10.npz") as data:
        x = data["x_test"][:40].astype(np.float32)
    artifact = tfprune.export(model, x[:32], verify_data=x[32:], progress=False)
    report = artifact.report
    compression, lean = report["compression"], report["lean"]
    assert compression["applied"] and compression["encodings"] == ["prune"]
    assert len(compression["tensors"]) == 10 and all(0.24 < t["density"] < 0.26 for t in compression["tensors"])
    assert all(t["name"].startswith("resnet8/") for t in compression["tensors"])
    without = compression["uncompressed"]
    assert report["flatbuffer_bytes"] < 0.6 * without["flatbuffer_bytes"]
    assert report["tflm"]["arena_bytes"] >= without["tflm"]["arena_bytes"] > 0
    assert lean["applied"] and lean["bytes_after"] == without["flatbuffer_bytes"]
    assert lean["bytes_before"] == len(artifact.reference_flatbuffer) > lean["bytes_after"]
    assert [row["encoding"] for row in report["encoded_tensors"]] == ["prune"] * 10
    assert report["encoded_tensors"][0]["name"] == compression["tensors"][0]["name"]
    assert report["verification"]["top1_agreement"] == 1.0
    # the uncompressed artifact: the converter's file, identical outputs in TFLite Micro
    inputs = [quantize_input(sample[None], MicroRunner(artifact.flatbuffer).input_details) for sample in x[32:]]
    np.testing.assert_array_equal(_outputs(artifact.flatbuffer, inputs),
                                  _outputs(artifact.reference_flatbuffer, inputs))
    text = str(report)
    assert "PRUNE 25.0%" in text and "lean flatbuffer" in text and "CONV_2D (PRUNE)" in text


def test_export_with_two_encodings_reports_each_one_removed():
    import tensorflow as tf

    import tfprune

    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 16)),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(1)
    signs, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([np.sign(signs) * 0.1, bias])  # two values a channel: LUT
    kernel, bias = model.layers[1].get_weights()
    kernel[rng.random(kernel.shape) < 0.8] = 0.0  # 80% zeros, many values: PRUNE
    model.layers[1].set_weights([kernel, bias])
    x = rng.normal(size=(32, 8, 8, 16)).astype(np.float32)
    artifact = tfprune.export(model, x, verify=False, progress=False)
    compression = artifact.report["compression"]
    assert compression["encodings"] == ["lut", "prune"]
    without = compression["without"]
    assert set(without) == {"lut", "prune"}
    for figures in without.values():
        assert artifact.report["flatbuffer_bytes"] < figures["flatbuffer_bytes"]
        assert figures["flatbuffer_bytes"] < compression["uncompressed"]["flatbuffer_bytes"]
        assert figures["tflm"]["arena_bytes"] > 0
    assert "without PRUNE" in str(artifact.report) and "without LUT" in str(artifact.report)
    plain = tfprune.export(model, x, compress="off", lean=False, verify=False, progress=False)
    assert plain.reference_flatbuffer is None and plain.report["lean"]["applied"] is False
    assert len(plain.flatbuffer) == artifact.report["lean"]["bytes_before"]


def test_inspect_names_each_encoded_tensor_and_its_saving(tmp_path, capsys, mlperf_quant):
    import json

    from tfprune.cli import main

    masked = magnitude_masked(mlperf_quant.read_bytes(), 0.75)
    result = compress_weights(masked)
    path = tmp_path / "resnet8_prune.tflite"
    path.write_bytes(result.flatbuffer)
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if "PRUNE 25.0%" in line]
    assert len(rows) == len(result.tensors) >= 9
    assert "model/conv2d_8/Conv2D" in text  # a converter file keeps its names
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    saved = {row["name"]: row["bytes_saved"] for row in report["encoded_tensors"]}
    assert saved == {t.name: t.bytes_saved for t in result.tensors}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"target": "android", "lean": True}, ValueError, "lean flatbuffer is for TFLite Micro"),
    ({"target": "android", "compress": "prune"}, ValueError, "PRUNE compression .* is for TFLite Micro"),
    ({"lean": "yes"}, TypeError, "lean must be True, False or None"),
    ({"compress": "huffman"}, ValueError, "unknown compress mode 'huffman'"),
])
def test_export_arguments_get_one_line(kwargs, error, message):
    import tensorflow as tf

    import tfprune

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    with pytest.raises(error, match=message) as info:
        tfprune.export(model, np.zeros((4, 4), np.float32), progress=False, **kwargs)
    assert "\n" not in str(info.value)
