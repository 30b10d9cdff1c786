"""A pruned binary network on Cortex-M (int8, 1-2 bit LUT weights) and on Android (LCE).

**Cortex-M.** TFLite Micro has no ``SIGN`` operator and no binary kernels (Larq Compute
Engine runs on Arm64/Arm32 only, DESIGN section 6a). :func:`for_micro` rewrites every
larq layer so that the stock converter makes int8 operators TFLite Micro has:

* the kernel is stored as the values larq computes with (±1, and 0 where pruned), so
  per-channel int8 quantization gives 2 or 3 distinct values per channel, which
  ``tfprune.export``'s LUT compression stores in 1 or 2 bits (DECODE operators);
* ``activations="sign"`` (default) keeps binary activations, exactly. int8 cannot hold
  ±1 symmetrically (255 steps put the zero point at -0.5), so the sign ``s`` is computed
  as the step ``b = min(relu(gain * x), 1)`` in {0, 1} (:class:`MicroStep`), which int8
  holds exactly (scale 1/255, zero point -128), and the binary layer reads it as
  ``W s = (2 W) b - sum(W)``: kernel ``2 W``, bias ``- sum(W)`` over the kernel window,
  padding ``(pad_values + 1) / 2``. The gain is a 1x1 ``DEPTHWISE_CONV_2D`` with a fused
  ReLU, then ``MINIMUM``: its int8 requantization saturates every ``x`` that int8 tells
  from 0 (input scales from 1e-4 to 1.6, pre-activations up to about ±200). A
  broadcast ``MUL`` would compute the same thing, but TFLite's optimized int8 ``MUL``
  kernel (the one Android and the Python interpreter run) is wrong for a rescale above
  1 and turned a binary ResNet-8 at 38% into 9%; convolution kernels rescale by more
  than 1 correctly in every kernel set (reference, optimized, CMSIS-NN). A
  pre-activation that requantizes to exactly 0 gives -1 where larq's ``ste_sign``
  gives +1 (pruned channels are not affected: their readers' kernel rows are 0);
* ``activations="int8"`` drops the input quantizer instead: int8 activations with binary
  weights (a different function from the larq model's unless trained that way).

``pad_values=1`` padding stays a ``PADV2`` of +1. What this costs in accuracy against the
larq model is measured by :func:`export_both` (``micro_vs_larq_agreement`` and the
accuracies when labels are given).

**Android.** :func:`for_lce` cuts the pruned channels out and gives every larq layer whose
kernel is all ±1 its ``ste_sign`` kernel quantizer back, so Larq Compute Engine's
converter makes ``LceBconv2d``; a layer with pruned connections (zeros) cannot be 1-bit
and LCE runs it as a float convolution, 32 bits per weight: :func:`for_lce` warns, naming
the layers.

``tfprune.export`` takes both routes by itself: a larq model for ``cortex-m`` goes through
:func:`for_micro` (when it still has larq's quantizers) and one for ``android-lce`` through
:func:`for_lce`; the report's ``larq`` entry (:func:`micro_entry`, :func:`lce_entry`) says
what was emulated and how.

Example:
    >>> import numpy as np
    >>> from tfprune.models import binary_small_vgg
    >>> micro = for_micro(binary_small_vgg(input_shape=(8, 8, 3)))
    >>> type(micro.get_layer("conv1").input_quantizer).__name__, micro.get_layer("conv1").kernel_quantizer
    ('MicroStep', None)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from tfprune.core.surgery import without_masks
from tfprune.keras_model import check_keras_model, inner_layer, is_larq_layer

ACTIVATIONS = ("sign", "int8")

#: Gain before the clip: any input int8 can tell from 0 saturates to ±1.
SIGN_GAIN = 1e4

#: How :func:`for_micro` makes a larq model run on TFLite Micro, as the report says it.
MICRO_EMULATION = (
    "TFLite Micro has no SIGN operator and no binary kernels: each larq sign activation is computed as the int8 "
    f"step b = min(relu({SIGN_GAIN:g} * x), 1) (a 1x1 DEPTHWISE_CONV_2D with fused ReLU, then MINIMUM) and read as "
    "2b - 1 by a kernel stored as 2W with bias -sum(W); the +-1 (0 where pruned) weights are int8 values that LUT "
    "compression stores in 1-2 bits. A pre-activation that quantizes to exactly 0 reads as -1 where larq reads +1."
)
#: The same for ``for_micro(activations="int8")``.
MICRO_INT8_ACTIVATIONS = (
    "binary (+-1, 0 where pruned) weights as int8 values that LUT compression stores in 1-2 bits, int8 "
    "activations: larq's input quantizers were dropped, a different function from the larq model's"
)


@tf.keras.utils.register_keras_serializable(package="tfprune")
class MicroStep(tf.keras.layers.Layer):
    """``min(relu(gain * x), 1)``: the step ``(sign(x) + 1) / 2`` as int8 saturation, with TFLite Micro's ops.

    Example:
        >>> MicroStep()(tf.constant([-3.0, 0.5, 2.0])).numpy().tolist()
        [0.0, 1.0, 1.0]
    """

    precision = 1  # what larq's summary reads

    def __init__(self, gain: float = SIGN_GAIN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not gain > 0:
            raise ValueError(f"gain must be positive, got {gain!r}")
        self.gain = float(gain)

    def call(self, inputs: Any) -> Any:
        images = inputs if inputs.shape.rank == 4 else tf.reshape(inputs, (-1, 1, 1, inputs.shape[-1]))
        gain = tf.fill((1, 1, images.shape[-1], 1), self.gain)  # a conv, not a MUL: see the module
        step = tf.minimum(tf.nn.relu(tf.nn.depthwise_conv2d(images, gain, (1, 1, 1, 1), "VALID")), 1.0)
        return step if inputs.shape.rank == 4 else tf.reshape(step, tf.shape(inputs))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gain": self.gain}


def for_micro(model: Any, activations: str = "sign") -> Any:
    """A model TFLite Micro can run that computes what the (pruned) larq ``model`` computes.

    Masks are folded and pruned channels cut out first (:func:`tfprune.remove_masked_channels`).
    Pass the result to ``tfprune.export(..., target="cortex-m")``.

    Example:
        >>> from tfprune.models import binary_resnet8
        >>> micro = for_micro(binary_resnet8(), activations="int8")
        >>> micro.get_layer("stack1_conv1").input_quantizer is None
        True
    """
    if activations not in ACTIVATIONS:
        raise ValueError(f"unknown activations {activations!r}; choose 'sign' (binary, as larq computes) "
                         "or 'int8' (int8 activations, binary weights)")
    plain = without_masks(model)
    replaced = {}

    def clone(layer: Any) -> Any:
        if not is_larq_layer(layer):
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        _check_supported(layer, config)
        config["kernel_quantizer"], config["kernel_constraint"] = None, None
        step = activations == "sign" and config.get("input_quantizer") is not None
        if step:
            config["use_bias"] = True
            if config.get("padding") == "same":
                config["pad_values"] = (float(config.get("pad_values", 0.0)) + 1.0) / 2.0
        config["input_quantizer"] = MicroStep() if step else None
        replaced[layer.name] = step
        return layer.__class__(**config)  # larq keeps a quantizer instance given to its constructor

    micro = tf.keras.models.clone_model(plain, clone_function=clone)
    for layer in plain.layers:
        target = micro.get_layer(layer.name)
        target.set_weights(_computed_weights(layer, replaced[layer.name]) if layer.name in replaced
                           else layer.get_weights())
    return micro


def for_lce(model: Any) -> Any:
    """The (pruned) larq ``model`` ready for Larq Compute Engine: channels cut, 1-bit kernels restored.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> lce = for_lce(binary_small_vgg(input_shape=(8, 8, 3)))
        >>> type(lce.get_layer("conv1").kernel_quantizer).__name__
        'SteSign'
    """
    plain = without_masks(model)
    binary = {layer.name for layer in plain.layers if is_larq_layer(layer) and layer.kernel_quantizer is None
              and np.isin(layer.get_weights()[0], (-1.0, 1.0)).all()}
    ternary = ternary_layers(plain)
    if ternary:
        warnings.warn(
            f"layers {ternary} have pruned connections (0 beside +-1 in their kernels): Larq Compute Engine cannot "
            "run them 1-bit and converts them to float convolutions, 32 bits per weight instead of 1; prune whole "
            "filters (ARSP's granularity='filters') to keep them binary", UserWarning, stacklevel=2)
    if not binary:
        return plain

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in binary:
            config["kernel_quantizer"], config["kernel_constraint"] = "ste_sign", "weight_clip"
        return layer.__class__.from_config(config)

    lce = tf.keras.models.clone_model(plain, clone_function=clone)
    for layer in plain.layers:
        lce.get_layer(layer.name).set_weights(layer.get_weights())
    return lce


def ternary_layers(model: Any) -> list[str]:
    """The larq layers whose kernels hold 0 beside +-1 (connection-pruned binary layers): no 1-bit kernel runs them.

    Example:
        >>> import larq as lq
        >>> layer = lq.layers.QuantDense(2, kernel_quantizer=None, use_bias=False, name="q")
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), layer])
        >>> layer.set_weights([np.array([[1.0, -1.0], [0.0, 1.0]], np.float32)])
        >>> ternary_layers(model)
        ['q']
    """
    names = []
    for layer in without_masks(model).layers:
        if is_larq_layer(layer) and getattr(layer, "kernel_quantizer", None) is None and layer.get_weights():
            kernel = layer.get_weights()[0]
            if np.isin(kernel, (-1.0, 0.0, 1.0)).all() and (kernel == 0).any() and (kernel != 0).any():
                names.append(layer.name)
    return names


def needs_micro(model: Any) -> bool:
    """Whether ``model`` has larq quantizers TFLite Micro cannot run, so it must go through :func:`for_micro`.

    ``tfprune.export(model, target="cortex-m")`` asks this and routes the model itself.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> model = binary_small_vgg(input_shape=(8, 8, 3))
        >>> needs_micro(model), needs_micro(for_micro(model))
        (True, False)
    """
    for layer in model.layers:
        layer = inner_layer(layer)
        if is_larq_layer(layer):
            quantizers = (getattr(layer, name, None) for name in ("kernel_quantizer", "input_quantizer",
                                                                  "depthwise_quantizer"))
            if any(quantizer is not None and not isinstance(quantizer, MicroStep) for quantizer in quantizers):
                return True
    return False


def micro_entry(model: Any, automatic: bool) -> dict[str, Any] | None:
    """The report's ``larq`` entry for a model :func:`for_micro` made; None for a model without larq layers.

    ``automatic``: whether ``tfprune.export`` called :func:`for_micro` itself.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> entry = micro_entry(for_micro(binary_small_vgg(input_shape=(8, 8, 3))), automatic=False)
        >>> entry["sign_activation_layers"], entry["rewritten_by"]
        (['conv1', 'conv2', 'conv3', 'conv4', 'conv5'], 'tfprune.deploy.binary.for_micro')
    """
    larq = [inner_layer(layer) for layer in model.layers if is_larq_layer(inner_layer(layer))]
    if not larq:
        return None
    steps = [layer.name for layer in larq if isinstance(getattr(layer, "input_quantizer", None), MicroStep)]
    how = MICRO_EMULATION if steps else MICRO_INT8_ACTIVATIONS
    summary = (f"{'routed by tfprune.export through' if automatic else 'made by'} for_micro: "
               + (f"{len(steps)} sign activations emulated as exact int8 steps" if steps else "int8 activations")
               + ", binary weights as int8 values (LUT-compressed when smaller)")
    return {"rewritten_by": "tfprune.deploy.binary.for_micro", "automatic": automatic,
            "sign_activation_layers": steps, "emulation": how, "summary": summary}


def lce_entry(model: Any) -> dict[str, Any] | None:
    """The report's ``larq`` entry for a model :func:`for_lce` made: which layers run 1-bit, which as float.

    Example:
        >>> from tfprune.models import binary_small_vgg
        >>> lce_entry(for_lce(binary_small_vgg(input_shape=(8, 8, 3))))["float_layers"]
        []
    """
    larq = [layer for layer in without_masks(model).layers if is_larq_layer(layer)]
    if not larq:
        return None
    binary = [layer.name for layer in larq
              if getattr(getattr(layer, "kernel_quantizer", None), "precision", None) == 1]
    floats = ternary_layers(model)
    summary = f"{len(binary)} layers 1-bit (LceBconv2d)"
    if floats:
        summary += (f"; {len(floats)} with pruned connections run as float convolutions ({', '.join(floats)}): "
                    "prune filters to keep them 1-bit")
    return {"rewritten_by": "tfprune.deploy.binary.for_lce", "binary_layers": binary, "float_layers": floats,
            "summary": summary}


@dataclass
class BinaryDeployment:
    """Both artifacts of a binary model and what deployment did to it.

    ``micro_vs_larq_agreement``: top-1 agreement of the Cortex-M int8 model (TFLite,
    uncompressed; TFLite Micro reproduces it exactly, see the artifact's verification)
    with the larq Keras model; accuracies when labels were given.
    """

    cortex_m: Any
    android_lce: Any
    figures: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Any, overwrite: bool = False) -> None:
        """Write ``cortex-m/`` and ``android-lce/`` under ``directory`` (see ``Artifact.save``)."""
        from pathlib import Path

        self.cortex_m.save(Path(directory) / "cortex-m", overwrite=overwrite)
        self.android_lce.save(Path(directory) / "android-lce", overwrite=overwrite)


def export_both(
    model: Any,
    representative_data: Any,
    verify_data: Any = None,
    activations: str = "sign",
    compress: str = "auto",
    progress: bool = False,
) -> BinaryDeployment:
    """Export a (pruned) larq model for ``cortex-m`` and ``android-lce`` and compare both with it.

    ``verify_data`` is ``x`` or ``(x, y)``; with labels the figures include the
    accuracy of the larq model, of the Cortex-M model and of the LCE model.
    ``android_lce_float_layers`` names the connection-pruned layers LCE runs as
    float convolutions (:func:`for_lce` warns about them).

    Example:
        >>> import numpy as np
        >>> from tfprune.models import binary_small_vgg
        >>> x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
        >>> both = export_both(binary_small_vgg(input_shape=(8, 8, 3)), x)
        >>> both.figures["cortex_m_bytes"] > both.figures["android_lce_bytes"]
        True
    """
    import tfprune
    from tfprune.keras_model import labelled_samples, model_sample_shape
    from tfprune.deploy.verify import tflite_accuracy, tflite_runner

    check_keras_model(model)
    x, y = labelled_samples(verify_data if verify_data is not None else representative_data,
                            model_sample_shape(model))
    micro = tfprune.export(for_micro(model, activations), representative_data, target="cortex-m",
                           verify_data=x, compress=compress, progress=progress)
    lce = tfprune.export(model, representative_data, target="android-lce", verify_data=x,  # export calls for_lce
                         progress=progress)
    reference = micro.reference_flatbuffer or micro.flatbuffer
    keras_top1 = np.argmax(model.predict(x, verbose=0, batch_size=256), -1)
    run = tflite_runner(reference, resolver=None, real=False)
    micro_top1 = np.array([int(np.argmax(run(x[i:i + 1]))) for i in range(len(x))])
    figures = {
        "cortex_m_bytes": micro.report["flatbuffer_bytes"],
        "cortex_m_uncompressed_bytes": len(reference),
        "android_lce_bytes": lce.report["flatbuffer_bytes"],
        "lut_compressed": bool((micro.report.get("compression") or {}).get("applied")),
        "activations": activations,
        "micro_vs_larq_agreement": float(np.mean(micro_top1 == keras_top1)),
        "tflm_agreement": micro.report["verification"]["top1_agreement"],
        "lce_agreement": lce.report["verification"]["top1_agreement"],
        "android_lce_float_layers": lce.report["larq"]["float_layers"],
        "samples": len(x),
    }
    if y is not None:
        figures["larq_accuracy"] = float(np.mean(keras_top1 == y))
        figures["cortex_m_accuracy"] = tflite_accuracy(reference, x, y)
        figures["android_lce_accuracy"] = lce.report["verification"].get("accuracy")
    return BinaryDeployment(micro, lce, figures)


# --- helpers --------------------------------------------------------------------------------


def _check_supported(layer: Any, config: dict[str, Any]) -> None:
    if "kernel_quantizer" not in config or "depthwise_quantizer" in config:
        raise TypeError(f"layer {layer.name!r} is a larq {type(layer).__name__}; tfprune deploys larq's "
                        "QuantConv2D and QuantDense")


def _computed_weights(layer: Any, step: bool) -> list[np.ndarray]:
    """The kernel as larq computes with it (quantized); for a step input ``2 W`` and bias ``b - sum W``."""
    values = layer.get_weights()
    kernel = values[0]
    quantizer = getattr(layer, "kernel_quantizer", None)
    if quantizer is not None:
        kernel = quantizer(tf.convert_to_tensor(kernel)).numpy()
    if not step:
        return [kernel, *values[1:]]
    bias = values[1] if len(values) > 1 else np.zeros(kernel.shape[-1], kernel.dtype)
    window = tuple(range(kernel.ndim - 1))  # every axis but the output channel
    return [2.0 * kernel, (bias - kernel.sum(axis=window)).astype(kernel.dtype)]
