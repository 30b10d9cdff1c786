"""Running a flatbuffer in the TensorFlow Lite Micro interpreter on this host.

The ``tflite-micro`` package runs the same kernels as a microcontroller build
(reference kernels, DECODE included), so the arena it allocates is the arena a
firmware needs. Times are this host's, useful only as ratios between models
measured in the same run.

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
    >>> runner = MicroRunner(fb)
    >>> runner.arena_bytes
    55984
"""

from __future__ import annotations

import re
import time

import numpy as np

from tfprune._native import captured_output

#: Arena handed to the host interpreter; the real need is measured, not guessed.
HOST_ARENA_BYTES = 16 * 1024 * 1024

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


class MicroRunner:
    """A TFLite Micro interpreter over one flatbuffer, with its measured arena.

    Raises ``ValueError`` with one line when TFLite Micro cannot load the model
    (for example an operator it does not have).

    Example:
        >>> from tfprune.datasets import mlperf_path
        >>> fb = mlperf_path("pretrainedResnet_quant.tflite").read_bytes()
        >>> MicroRunner(fb).run(np.zeros((1, 32, 32, 3), np.int8)).shape
        (1, 10)
    """

    def __init__(self, flatbuffer: bytes) -> None:
        from tflite_micro.python.tflite_micro import runtime

        _check_activation_scales(flatbuffer)
        with captured_output(2) as captured:
            try:
                self._interpreter = runtime.Interpreter.from_bytes(bytes(flatbuffer), arena_size=HOST_ARENA_BYTES)
            except Exception as error:
                reason = _micro_error(captured.text()) or str(error).splitlines()[0]
                raise ValueError(f"TFLite Micro cannot load this model: {reason}") from error
        self.input_details = self._interpreter.get_input_details(0)
        self.output_details = self._interpreter.get_output_details(0)
        self.arena_bytes = self._measure_arena()

    def run(self, sample: np.ndarray) -> np.ndarray:
        """Run one sample already in the model's input type; returns the raw output."""
        self._interpreter.set_input(np.asarray(sample, self.input_details["dtype"]), 0)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_output(0))

    def seconds_per_inference(self, sample: np.ndarray, repeats: int = 50) -> float:
        """Fastest of ``repeats`` invocations on this host, in seconds.

        The minimum, not the mean: other work on the host only ever adds time,
        so the fastest run is the most repeatable estimate of the model's cost.
        """
        self._interpreter.set_input(np.asarray(sample, self.input_details["dtype"]), 0)
        self._interpreter.invoke()  # first call pays one-time kernel set-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self._interpreter.invoke()
            times.append(time.perf_counter() - start)
        return float(min(times))

    def zero_input(self) -> np.ndarray:
        """An input filled with the input's zero point (real value 0)."""
        _, zero_point = scale_and_zero_point(self.input_details)
        return np.full(self.input_details["shape"], zero_point, self.input_details["dtype"])

    def _measure_arena(self) -> int:
        # The recording allocator knows the arena only after an invocation.
        self.run(self.zero_input())
        with captured_output(2) as captured:
            self._interpreter.print_allocations()
            match = _ARENA_TOTAL.search(captured.text())
        if not match:
            raise RuntimeError("TFLite Micro did not report its arena allocation")
        return int(match.group(1))


#: Below this, an int8 activation scale means the activations vanish; TFLite Micro's
#: kernels abort the whole process on such scales instead of returning an error.
MIN_ACTIVATION_SCALE = 1e-6


def _check_activation_scales(flatbuffer: bytes) -> None:
    from tfprune.deploy.flatbuffer import read_model

    try:
        info = read_model(flatbuffer)
    except ValueError as error:
        raise ValueError(f"TFLite Micro cannot load this model: {error}") from error
    for tensor in info.tensors:
        # Per-channel scales belong to weights (a DECODE output is one): an all-zero filter, which
        # pruning makes, gets a vanishing scale that TFLite Micro handles; activations have one scale.
        if len(tensor.scales) == 1 and not tensor.is_constant and tensor.dtype in ("int8", "uint8", "int16"):
            if min(tensor.scales) < MIN_ACTIVATION_SCALE:
                raise ValueError(
                    f"activation tensor {tensor.name!r} has int8 scale {min(tensor.scales):.3g}: its values vanish "
                    "(an untrained model, or representative data that does not reach it); "
                    "calibrate a trained model with typical inputs"
                )


def _micro_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return "; ".join(lines[:2])


def scale_and_zero_point(details: dict) -> tuple[float, int]:
    """The (first) scale and zero point of an interpreter's tensor details; (1, 0) if unquantized.

    Example:
        >>> scale_and_zero_point({"quantization_parameters": {"scales": [], "zero_points": []}})
        (1.0, 0)
    """
    params = details["quantization_parameters"]
    scale = float(params["scales"][0]) if len(params["scales"]) else 1.0
    zero_point = int(params["zero_points"][0]) if len(params["zero_points"]) else 0
    return scale, zero_point
