"""Tests for tfprune.deploy.lean: a flatbuffer that holds only what TFLite Micro reads."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from tfprune.deploy import lean
from tfprune.deploy.flatbuffer import read_model
from tfprune.deploy.lean import KEPT_METADATA, lean_flatbuffer
from tfprune.deploy.micro import MicroRunner


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _unpacked(flatbuffer: bytes):
    return _schema().ModelT.InitFromPackedBuf(flatbuffer, 0)


def _same_outputs(a: bytes, b: bytes, count: int = 10) -> bool:
    first, second = MicroRunner(a), MicroRunner(b)
    rng = np.random.default_rng(0)
    details = first.input_details
    inputs = [rng.integers(-128, 128, size=details["shape"]).astype(details["dtype"]) for _ in range(count)]
    return all(np.array_equal(first.run(x), second.run(x)) for x in inputs)


@pytest.fixture(scope="module")
def mlperf(mlperf_quant) -> bytes:
    return mlperf_quant.read_bytes()


def test_mlperf_resnet8_loses_what_tflite_micro_never_reads(mlperf):
    result = lean_flatbuffer(mlperf)
    assert result.applied and result.bytes_before == 98_496 and result.saved > 10_000
    model = _unpacked(result.flatbuffer)
    assert model.description is None and not model.signatureDefs and not model.metadata
    tensors = model.subgraphs[0].tensors
    assert all(t.name is None for t in tensors) and model.subgraphs[0].name is None
    quantized = [t.quantization for t in tensors if t.quantization is not None]
    assert all(q.min is None and q.max is None for q in quantized)
    # every per-channel tensor of the converter has zero points 0: one is stored
    per_channel = [q for q in quantized if len(q.scale) > 1]
    assert per_channel and all(len(q.zeroPoint) == 1 and q.zeroPoint[0] == 0 for q in per_channel)
    # activations share the empty buffer 0; each constant keeps its own
    buffers = [t.buffer for t in tensors]
    assert len(model.buffers) == len({b for b in buffers if b}) + 1
    assert model.buffers[0].data is None or len(model.buffers[0].data) == 0
    assert result.removed == {"description": 1, "metadata entries": 1, "subgraph names": 1, "tensor names": 38,
                              "quantization min/max values": 706, "zero points": 654, "buffers": 18}


def test_mlperf_resnet8_runs_the_same_in_tflite_micro(mlperf):
    slim = lean_flatbuffer(mlperf).flatbuffer
    assert _same_outputs(slim, mlperf)
    assert MicroRunner(slim).arena_bytes == MicroRunner(mlperf).arena_bytes
    before, after = read_model(mlperf), read_model(slim)
    assert (after.weight_bytes, after.macs, after.op_names) == (before.weight_bytes, before.macs, before.op_names)


def test_lean_is_idempotent(mlperf):
    once = lean_flatbuffer(mlperf).flatbuffer
    twice = lean_flatbuffer(once)
    assert not twice.applied and twice.flatbuffer == once and "not smaller" in twice.note


def _fc_model(zero_points: list[int], metadata: dict[str, bytes]) -> bytes:
    """A one-operator FULLY_CONNECTED model with per-channel weight zero points and named metadata."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me

    schema = _schema()
    int8 = schema.TensorType.INT8
    rows = len(zero_points)
    weights = me.Tensor(shape=(rows, 8), dtype=int8, name="weights",
                        data=np.arange(rows * 8).reshape(rows, 8).astype(np.int8) - 20,
                        quantization=me.Quantization([0.01] * rows, zero_points, axis=0))
    x = me.Tensor(shape=(1, 8), dtype=int8, quantization=me.Quantization(0.1), name="x")
    y = me.Tensor(shape=(1, rows), dtype=int8, quantization=me.Quantization(0.5), name="y")
    op = me.Operator(opcode=schema.BuiltinOperator.FULLY_CONNECTED, inputs=[x, weights, None], outputs=[y])
    graph = me.Subgraph(operators=[op], inputs=[x], outputs=[y], name="main")
    return bytes(me.Model(subgraphs=[graph], metadata=metadata, description="made in a test").build())


def test_offline_memory_plan_is_kept_and_read(mlperf):
    # TFLite Micro's offline plan: version, subgraph, tensor count, then an arena offset per tensor
    # (-1: plan it online). Three tensors, all online: the interpreter must read and accept it.
    plan = np.array([1, 0, 3, -1, -1, -1], "<i4").tobytes()
    model = _fc_model([0, 0, 0, 0], {"OfflineMemoryAllocation": plan, "CONVERSION_METADATA": b"x" * 40})
    result = lean_flatbuffer(model)
    entries = {entry.name.decode(): entry for entry in _unpacked(result.flatbuffer).metadata}
    assert set(entries) == {"OfflineMemoryAllocation"} <= set(KEPT_METADATA)
    buffer = _unpacked(result.flatbuffer).buffers[entries["OfflineMemoryAllocation"].buffer]
    assert bytes(np.asarray(buffer.data, np.uint8)) == plan
    assert _same_outputs(result.flatbuffer, model)


def test_distinct_per_channel_zero_points_are_all_kept():
    model = _fc_model([0, 3, -2, 5], {})
    result = lean_flatbuffer(model)
    weights = [t for t in _unpacked(result.flatbuffer).subgraphs[0].tensors if t.buffer]
    assert [list(t.quantization.zeroPoint) for t in weights] == [[0, 3, -2, 5]]
    assert result.applied and "zero points" not in result.removed


def test_stock_tflite_cannot_load_a_lean_file_but_the_converter_file_stays(mlperf):
    # why tfprune.export keeps the converter's file as Artifact.reference_flatbuffer
    tf = pytest.importorskip("tensorflow")
    with pytest.raises(ValueError, match="zero_point"):
        tf.lite.Interpreter(model_content=lean_flatbuffer(mlperf).flatbuffer).allocate_tensors()


@pytest.mark.parametrize("data, error", [(b"garbage!", "not a TFLite flatbuffer"),
                                         (b"\x10\x00\x00\x00TFL3" + bytes(64), "not a")])
def test_bad_input_gets_one_line(data, error):
    with pytest.raises(ValueError, match=error) as info:
        lean_flatbuffer(data)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="model's bytes"):
        lean_flatbuffer("model.tflite")


def test_docstring_examples_run():
    failures, _ = doctest.testmod(lean, optionflags=doctest.ELLIPSIS)
    assert failures == 0
