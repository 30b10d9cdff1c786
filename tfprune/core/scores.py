"""Importance scores shared by every pruning method, per weight and per output channel.

Every score function returns ``{layer name: score array of the kernel's shape}``
for every prunable layer (``Conv2D``, ``DepthwiseConv2D``, ``Dense`` and their
larq subclasses ``QuantConv2D``, ``QuantDepthwiseConv2D``, ``QuantDense``; a
layer inside a ``tf.keras.layers.Wrapper`` such as ``tfprune.core.masks.MaskedLayer``
is scored on its inner kernel under the wrapper's name). **Higher means more
important** for every function here, so a pruning method keeps the top scores.

Conventions shared by the data-driven scores (:func:`snip`, :func:`grasp`,
:func:`taylor`, :func:`arsp_survival`):

- ``data`` is an array ``(N, ...)`` with labels, i.e. ``(x, y)`` arrays (or an
  ``.npz`` with ``x`` and ``y``), split into ``batches`` equal batches; or a
  ``tf.data.Dataset`` / iterable of ``(x, y)`` batches, of which the first
  ``batches`` are read. Labels are class indices (one-hot labels are turned
  into indices).
- The gradient ``g = dL/dw`` is that of the mean loss over all samples read
  (each batch's gradient weighted by its size).
- The default loss is sparse categorical cross-entropy, from logits unless the
  model ends in a softmax (a ``Softmax`` layer or a softmax activation), then
  from probabilities. ``loss`` overrides it: a Keras loss name or a callable
  ``loss(y_true, y_pred)``; its result is averaged.
- The model runs with ``training=False`` by default: BatchNorm uses its moving
  statistics and Dropout is off, so a score is deterministic and computing it
  changes nothing in the model. This is the default of Tanaka et al.'s
  reference implementation of SNIP, GraSP and SynFlow (``train_mode=False``).
  GraSP's own code computes in train mode (BatchNorm on batch statistics); pass
  ``training=True`` for that: the moving statistics it updates are restored
  afterwards, but active Dropout layers then make the score random.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc")])
    >>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
    >>> {name: s.shape for name, s in taylor(model, (x, y)).items()}
    {'fc': (3, 2)}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.keras_model import (
    check_keras_model,
    inner_layer,
    labelled_samples,
    model_sample_shape,
    prunable_layers,
)

Scores = dict[str, np.ndarray]
REDUCTIONS = ("sum", "mean", "l2")


# --- data-free scores ------------------------------------------------------------------------


def magnitude(model: Any) -> Scores:
    """Weight magnitude ``|w|`` (Han et al., "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1, name="fc")])
        >>> model.get_layer("fc").set_weights([np.array([[-3.0], [0.5]]), np.zeros(1)])
        >>> magnitude(model)["fc"].ravel().tolist()
        [3.0, 0.5]
    """
    return {name: np.abs(kernel.numpy()) for name, kernel in keras_model.kernels(model).items()}


def synflow(model: Any, input_shape: tuple[int, ...] | None = None) -> Scores:
    """Single-shot SynFlow score ``|w * dR/dw|`` (Tanaka et al., "Pruning neural networks
    without any data by iteratively conserving synaptic flow", NeurIPS 2020).

    ``R`` is the sum of the model's outputs on an all-ones input after every
    weight is replaced by its absolute value, which for a linear network is
    ``R = 1^T (prod_l |W_l|) 1``. The model is linearised as in the authors'
    reference code (``Pruners/pruners.py``, ``linearize``): **every** float
    variable becomes ``|v|`` (kernels; biases, which Keras initialises to zero,
    so at initialisation they contribute nothing; BatchNorm gamma, beta and
    moving statistics) and the model runs in inference mode, so a freshly
    initialised BatchNorm (gamma 1, beta 0, mean 0, variance 1) is the identity
    up to ``1/sqrt(1 + epsilon)``. A final softmax is skipped (``R`` is summed
    over the logits: the sum of probabilities is constant). Data-free: only the
    input shape is used (``input_shape`` for a model whose input size is not
    fixed). This is one round; the paper's iterative SynFlow re-scores after
    masking, which is the caller's loop. Every weight is restored bit for bit
    afterwards.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1, name="fc")])
        >>> model.get_layer("fc").set_weights([np.array([[-3.0], [0.5]]), np.zeros(1)])
        >>> synflow(model)["fc"].ravel().tolist(), model.get_layer("fc").kernel.numpy().ravel().tolist()
        ([3.0, 0.5], [-3.0, 0.5])
    """
    import tensorflow as tf

    kernels = keras_model.kernels(model)
    _output_layer(model)  # refuses multi-output models before any weight is touched
    shape = _synflow_input_shape(model, input_shape)
    variables = [v for v in model.variables if v.dtype.is_floating]
    saved = [v.numpy() for v in variables]
    try:
        for variable in variables:
            variable.assign(tf.abs(variable))
        with tf.GradientTape() as tape:
            flow = tf.reduce_sum(_logits(model, tf.ones((1, *shape)), training=False))
        grads = tape.gradient(flow, list(kernels.values()))
        if not np.isfinite(float(flow)):
            raise ValueError(
                f"SynFlow's R overflowed float32 ({float(flow)}) for model {model.name!r}; the product of "
                "absolute weights is too large: score a shallower model or smaller initial weights"
            )
        return {
            name: np.abs(kernel.numpy() * _dense(grad, kernel))
            for (name, kernel), grad in zip(kernels.items(), grads)
        }
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def _synflow_input_shape(model: Any, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        return model_sample_shape(model)
    shape = tuple(input_shape)
    if not all(isinstance(dim, (int, np.integer)) and dim > 0 for dim in shape):
        raise ValueError(f"input_shape must be positive integers without the batch axis, got {input_shape!r}")
    declared = tuple(model.inputs[0].shape[1:])
    if len(declared) != len(shape) or any(d is not None and d != s for d, s in zip(declared, shape)):
        raise ValueError(f"input_shape {shape} does not fit model {model.name!r}'s input {declared}")
    return shape


# --- data-driven scores ----------------------------------------------------------------------


def snip(model: Any, data: Any, loss: Any = None, batches: int = 1, *, training: bool = False) -> Scores:
    """SNIP connection sensitivity ``|w * g| / sum(|w * g|)`` (Lee et al., "SNIP: Single-shot
    network pruning based on connection sensitivity", ICLR 2019).

    ``|w * g|`` is the magnitude of ``dL/dc`` for a multiplicative mask ``c = 1``
    on each weight. **Normalised** as in the paper (and the reference code):
    divided by its sum over all prunable weights of the model, so all scores
    sum to 1 (left at zero when every sensitivity is zero). The normalisation
    is global and does not change any ranking. Meant for a model at
    initialisation; data, loss and ``training`` as in the module docstring.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc")])
        >>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
        >>> round(float(snip(model, (x, y))["fc"].sum()), 4)
        1.0
    """
    raw = taylor(model, data, loss, batches, training=training)
    total = float(sum(score.sum(dtype=np.float64) for score in raw.values()))
    if total == 0.0:
        return raw
    return {name: (score / total).astype(np.float32) for name, score in raw.items()}


def taylor(model: Any, data: Any, loss: Any = None, batches: int = 1, *, training: bool = False) -> Scores:
    """First-order Taylor importance ``|w * g|`` (Molchanov et al., "Importance Estimation
    for Neural Network Pruning", CVPR 2019): the first-order estimate of the loss change
    when the weight is set to zero, meant for a trained model.

    Unnormalised (SNIP is the same quantity divided by its sum). Molchanov et
    al. square it and sum over a filter; :func:`channel_scores` with
    ``reduce="l2"`` gives the square root of that.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc")])
        >>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
        >>> bool((taylor(model, (x, y))["fc"] >= 0).all())
        True
    """
    kernels = keras_model.kernels(model)
    grads = mean_gradients(model, kernels, data, loss, batches, training)
    return {name: np.abs(kernel.numpy() * grads[name]).astype(np.float32) for name, kernel in kernels.items()}


def grasp(
    model: Any,
    data: Any,
    loss: Any = None,
    batches: int = 1,
    *,
    temperature: float = 200.0,
    training: bool = False,
) -> Scores:
    """GraSP importance ``w * (H g)`` (Wang et al., "Picking Winning Tickets Before Training
    by Preserving Gradient Flow", ICLR 2020).

    ``g`` is the loss gradient and ``H`` the Hessian of the loss with respect to
    the prunable kernels; ``H g`` comes from double backpropagation (nested
    ``tf.GradientTape``: the gradient of ``g_stopped . g`` with ``g_stopped`` the
    gradient held constant). The paper's score is ``S = -w * (H g)`` and GraSP
    **removes** the weights with the largest ``S`` (removing them reduces
    gradient flow the least); this function returns ``-S = w * (H g)`` so that,
    like every score here, higher means keep (Tanaka et al.'s reference code
    does the same). Signed and unnormalised (the reference divides by the
    absolute value of the sum, a positive constant). The logits are divided by
    ``temperature`` before the loss (the paper's code uses 200; for a softmax
    output the loss receives ``softmax(logits / temperature)``); ``temperature=1``
    uses the plain loss. Data, loss and ``training`` as in the module docstring.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)),
        ...     tf.keras.layers.Dense(4, "tanh", name="h"), tf.keras.layers.Dense(2, name="out")])
        >>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
        >>> grasp(model, (x, y))["h"].shape
        (3, 4)
    """
    import tensorflow as tf

    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    kernels = keras_model.kernels(model)
    variables = list(kernels.values())
    parts, objective = _batches_and_objective(model, data, loss, batches, temperature)
    with _restored_state(model, training):
        grads = _weighted_mean(parts, lambda x, y: _gradients(objective, variables, x, y, training))
        stopped = [tf.constant(g, dtype=v.dtype) for g, v in zip(grads, variables)]

        def hessian_gradient(x: np.ndarray, y: np.ndarray) -> list[Any]:
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    value = objective(x, y, training)
                first = [_dense(g, v) for g, v in zip(inner.gradient(value, variables), variables)]
                flow = tf.add_n([tf.reduce_sum(g * s) for g, s in zip(first, stopped)])
            return outer.gradient(flow, variables)

        products = _weighted_mean(parts, hessian_gradient)
    return {name: (kernel.numpy() * products[i]).astype(np.float32) for i, (name, kernel) in enumerate(kernels.items())}


def arsp_survival(
    model: Any,
    data: Any,
    loss: Any = None,
    eps: float = 1e-8,
    batches: int = 1,
    *,
    training: bool = False,
) -> Scores:
    """ARSP survival score ``(|w| / sum|w| in layer) * 1 / (|dL/dw| + eps)`` (seed 001,
    "Adaptive Reservoir Sampling Pruning", exactly as its sampling function is written).

    The seed writes ``1 / (dL/dw)``; the absolute value and ``eps`` make it a
    non-negative weight for reservoir sampling. The sum runs over the layer's
    kernel. Note the direction: a weight the loss is *insensitive* to scores
    *high*, the opposite of what the seed's prose argues; :func:`taylor` is the
    score that follows the prose (DESIGN section 6). Data, loss and ``training``
    as in the module docstring.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="fc")])
        >>> x, y = np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])
        >>> arsp_survival(model, (x, y))["fc"].shape
        (3, 2)
    """
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    kernels = keras_model.kernels(model)
    grads = mean_gradients(model, kernels, data, loss, batches, training)
    scores = {}
    for name, kernel in kernels.items():
        weights = np.abs(kernel.numpy().astype(np.float64))
        total = weights.sum()
        share = weights / total if total > 0 else weights
        scores[name] = (share / (np.abs(grads[name]) + eps)).astype(np.float32)
    return scores


# --- per channel -----------------------------------------------------------------------------


def channel_scores(weight_scores: Scores, model: Any, reduce: str = "sum") -> Scores:
    """Per-weight scores reduced over each output channel of each layer's kernel.

    ``reduce`` is ``"sum"``, ``"mean"`` or ``"l2"`` (square root of the sum of
    squares) over a channel's weights. The output channel is the kernel's last
    axis, except for ``DepthwiseConv2D``, whose output channel ``i * multiplier
    + m`` reads input channel ``i`` with multiplier ``m``. Returns
    ``{layer name: (channels,)}`` for the layers in ``weight_scores``.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(3, name="fc")])
        >>> channel_scores({"fc": np.array([[1.0, 2, 3], [4, 5, 6]])}, model)["fc"].tolist()
        [5.0, 7.0, 9.0]
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if not isinstance(weight_scores, dict):
        raise TypeError(f"weight_scores must be a dict of layer name -> array, got {type(weight_scores).__name__}")
    layers = prunable_layers(model)
    return {name: _reduce(_channel_matrix(name, score, layers), reduce) for name, score in weight_scores.items()}


def group_scores(
    weight_scores: Scores, model: Any, reduce: str = "sum", groups: list[Any] | None = None
) -> dict[int, np.ndarray]:
    """Per-weight scores reduced over every channel of each tied channel group.

    ``groups`` defaults to :func:`tfprune.core.graph.channel_groups` ``(model)`` (the
    prunable groups). Group channel ``k`` is scored on the kernel weights that
    removing it deletes from the layers that hold it: the output-channel slice
    ``offset + k`` of every producer (the convolutions and dense layers tied by
    ``Add``, ``Concatenate`` offsets, ...) and the slice of input channel
    ``offset + k`` of every ``DepthwiseConv2D`` carrier (all its multipliers),
    reduced together with ``reduce`` (``"sum"``, ``"mean"`` or ``"l2"``, as in
    :func:`channel_scores`). The input rows that consumers lose are not counted:
    a channel is scored on its own filters, as filter pruning does. Returns
    ``{group id: (group size,)}``; a group with no scored kernel (only
    BatchNorm or a layer the scores do not cover) is left out.

    Example:
        >>> import tensorflow as tf
        >>> inputs = tf.keras.Input((4, 4, 1))
        >>> a = tf.keras.layers.Conv2D(2, 1, name="a")(inputs)
        >>> b = tf.keras.layers.Conv2D(2, 1, name="b")(inputs)
        >>> x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Add()([a, b]))
        >>> model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="out")(x))
        >>> ones = {name: np.ones(k.shape) for name, k in keras_model.kernels(model).items()}
        >>> group_scores(ones, model)[0].tolist()
        [2.0, 2.0]
    """
    from tfprune.core.graph import channel_groups

    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if not isinstance(weight_scores, dict):
        raise TypeError(f"weight_scores must be a dict of layer name -> array, got {type(weight_scores).__name__}")
    layers = prunable_layers(model)
    matrices = {name: _channel_matrix(name, score, layers) for name, score in weight_scores.items()}
    result = {}
    for group in channel_groups(model) if groups is None else groups:
        members = [m for m in (*group.producers, *group.carriers) if m.layer in layers]
        blocks = [_member_rows(member, group, layers[member.layer], matrices) for member in members]
        if blocks:
            result[group.id] = _reduce(np.concatenate(blocks, axis=1), reduce)
    return result


def _member_rows(member: Any, group: Any, layer: Any, matrices: dict[str, np.ndarray]) -> np.ndarray:
    """The scores of the group's channels in ``member``'s kernel, as ``(group size, weights)``."""
    import tensorflow as tf

    if member.layer not in matrices:
        raise ValueError(f"weight_scores lacks layer {member.layer!r}, which holds channels of group {group.id}")
    matrix = matrices[member.layer]
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        # A carried channel is the depthwise input channel: its `multiplier` outputs go together.
        multiplier = int(keras_model.kernel(layer).shape[-1])
        matrix = matrix.reshape(-1, multiplier * matrix.shape[1])
    return matrix[member.offset : member.offset + group.size]


def _channel_matrix(name: str, score: Any, layers: dict[str, Any]) -> np.ndarray:
    """The scores as ``(channels, weights per channel)``."""
    import tensorflow as tf

    if name not in layers:
        raise ValueError(f"weight_scores names {name!r}, which is not a prunable layer of the model ({sorted(layers)})")
    layer = layers[name]
    kernel_shape = tuple(keras_model.kernel(layer).shape)
    score = np.asarray(score)
    if score.shape != kernel_shape:
        raise ValueError(f"scores for {name!r} have shape {score.shape} but its kernel is {kernel_shape}")
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        # (h, w, in, multiplier) flattened in C order puts channel i*multiplier + m last.
        return score.reshape(-1, kernel_shape[-2] * kernel_shape[-1]).T
    return score.reshape(-1, kernel_shape[-1]).T


def _reduce(matrix: np.ndarray, reduce: str) -> np.ndarray:
    if reduce == "sum":
        return matrix.sum(axis=1)
    if reduce == "mean":
        return matrix.mean(axis=1)
    return np.sqrt(np.square(matrix).sum(axis=1))


# --- shared machinery ------------------------------------------------------------------------


def _dense(grad: Any, variable: Any) -> Any:
    """A gradient as a dense tensor; zeros where the weight does not reach the output."""
    import tensorflow as tf

    if grad is None:
        return tf.zeros_like(variable)
    return tf.convert_to_tensor(grad)


def mean_gradients(
    model: Any, kernels: dict[str, Any], data: Any, loss: Any = None, batches: int = 1, training: bool = False
) -> dict[str, np.ndarray]:
    """The loss gradient of each kernel, averaged over ``batches`` batches of labelled ``data``.

    ``kernels`` maps names to variables (for example a subset of
    :func:`tfprune.keras_model.kernels`); ``loss`` defaults to the model's
    cross-entropy. Batch-norm statistics and dropout follow ``training``.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="d")])
        >>> data = (np.ones((4, 3), "float32"), np.array([0, 1, 0, 1]))
        >>> mean_gradients(model, keras_model.kernels(model), data)["d"].shape
        (3, 2)
    """
    variables = list(kernels.values())
    parts, objective = _batches_and_objective(model, data, loss, batches, temperature=1.0)
    with _restored_state(model, training):
        grads = _weighted_mean(parts, lambda x, y: _gradients(objective, variables, x, y, training))
    return dict(zip(kernels, grads))


def _gradients(objective: Callable, variables: list[Any], x: np.ndarray, y: np.ndarray, training: bool) -> list[Any]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = objective(x, y, training)
    return [_dense(g, v) for g, v in zip(tape.gradient(value, variables), variables)]


def _weighted_mean(parts: list[tuple[np.ndarray, np.ndarray]], per_batch: Callable) -> list[np.ndarray]:
    """The mean over batches of ``per_batch(x, y)`` weighted by batch size, in float64."""
    total = sum(len(x) for x, _ in parts)
    mean: list[np.ndarray] | None = None
    for x, y in parts:
        values = [np.asarray(v, np.float64) * (len(x) / total) for v in per_batch(x, y)]
        mean = values if mean is None else [m + v for m, v in zip(mean, values)]
    return mean


def _batches_and_objective(
    model: Any, data: Any, loss: Any, batches: int, temperature: float
) -> tuple[list[tuple[np.ndarray, np.ndarray]], Callable]:
    """Validated labelled batches and ``objective(x, y, training)``, the mean loss."""
    import tensorflow as tf

    parts = _labelled_batches(model, data, batches)
    _output_layer(model)  # refuses multi-output models before any gradient is taken
    loss_fn = _loss_function(model, loss, parts)
    probabilities = ends_in_softmax(model)

    def objective(x: np.ndarray, y: np.ndarray, training: bool) -> Any:
        if temperature == 1.0:
            outputs = model(x, training=training)
        else:
            outputs = _logits(model, x, training) / temperature
            outputs = tf.nn.softmax(outputs) if probabilities else outputs
        return tf.reduce_mean(loss_fn(y, outputs))

    return parts, objective


def _labelled_batches(model: Any, data: Any, batches: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """The data a score reads, as ``[(x, y), ...]`` float32 samples with class-index labels.

    Arrays (``(x, y)``, or an ``.npz`` with ``x`` and ``y``) are split into
    ``batches`` equal batches; from a ``tf.data.Dataset`` or other iterable of
    ``(x, y)`` batches the first ``batches`` are read. Parsing is
    :func:`tfprune.keras_model.labelled_samples`'s.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        >>> [x.shape for x, _ in _labelled_batches(model, (np.ones((5, 3)), np.zeros(5)), batches=2)]
        [(3, 3), (2, 3)]
    """
    check_keras_model(model)
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
        raise ValueError(f"batches must be a positive integer, got {batches!r}")
    shape = model_sample_shape(model)
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        data = (np.asarray(data[0]), np.asarray(data[1]))
    if isinstance(data, (np.ndarray, str, os.PathLike, tuple)):
        x, y = labelled_samples(data, shape)
        _require_labels(y)
        if batches > len(x):
            raise ValueError(f"batches={batches} but the data holds {len(x)} samples; give at most one batch per sample")
        return list(zip(np.array_split(x, batches), np.array_split(y, batches)))
    if not hasattr(data, "__iter__"):
        raise TypeError(f"data must be (x, y) arrays, an .npz path or a tf.data.Dataset of (x, y), got {type(data).__name__}")
    parts = []
    for element in islice(iter(data), batches):
        x, y = labelled_samples([element], shape)
        _require_labels(y)
        parts.append((x, y))
    if not parts:
        raise ValueError("the data is empty; give at least one (x, y) batch")
    return parts


def _require_labels(labels: np.ndarray | None) -> None:
    if labels is None:
        raise ValueError("this score needs labels: give data as (x, y) arrays or a tf.data.Dataset of (x, y) batches")


def _loss_function(model: Any, loss: Any, parts: list[tuple[np.ndarray, np.ndarray]]) -> Callable:
    import tensorflow as tf

    if loss is not None:
        if not (isinstance(loss, str) or callable(loss)):
            raise TypeError(f"loss must be a Keras loss name or a callable loss(y_true, y_pred), got {type(loss).__name__}")
        try:
            return tf.keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(f"unknown loss {loss!r}: give a Keras loss name or a callable loss(y_true, y_pred)") from error
    classes = int(model.outputs[0].shape[-1])
    for _, y in parts:
        if y.dtype.kind not in "iub" and not np.array_equal(y, np.round(y)):
            raise ValueError("the labels are not class indices; give integer labels or one-hot rows (or pass a loss)")
        if y.min() < 0 or y.max() >= classes:
            raise ValueError(f"labels range over {int(y.min())}..{int(y.max())} but the model has {classes} classes")
    from_logits = not ends_in_softmax(model)
    return lambda y_true, y_pred: tf.keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits)


def _output_layer(model: Any) -> Any:
    if len(model.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs; scores need a single-output model")
    return keras_model.tensor_origin(model.outputs[0])[0]


def ends_in_softmax(model: Any) -> bool:
    """Whether the model's output is a softmax (a Softmax layer or a softmax activation).

    Losses then take probabilities, not logits (MLPerf's reference models end in one).

    Example:
        >>> import tensorflow as tf
        >>> ends_in_softmax(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2, "softmax")]))
        True
    """
    import tensorflow as tf

    layer = inner_layer(_output_layer(model))
    if isinstance(layer, tf.keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    # tfmot's quantization-aware training wraps it (QuantizeAwareActivation, tfmot 0.8) and keeps it as .activation
    activation = getattr(activation, "activation", activation)
    return activation is not None and getattr(activation, "__name__", "") == "softmax"


def _logits(model: Any, x: Any, training: bool) -> Any:
    """The model's output before a final softmax (the output itself when there is none)."""
    import tensorflow as tf

    if not ends_in_softmax(model):
        return model(x, training=training)
    output_layer = _output_layer(model)
    layer = inner_layer(output_layer)
    if isinstance(layer, tf.keras.layers.Softmax):
        return tf.keras.Model(model.inputs, output_layer.input)(x, training=training)
    # The layer reads its activation at call time: swap it for this one eager call.
    activation = layer.activation
    layer.activation = tf.keras.activations.linear
    try:
        return model(x, training=training)
    finally:
        layer.activation = activation


@contextmanager
def _restored_state(model: Any, training: bool) -> Iterator[None]:
    """Restore the non-trainable variables (BatchNorm moving statistics) a train-mode pass updates."""
    if not isinstance(training, bool):
        raise TypeError(f"training must be True or False, got {training!r}")
    variables = list(model.non_trainable_variables) if training else []
    saved = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
