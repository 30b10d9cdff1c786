"""Deployment: Keras model -> flatbuffer -> TFLite Micro / Android, measured on the artifact.

Modules: ``tflite`` (conversion), ``compress`` (TFLite Micro DECODE compression: LUT, PRUNE),
``lean`` (a flatbuffer holding only what TFLite Micro reads),
``micro`` (the TFLite Micro interpreter on the host), ``verify``,
``flatbuffer`` (reading any .tflite), ``report``, ``c_array`` (C sources),
``artifact`` (saving), ``pipeline`` (``export`` itself).

Example:
    >>> from tfprune.datasets import mlperf_path
    >>> from tfprune.deploy import inspect_flatbuffer
    >>> inspect_flatbuffer(mlperf_path("pretrainedResnet_quant.tflite"))["macs"] > 0
    True
"""

from tfprune.deploy.artifact import Artifact, Report
from tfprune.deploy.pipeline import TARGETS, export, inspect_flatbuffer

__all__ = ["Artifact", "Report", "TARGETS", "export", "inspect_flatbuffer"]
