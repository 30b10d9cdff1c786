"""Masks: a Keras wrapper that every pruning method moves, and its folding into plain layers.

``MaskedLayer`` wraps a ``Conv2D``, ``DepthwiseConv2D`` or ``Dense`` (larq's
``QuantConv2D``, ``QuantDepthwiseConv2D`` and ``QuantDense`` included) and keeps, per
pruning *source*, two non-trainable 0/1 variables: a weight mask shaped like the kernel and a
channel mask with one entry per output channel. The effective mask is the product over all
sources. Sources are fixed when the layer is made (``wrap(model, sources=(...))``): the
variables exist before ``fit`` traces its step, so a callback moves a mask with
``Variable.assign`` between batches and the very next step uses it.

How the masks act:

* **Forward pass.** ``call`` multiplies the kernel by the effective mask (weight masks times
  the channel masks broadcast over each channel's kernel slice) and the bias by the channel
  mask, then runs the inner layer's own ``call`` on them. For larq layers the kernel quantizer
  runs first and the mask after it, so a pruned binary weight is exactly 0, not +1.
* **Stored weights.** Masking in ``call`` zeroes the gradients of pruned entries, but Adam's
  and SGD's momentum and weight decay still move them. The wrapper therefore installs a
  constraint on the kernel (and bias) variables: Keras' optimizers (the 2.15 ones and the
  legacy ones) apply ``variable.constraint`` after every update, so pruned entries are exactly
  0 in the stored weights after every optimizer step. The layer's own constraint (larq's
  ``weight_clip``, say) runs first. The layer's config keeps its original constraint.
* **Channels.** A pruned channel outputs zero wherever it is read. The producer's kernel
  slice and bias are masked; what a ``BatchNormalization`` directly after it adds (BN maps 0
  to ``beta - gamma*mean/sqrt(var+eps)``) is removed by a ``ChannelGate``: ``wrap`` wraps
  every ``BatchNormalization`` whose only input is a wrapped layer's output in a gate that
  multiplies the BN's output by that producer's effective channel mask (the gate reads the
  producer's variables, it holds none). Activations that map 0 to 0 (ReLU, ReLU6, tanh, ...)
  keep the channel at 0. Out of scope: an activation that does not (sigmoid, say) between the
  layer and its BN, or after it, and larq's ``input_quantizer`` in the *next* binary layer,
  which reads a 0 as +1 (``ste_sign(0) = 1``); a layer's own non-zero-preserving activation
  is refused by ``set_channel_mask``.

``strip`` folds every mask into a plain Keras model computing exactly what the masked model
computes: masked kernel entries and pruned channels' kernel slices and biases are 0, and the
gated BN's gamma, beta and moving mean are 0 on pruned channels, so it outputs exactly 0
there. A larq layer with any pruned weight is stripped to the same larq layer with its
quantized kernel stored (values {-1, 0, +1} times any scale) and no kernel quantizer: a binary
kernel cannot hold a 0. Layers with nothing pruned are stripped unchanged (masks are free).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="fc")])
    >>> masked = wrap(model)
    >>> masked.get_layer("fc").set_channel_mask([True, False, True])
    >>> channel_masks(masked)["fc"].tolist()
    [True, False, True]
    >>> float(masked(np.ones((1, 4), np.float32))[0, 1])
    0.0
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfprune import keras_model
from tfprune.keras_model import (
    PRUNABLE_TEXT,
    check_keras_model,
    is_prunable,
    kernel_attribute,
    latent_variable,
)

DEFAULT_SOURCE = "default"
_SOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _check_maskable(layer: Any) -> None:
    if not is_prunable(layer):
        raise TypeError(f"layer {getattr(layer, 'name', layer)!r} is a {type(layer).__name__}; "
                        f"tfprune masks {PRUNABLE_TEXT}")


def _check_sources(sources: Any) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = (sources,)
    sources = tuple(sources)
    if not sources:
        raise ValueError("sources is empty; give at least one source name, e.g. sources=('default',)")
    bad = [s for s in sources if not isinstance(s, str) or not _SOURCE_NAME.match(s)]
    if bad:
        raise ValueError(f"source names {bad} are not identifiers; use letters, digits and '_', e.g. 'qsae'")
    if len(set(sources)) != len(sources):
        raise ValueError(f"sources {list(sources)} repeat a name; give each source once")
    return sources


def _kernel_quantizer(layer: Any) -> Callable | None:
    """larq's kernel quantizer of ``layer`` (None for Keras layers and larq layers without one)."""
    name = "depthwise_quantizer" if isinstance(layer, tf.keras.layers.DepthwiseConv2D) else "kernel_quantizer"
    return getattr(layer, name, None)


def _output_channels(kernel_shape: Sequence[int], depthwise: bool) -> int:
    return int(kernel_shape[-2] * kernel_shape[-1]) if depthwise else int(kernel_shape[-1])


def _channel_to_kernel(channel: Any, kernel_shape: Sequence[int], depthwise: bool) -> Any:
    """Reshape a per-output-channel vector so it broadcasts over the kernel.

    A depthwise kernel is (kh, kw, in, multiplier) and output channel ``i*multiplier+m``.
    """
    if depthwise:
        return tf.reshape(channel, (int(kernel_shape[-2]), int(kernel_shape[-1])))
    return channel


@contextlib.contextmanager
def _substituted(layer: Any, values: dict[str, Any]) -> Iterator[None]:
    """Temporarily replace attributes of ``layer`` (its kernel and bias) by masked tensors.

    ``object.__setattr__`` keeps Keras' attribute tracking out of it: the variables
    stay tracked where they were, and the tensors are never tracked.
    """
    saved = {name: getattr(layer, name) for name in values}
    try:
        for name, value in values.items():
            object.__setattr__(layer, name, value)
        yield
    finally:
        for name, value in saved.items():
            object.__setattr__(layer, name, value)


def _import_larq_for(config: dict) -> None:
    """Import larq when a serialized inner layer is one of its classes, so Keras can find it."""
    class_name = str(config.get("class_name", ""))
    if class_name.startswith(("Quant", "larq")) and importlib.util.find_spec("larq") is not None:
        importlib.import_module("larq")


class _MaskConstraint(tf.keras.constraints.Constraint):
    """The layer's own constraint followed by the effective mask; applied by the optimizer."""

    def __init__(self, mask: Callable[[], Any], inner: Any = None) -> None:
        self._mask = mask
        self._inner = inner

    def __call__(self, weight: Any) -> Any:
        if self._inner is not None:
            weight = self._inner(weight)
        return weight * tf.cast(self._mask(), weight.dtype)


@tf.keras.utils.register_keras_serializable(package="tfprune")
class MaskedLayer(tf.keras.layers.Wrapper):
    """A conv/dense layer with 0/1 weight and channel masks, one of each per pruning source.

    The wrapper takes the inner layer's name, so ``model.get_layer(name)`` finds it. See
    the module docstring for how the masks act on the forward pass, the stored weights and
    the channels.

    Args:
        layer: a ``Conv2D``, ``DepthwiseConv2D`` or ``Dense`` (larq's quantized ones too).
        sources: names of the pruning sources that own masks here; fixed for the
            layer's life.

    Example:
        >>> import numpy as np
        >>> layer = MaskedLayer(tf.keras.layers.Dense(2, use_bias=False, kernel_initializer="ones"),
        ...                     sources=("a", "b"))
        >>> _ = layer(np.ones((1, 2), np.float32))
        >>> layer.set_mask([[1, 0], [1, 1]], source="a")
        >>> layer.set_mask([[1, 1], [0, 1]], source="b")
        >>> layer.get_mask().astype(int).tolist()
        [[1, 0], [0, 1]]
        >>> layer(np.ones((1, 2), np.float32)).numpy().tolist(), layer.sparsity()
        ([[1.0, 1.0]], 0.5)
    """

    def __init__(self, layer: Any, sources: Iterable[str] = (DEFAULT_SOURCE,), **kwargs: Any) -> None:
        _check_maskable(layer)
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self._sources = _check_sources(sources)
        self._depthwise = isinstance(layer, tf.keras.layers.DepthwiseConv2D)
        self._passes_training = "training" in inspect.signature(layer.call).parameters
        # Kept out of Keras' tracking: the variables are tracked through add_weight.
        object.__setattr__(self, "_weight_masks", {})
        object.__setattr__(self, "_channel_masks", {})

    # --- building -------------------------------------------------------------------------

    def build(self, input_shape: Any) -> None:
        """Build the inner layer with the mask constraints, then one mask pair per source."""
        if self.layer.built:
            self._constrain_built_variables()
        else:
            with self._mask_constraints_for_build():
                self.layer.build(input_shape)
                self.layer.built = True
        kernel_shape = tuple(self._kernel_variable().shape)
        channels = _output_channels(kernel_shape, self._depthwise)
        for source in self._sources:
            self._weight_masks[source] = self.add_weight(
                name=f"mask_{source}", shape=kernel_shape, initializer="ones", trainable=False, dtype=tf.float32)
            self._channel_masks[source] = self.add_weight(
                name=f"channel_mask_{source}", shape=(channels,), initializer="ones", trainable=False,
                dtype=tf.float32)
        self.built = True

    def _constraint_attrs(self) -> dict[str, Callable[[], Any]]:
        kernel = "depthwise_constraint" if self._depthwise else "kernel_constraint"
        attrs = {kernel: self._kernel_mask_tensor}
        if getattr(self.layer, "use_bias", False):
            attrs["bias_constraint"] = self._channel_mask_tensor
        return attrs

    @contextlib.contextmanager
    def _mask_constraints_for_build(self) -> Iterator[None]:
        """Give the inner layer mask-applying constraints while it creates its variables.

        Keras layers pass ``self.kernel_constraint`` (etc.) to ``add_weight`` in ``build``;
        the variable keeps it. The attribute is restored afterwards, so the inner layer's
        config still names its own constraint.
        """
        saved = {name: getattr(self.layer, name) for name in self._constraint_attrs()}
        try:
            for name, mask in self._constraint_attrs().items():
                setattr(self.layer, name, _MaskConstraint(mask, saved[name]))
            yield
        finally:
            for name, value in saved.items():
                setattr(self.layer, name, value)

    def _constrain_built_variables(self) -> None:
        # An already built layer: its variables exist, so set their constraint directly.
        variables = {"kernel": self._kernel_variable(), "bias": getattr(self.layer, "bias", None)}
        for name, mask in self._constraint_attrs().items():
            variable = latent_variable(variables["bias" if name == "bias_constraint" else "kernel"])
            keras_model.set_constraint(variable, _MaskConstraint(mask, variable.constraint))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    # --- the forward pass -----------------------------------------------------------------

    def call(self, inputs: Any, training: Any = None) -> Any:
        kernel = self._kernel_variable()
        quantizer = _kernel_quantizer(self.layer)
        value = tf.convert_to_tensor(latent_variable(kernel))
        if quantizer is not None:
            value = quantizer(value)
        values = {kernel_attribute(self.layer): value * tf.cast(self._kernel_mask_tensor(), value.dtype)}
        if getattr(self.layer, "use_bias", False):
            bias = tf.convert_to_tensor(self.layer.bias)
            values["bias"] = bias * tf.cast(self._channel_mask_tensor(), bias.dtype)
        kwargs = {"training": training} if self._passes_training else {}
        with _substituted(self.layer, values):
            return self.layer.call(inputs, **kwargs)

    def _kernel_variable(self) -> Any:
        return getattr(self.layer, kernel_attribute(self.layer))

    def _channel_mask_tensor(self) -> Any:
        return _product(self._channel_masks[s] for s in self._sources)

    def _kernel_mask_tensor(self) -> Any:
        weight = _product(self._weight_masks[s] for s in self._sources)
        kernel_shape = tuple(self._kernel_variable().shape)
        return weight * _channel_to_kernel(self._channel_mask_tensor(), kernel_shape, self._depthwise)

    # --- masks ----------------------------------------------------------------------------

    @property
    def sources(self) -> tuple[str, ...]:
        """The pruning sources that own masks on this layer, in order."""
        return self._sources

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """Shape of the kernel (and of every weight mask)."""
        self._check_built()
        return tuple(int(d) for d in self._kernel_variable().shape)

    @property
    def channels(self) -> int:
        """Number of output channels (the length of a channel mask)."""
        return _output_channels(self.kernel_shape, self._depthwise)

    def set_mask(self, mask: Any, source: str = DEFAULT_SOURCE) -> None:
        """Set ``source``'s weight mask (kernel-shaped; 1/True keeps, 0/False prunes).

        Safe to call from a callback during ``fit``, or inside a ``tf.function`` with a
        tensor: it assigns the variable, so the next step uses it. The stored kernel keeps
        the pruned values until the next optimizer step (or ``strip``) zeroes them.
        """
        self._check_built()
        self._weight_masks[self._check_source(source)].assign(self._mask_value(mask, self.kernel_shape, "mask"))

    def get_mask(self, source: str | None = None) -> np.ndarray:
        """``source``'s weight mask, or with ``None`` the effective kernel mask (all sources' weight
        and channel masks multiplied), as booleans."""
        self._check_built()
        if source is None:
            return self._kernel_mask_tensor().numpy() > 0.5
        return self._weight_masks[self._check_source(source)].numpy() > 0.5

    def set_channel_mask(self, keep: Any, source: str = DEFAULT_SOURCE) -> None:
        """Set ``source``'s channel mask: one entry per output channel, False prunes the channel."""
        self._check_built()
        value = self._mask_value(keep, (self.channels,), "channel mask")
        if not isinstance(value, np.ndarray) or not value.all():
            self._check_activation_keeps_zero()
        self._channel_masks[self._check_source(source)].assign(value)

    def get_channel_mask(self, source: str | None = None) -> np.ndarray:
        """``source``'s channel mask, or with ``None`` the effective one (product over sources)."""
        self._check_built()
        if source is None:
            return self._channel_mask_tensor().numpy() > 0.5
        return self._channel_masks[self._check_source(source)].numpy() > 0.5

    def effective_kernel(self) -> np.ndarray:
        """The kernel the layer computes with: quantized (larq) and masked."""
        self._check_built()
        value = tf.convert_to_tensor(latent_variable(self._kernel_variable()))
        quantizer = _kernel_quantizer(self.layer)
        if quantizer is not None:
            value = quantizer(value)
        return (value * tf.cast(self._kernel_mask_tensor(), value.dtype)).numpy()

    def sparsity(self) -> float:
        """Fraction of zero entries in the kernel the layer computes with (masked, quantized)."""
        kernel = self.effective_kernel()
        return float(1.0 - np.count_nonzero(kernel) / kernel.size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sources": list(self._sources)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> MaskedLayer:
        _import_larq_for(config.get("layer", {}))
        return super().from_config(config, custom_objects=custom_objects)

    def _check_built(self) -> None:
        if not self.built:
            raise ValueError(f"MaskedLayer {self.name!r} is not built yet; call it on an input "
                             "(tfprune.wrap returns built layers)")

    def _check_source(self, source: str) -> str:
        if source not in self._sources:
            raise ValueError(f"layer {self.name!r} has no mask source {source!r}; its sources are "
                             f"{list(self._sources)} (choose them with wrap(model, sources=...))")
        return source

    def _mask_value(self, mask: Any, shape: tuple[int, ...], what: str) -> Any:
        if tf.is_tensor(mask) and not tf.executing_eagerly():
            # inside a tf.function: only the static shape can be checked
            if not mask.shape.is_compatible_with(shape):
                raise ValueError(f"{what} for layer {self.name!r} has shape {tuple(mask.shape)}; expected {shape}")
            return tf.cast(mask, tf.float32)
        value = np.asarray(mask.numpy() if tf.is_tensor(mask) else mask)
        if value.shape != shape:
            raise ValueError(f"{what} for layer {self.name!r} has shape {value.shape}; expected {shape}")
        if value.dtype != bool and not np.isin(value, (0, 1)).all():
            raise ValueError(f"{what} for layer {self.name!r} holds values other than 0 and 1; "
                             "give booleans or 0/1 (True keeps)")
        return value.astype(np.float32)

    @tf.autograph.experimental.do_not_convert  # plain Python, also when called in a tf.function
    def _check_activation_keeps_zero(self) -> None:
        activation = getattr(self.layer, "activation", None)
        if activation is None:
            return
        with tf.init_scope():  # eager even inside a tf.function
            at_zero = float(activation(tf.zeros((1, 2)))[0, 0])  # 2-D so that softmax applies too
        if at_zero != 0.0:
            raise ValueError(f"layer {self.name!r} has activation {getattr(activation, '__name__', activation)} "
                             f"mapping 0 to {at_zero:g}, so a pruned channel would not output zero; "
                             "move the activation into its own layer after the pruning")


def _product(tensors: Iterable[Any]) -> Any:
    result = None
    for tensor in tensors:
        result = tf.convert_to_tensor(tensor) if result is None else result * tensor
    return result


@tf.keras.utils.register_keras_serializable(package="tfprune")
class ChannelGate(tf.keras.layers.Wrapper):
    """A BatchNormalization whose output is 0 on the channels its producer's channel mask prunes.

    BN maps 0 to ``beta - gamma*mean/sqrt(var+eps)``; the gate multiplies BN's output by
    the effective channel mask of ``producer``, the ``MaskedLayer`` whose output it reads
    (it holds no variables of its own). The link to the producer is made when the gate is
    called on the producer's output in a functional or Sequential model, which is also how
    a saved model is rebuilt. ``wrap`` makes gates; there is seldom a reason to make one.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc"),
        ...                              tf.keras.layers.BatchNormalization(name="bn")])
        >>> masked = wrap(model)
        >>> type(masked.get_layer("bn")).__name__, masked.get_layer("bn").producer
        ('ChannelGate', 'fc')
    """

    def __init__(self, layer: Any, producer: str, **kwargs: Any) -> None:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            raise TypeError(f"ChannelGate wraps a BatchNormalization, got {type(layer).__name__} {layer.name!r}")
        if not isinstance(producer, str) or not producer:
            raise ValueError(f"ChannelGate {layer.name!r} needs the name of the MaskedLayer it reads, got {producer!r}")
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.producer = producer
        object.__setattr__(self, "_producer_layer", None)  # not tracked: the model owns it

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        origin = keras_model.tensor_origin(inputs)
        source = origin[0] if origin else None
        if isinstance(source, MaskedLayer) and source.name == self.producer:
            object.__setattr__(self, "_producer_layer", source)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs: Any, training: Any = None) -> Any:
        producer = self._producer_layer
        if producer is None:
            raise ValueError(f"ChannelGate {self.name!r} reads the channel mask of {self.producer!r} but was not "
                             f"called on that layer's output; call it on {self.producer!r}'s output in the model")
        outputs = self.layer(inputs, training=training)
        shape = [1] * outputs.shape.rank
        axis = self.layer.axis[0] if isinstance(self.layer.axis, (list, tuple)) else self.layer.axis
        shape[axis] = producer.channels
        return outputs * tf.cast(tf.reshape(producer._channel_mask_tensor(), shape), outputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "producer": self.producer}


# --- model-level functions -----------------------------------------------------------------

LayerSelection = None | str | Sequence[str] | Callable[[Any], bool]


def wrap(model: Any, layers: LayerSelection = None, sources: Iterable[str] = (DEFAULT_SOURCE,)) -> Any:
    """A clone of ``model`` with the chosen layers in ``MaskedLayer`` (all masks 1) and gates on their BNs.

    Args:
        model: a tf.keras Sequential or functional model (larq layers allowed), not nested.
        layers: ``None`` for every maskable layer, a list of layer names, or a predicate
            called on each maskable layer. Already wrapped layers are kept as they are.
        sources: the pruning sources that will own masks on each wrapped layer.

    Returns:
        A new model sharing no variables with ``model``; its outputs equal ``model``'s.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, name="a"),
        ...                              tf.keras.layers.Dense(2, name="b")])
        >>> [type(layer).__name__ for layer in wrap(model, layers=["b"]).layers]
        ['Dense', 'MaskedLayer']
    """
    check_keras_model(model)
    _check_flat(model)
    sources = _check_sources(sources)
    chosen = _chosen_layers(model, layers)
    producers = chosen | {layer.name for layer in model.layers if isinstance(layer, MaskedLayer)}
    gated = _batchnorms_after(model, producers)

    def clone(layer: Any) -> Any:
        if layer.name in chosen and not isinstance(layer, MaskedLayer):
            return MaskedLayer(_fresh(layer), sources=sources)
        if layer.name in gated and not isinstance(layer, ChannelGate):
            return ChannelGate(_fresh(layer), producer=gated[layer.name])
        return _fresh(layer)

    wrapped = tf.keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = wrapped.get_layer(layer.name)
        if isinstance(target, (MaskedLayer, ChannelGate)) and not isinstance(layer, type(target)):
            target = target.layer
        target.set_weights(layer.get_weights())
    return wrapped


def strip(model: Any) -> Any:
    """A plain Keras model computing exactly what the masked ``model`` computes, masks folded in.

    Masked kernel entries, pruned channels' kernel slices and biases, and the gated BN's
    gamma, beta and moving mean on pruned channels are 0. A larq layer with pruned weights
    keeps its quantized kernel as stored values and drops its kernel quantizer.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, name="fc")])
        >>> masked = wrap(model)
        >>> masked.get_layer("fc").set_mask([[1, 0], [1, 1]])
        >>> plain = strip(masked)
        >>> type(plain.get_layer("fc")).__name__, float(plain.get_layer("fc").kernel[0, 1])
        ('Dense', 0.0)
    """
    check_keras_model(model)
    _check_flat(model)

    def clone(layer: Any) -> Any:
        if isinstance(layer, MaskedLayer):
            return layer.layer.__class__.from_config(_stripped_config(layer))
        if isinstance(layer, ChannelGate):
            return _fresh(layer.layer)
        return _fresh(layer)

    plain = tf.keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = plain.get_layer(layer.name)
        if isinstance(layer, MaskedLayer):
            target.set_weights(_folded_weights(layer))
        elif isinstance(layer, ChannelGate):
            target.set_weights(_gated_batchnorm_weights(layer))
        else:
            target.set_weights(layer.get_weights())
    return plain


def channel_masks(model: Any) -> dict[str, np.ndarray]:
    """Layer name -> effective boolean keep vector, for every wrapped layer with a pruned channel.

    Example:
        >>> model = wrap(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, name="fc")]))
        >>> channel_masks(model)
        {}
    """
    check_keras_model(model)
    masks = {}
    for layer in model.layers:
        if isinstance(layer, MaskedLayer):
            keep = layer.get_channel_mask()
            if not keep.all():
                masks[layer.name] = keep
    return masks


def sparsity_table(model: Any) -> list[dict[str, Any]]:
    """Per maskable layer (wrapped or not): weights, zero weights, sparsity, channels kept/total.

    Zeros are counted in the kernel the layer computes with (masked; quantized for larq).

    Example:
        >>> model = wrap(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, name="fc")]))
        >>> model.get_layer("fc").set_mask([[1, 0], [0, 1]])
        >>> row = sparsity_table(model)[0]
        >>> row["name"], row["weights"], row["zeros"], row["sparsity"], row["channels_kept"]
        ('fc', 4, 2, 0.5, 2)
    """
    check_keras_model(model)
    rows = []
    for layer in model.layers:
        if isinstance(layer, MaskedLayer):
            inner, kernel, keep, sources = layer.layer, layer.effective_kernel(), layer.get_channel_mask(), layer.sources
        elif is_prunable(layer):
            inner, kernel, sources = layer, effective_kernel(layer), ()
            keep = np.ones(_output_channels(kernel.shape, isinstance(layer, tf.keras.layers.DepthwiseConv2D)), bool)
        else:
            continue
        zeros = int(kernel.size - np.count_nonzero(kernel))
        rows.append({"name": layer.name, "class": type(inner).__name__, "wrapped": isinstance(layer, MaskedLayer),
                     "sources": list(sources), "weights": int(kernel.size), "zeros": zeros,
                     "sparsity": zeros / kernel.size if kernel.size else 0.0,
                     "channels_kept": int(keep.sum()), "channels_total": int(keep.size)})
    return rows


def sparsity_summary(model: Any) -> str:
    """``sparsity_table`` as text, with a total line.

    Example:
        >>> model = wrap(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, name="fc")]))
        >>> print(sparsity_summary(model).splitlines()[-1])
        total                   4        0     0.0%
    """
    rows = sparsity_table(model)
    lines = [f"{'layer':<16}{'weights':>9}{'zeros':>9}{'sparsity':>9}{'channels':>10}  class"]
    for row in rows:
        channels = f"{row['channels_kept']}/{row['channels_total']}"
        lines.append(f"{row['name']:<16}{row['weights']:>9}{row['zeros']:>9}{row['sparsity']:>9.1%}"
                     f"{channels:>10}  {row['class']}")
    weights = sum(row["weights"] for row in rows)
    zeros = sum(row["zeros"] for row in rows)
    lines.append(f"{'total':<16}{weights:>9}{zeros:>9}{(zeros / weights if weights else 0.0):>9.1%}")
    return "\n".join(lines)


# --- helpers -------------------------------------------------------------------------------

def _fresh(layer: Any) -> Any:
    return layer.__class__.from_config(layer.get_config())


def _check_flat(model: Any) -> None:
    nested = [layer.name for layer in model.layers if isinstance(layer, tf.keras.Model)]
    if nested:
        raise TypeError(f"model {model.name!r} nests the model(s) {nested}; tfprune masks flat models: "
                        "rebuild it with the nested model's layers inline")


def _chosen_layers(model: Any, layers: LayerSelection) -> set[str]:
    maskable = [layer for layer in model.layers if is_prunable(layer) or isinstance(layer, MaskedLayer)]
    valid = [layer.name for layer in maskable]
    if layers is None:
        chosen = set(valid)
    elif callable(layers):
        chosen = {layer.name for layer in maskable if layers(layer)}
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not all(isinstance(name, str) for name in names):
            raise TypeError(f"layers must be None, a list of layer names or a predicate; got {layers!r}")
        known = {layer.name: layer for layer in model.layers}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"model {model.name!r} has no layer(s) {unknown}; layers that can be masked: {valid}")
        for name in names:
            if name not in valid:
                _check_maskable(known[name])
        chosen = set(names)
    if not chosen:
        raise ValueError(f"no layer of model {model.name!r} was chosen to mask; layers that can be masked: {valid}")
    return chosen


def _batchnorms_after(model: Any, producers: set[str]) -> dict[str, str]:
    """BatchNormalization name -> producer name, for each BN whose only input is a producer's output."""
    is_bn = {layer.name: isinstance(layer, (tf.keras.layers.BatchNormalization, ChannelGate))
             for layer in model.layers}
    if isinstance(model, tf.keras.Sequential):
        return {after.name: before.name for before, after in zip(model.layers, model.layers[1:])
                if is_bn[after.name] and before.name in producers}
    entries = {entry["name"]: entry for entry in model.get_config()["layers"]}
    gated = {}
    for name, entry in entries.items():
        nodes = keras_model.inbound_layer_names(entry)
        if not is_bn.get(name) or len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        producer = nodes[0][0]
        if producer in producers and len(keras_model.inbound_layer_names(entries[producer])) == 1:
            gated[name] = producer
    return gated


def _stripped_config(layer: MaskedLayer) -> dict[str, Any]:
    config = layer.layer.get_config()
    if _kernel_quantizer(layer.layer) is not None and not layer.get_mask().all():
        prefix = "depthwise" if isinstance(layer.layer, tf.keras.layers.DepthwiseConv2D) else "kernel"
        config[f"{prefix}_quantizer"] = None
        config[f"{prefix}_constraint"] = None
    return config


def _folded_weights(layer: MaskedLayer) -> list[np.ndarray]:
    inner = layer.layer
    kernel_mask = layer.get_mask()
    materialize = _kernel_quantizer(inner) is not None and not kernel_mask.all()
    kernel, bias = layer._kernel_variable(), getattr(inner, "bias", None)
    values = []
    for variable, value in zip(inner.weights, inner.get_weights()):
        if variable is kernel:
            value = layer.effective_kernel() if materialize else value
            value = np.where(kernel_mask, value, 0.0).astype(value.dtype)  # +0.0, not -0.0
        elif bias is not None and variable is bias:
            value = np.where(layer.get_channel_mask(), value, 0.0).astype(value.dtype)
        values.append(value)
    return values


def _gated_batchnorm_weights(gate: ChannelGate) -> list[np.ndarray]:
    bn = gate.layer
    pruned = ~gate._producer_layer.get_channel_mask()
    zeroed = [v for v in (getattr(bn, "gamma", None), getattr(bn, "beta", None), bn.moving_mean) if v is not None]
    values = []
    for variable, value in zip(bn.weights, bn.get_weights()):
        if any(variable is z for z in zeroed):
            value = np.where(pruned, 0.0, value).astype(value.dtype)
        values.append(value)
    return values


def effective_kernel(layer: Any) -> np.ndarray:
    """The kernel a layer computes with: masked for a ``MaskedLayer``, quantized for larq's layers.

    Example:
        >>> layer = tf.keras.layers.Dense(2, kernel_initializer="ones"); layer.build((None, 3))
        >>> effective_kernel(layer).sum()
        6.0
    """
    if isinstance(layer, MaskedLayer):
        return layer.effective_kernel()
    value = tf.convert_to_tensor(latent_variable(getattr(layer, kernel_attribute(layer))))
    quantizer = _kernel_quantizer(layer)
    return (quantizer(value) if quantizer is not None else value).numpy()


def has_masks(model: Any) -> bool:
    """Whether any layer of ``model`` is a ``MaskedLayer`` or a ``ChannelGate`` (see :func:`wrap`).

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        >>> has_masks(model), has_masks(wrap(model))
        (False, True)
    """
    return any(isinstance(layer, (MaskedLayer, ChannelGate)) for layer in model.layers)


def __getattr__(name: str) -> Any:
    # one release of the old name: which layers can be masked is keras_model.is_prunable
    if name == "is_maskable":
        import warnings

        warnings.warn("tfprune.core.masks.is_maskable is tfprune.keras_model.is_prunable", DeprecationWarning,
                      stacklevel=2)
        return is_prunable
    raise AttributeError(f"module 'tfprune.core.masks' has no attribute {name!r}")
