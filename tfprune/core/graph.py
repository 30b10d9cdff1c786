"""Channel dependency graph: which output channels of a Keras model must be removed together.

Removing output channel ``c`` of a convolution is only possible when every
tensor that carries that channel loses it at the same time: an ``Add`` makes
the channels of its inputs one channel, a ``Concatenate`` places its inputs'
channels side by side, a ``DepthwiseConv2D`` carries its input's channels
through, a ``Flatten`` spreads each channel over the spatial positions that
the following ``Dense`` reads. This module follows every channel of a
Sequential or functional tf.keras model through its layers and returns the
tied channels as :class:`ChannelGroup` s, which is what scores aggregate over
and what :mod:`tfprune.core.surgery` cuts.

Channels of the model's input and of its outputs (the classes) are never
prunable. A layer the analysis does not understand stops it with an error
naming the layer and its class (:data:`SUPPORTED_LAYERS` lists what it
understands). Layers wrapped in a ``tf.keras.layers.Wrapper`` (such as
tfprune's ``MaskedLayer``) count as the layer they wrap.

Example:
    >>> import tensorflow as tf
    >>> inputs = tf.keras.Input((8, 8, 3))
    >>> a = tf.keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    >>> b = tf.keras.layers.Conv2D(4, 1, name="b")(inputs)
    >>> x = tf.keras.layers.Add(name="add")([a, b])
    >>> x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    >>> model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="logits")(x))
    >>> [(g.size, [p.layer for p in g.producers]) for g in channel_groups(model)]
    [(4, ['a', 'b'])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfprune import keras_model
from tfprune.keras_model import check_keras_model, inner_layer

#: What the analysis understands, by role (the names are tf.keras and larq class names).
SUPPORTED_LAYERS: dict[str, tuple[str, ...]] = {
    "producers (make new channels)": (
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Dense",
        "larq QuantConv1D", "larq QuantConv2D", "larq QuantConv3D", "larq QuantConv2DTranspose",
        "larq QuantDense",
    ),
    "carry their input's channels (with per-channel weights)": (
        "DepthwiseConv1D", "DepthwiseConv2D", "larq QuantDepthwiseConv2D",
        "BatchNormalization (channel axis last)", "PReLU",
    ),
    "pass channels through": (
        "Activation (not softmax)", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU",
        "MaxPooling1D/2D/3D", "AveragePooling1D/2D/3D", "GlobalAveragePooling1D/2D/3D",
        "GlobalMaxPooling1D/2D/3D", "Dropout", "SpatialDropout1D/2D/3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ZeroPadding1D/2D/3D", "Cropping1D/2D/3D",
        "UpSampling1D/2D/3D", "Rescaling", "Normalization", "Identity", "ActivityRegularization",
        "Reshape (channel axis kept, or flattening)",
    ),
    "tie their inputs channel by channel": (
        "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average",
        "Concatenate (on a non-channel axis)",
    ),
    "place inputs at channel offsets": ("Concatenate (on the channel axis)",),
    "expand channels into positions": ("Flatten", "Reshape to one axis"),
    "mix channels (their input channels are not prunable)": ("Softmax", "Activation('softmax')",
                                                              "LayerNormalization"),
}


@dataclass(frozen=True)
class Member:
    """A layer holding a group's channels: group channel ``k`` is the layer's channel ``offset + k``.

    For producers the channel is an output channel; for carriers (BatchNorm,
    DepthwiseConv2D, PReLU) it is an input channel (DepthwiseConv2D with
    ``depth_multiplier`` m turns input channel c into outputs ``c*m ... c*m+m-1``).

    Example:
        >>> Member("conv1", 8)
        Member(layer='conv1', offset=8)
    """

    layer: str
    offset: int


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a group through its kernel's input axis.

    ``rows[k]`` are the kernel's input indices that read group channel ``k``:
    one index for a convolution, ``H*W`` indices for a ``Dense`` behind a
    ``Flatten`` of an ``H x W`` feature map (row ``(y*W + x)*C + c``).

    Example:
        >>> Consumer("dense", ((0, 2), (1, 3))).rows[1]
        (1, 3)
    """

    layer: str
    rows: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ChannelGroup:
    """Channels of several layers that exist or vanish together.

    ``size`` channels; removing group channel ``k`` removes channel
    ``p.offset + k`` of every producer ``p``, the matching input channel of
    every carrier and the kernel rows ``c.rows[k]`` of every consumer.
    ``prunable`` is False for channels tied to the model's input or outputs,
    with the reason in ``reason``.

    Example:
        >>> g = ChannelGroup(0, 2, (Member("conv", 0),), (), (Consumer("dense", ((0,), (1,))),))
        >>> g.channels("conv")
        [0, 1]
    """

    id: int
    size: int
    producers: tuple[Member, ...]
    carriers: tuple[Member, ...]
    consumers: tuple[Consumer, ...]
    prunable: bool = True
    reason: str = ""

    def channels(self, layer: str) -> list[int]:
        """The output channels of producer ``layer`` that this group holds (empty if none).

        Example:
            >>> ChannelGroup(0, 3, (Member("c", 5),), (), ()).channels("c")
            [5, 6, 7]
        """
        return [m.offset + k for m in self.producers if m.layer == layer for k in range(self.size)]


def channel_groups(model: Any, prunable_only: bool = True) -> list[ChannelGroup]:
    """The tied channel groups of a Sequential or functional tf.keras model.

    Groups come in the order of their first producer in the model, then by
    channel. With ``prunable_only=False`` the groups tied to the model's input
    or outputs are listed too (``prunable=False``).

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((6, 6, 1)),
        ...     tf.keras.layers.Conv2D(3, 3, name="conv"), tf.keras.layers.Flatten(),
        ...     tf.keras.layers.Dense(2, name="logits")])
        >>> [group] = channel_groups(model)
        >>> group.size, group.consumers[0].rows[0][:3]
        (3, (0, 3, 6))
    """
    groups = analyze(model).groups()
    return [g for g in groups if g.prunable or not prunable_only]


def group_of(model: Any, layer_name: str) -> list[ChannelGroup]:
    """The groups holding the output channels of producer ``layer_name``, in channel order.

    A producer's channels can lie in several groups (a ``Concatenate`` followed
    by an ``Add`` splits them); their ``channels(layer_name)`` together cover
    every output channel of the layer once.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((4,)),
        ...     tf.keras.layers.Dense(3, name="hidden"), tf.keras.layers.Dense(2, name="out")])
        >>> [g.channels("hidden") for g in group_of(model, "hidden")]
        [[0, 1, 2]]
    """
    analysis = analyze(model)
    if layer_name not in analysis.layers:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; its layers: {_names(analysis)}")
    if analysis.kinds[layer_name] != "producer":
        raise ValueError(f"layer {layer_name!r} ({analysis.classes[layer_name]}) makes no channels of its own; "
                         "name a convolution or dense layer")
    found = [g for g in analysis.groups() if g.channels(layer_name)]
    return sorted(found, key=lambda g: g.channels(layer_name)[0])


# ---------------------------------------------------------------------------------------------
# The analysis: every tensor's channel axis as an array of channel ids, tied in a union-find.


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def new(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.find(int(i)) for i in ids], dtype=np.int64)


TensorKey = tuple[str, int, int]


@dataclass
class Analysis:
    """The channel flow of one model; built by :func:`analyze`, read by :mod:`tfprune.core.surgery`.

    ``ids[tensor]`` holds one channel id per entry of the tensor's last axis;
    channels with the same root (``roots(ids)``) are one channel.
    ``inputs[layer]``/``outputs[layer]`` name the tensors a layer reads and writes.

    Example:
        >>> import tensorflow as tf
        >>> a = analyze(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="d")]))
        >>> a.kinds["d"], a.fixed_reason(a.ids[a.outputs["d"][0]][0]) != ""
        ('producer', True)
    """

    model_name: str
    layers: dict[str, Any] = field(default_factory=dict)      # name -> inner (unwrapped) layer
    classes: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    inputs: dict[str, list[TensorKey]] = field(default_factory=dict)
    outputs: dict[str, list[TensorKey]] = field(default_factory=dict)
    ids: dict[TensorKey, np.ndarray] = field(default_factory=dict)
    shapes: dict[TensorKey, tuple] = field(default_factory=dict)
    uf: _UnionFind = field(default_factory=_UnionFind)
    fixed: dict[int, str] = field(default_factory=dict)       # channel id -> why it cannot go

    def roots(self, tensor: TensorKey) -> np.ndarray:
        """The root channel of every entry of ``tensor``'s channel axis."""
        return self.uf.roots(self.ids[tensor])

    def fixed_reason(self, channel_id: int) -> str:
        """Why the channel (any id of it) cannot be removed, or ``""`` when it can."""
        root = self.uf.find(int(channel_id))
        return next((why for cid, why in self.fixed.items() if self.uf.find(cid) == root), "")

    def fixed_roots(self) -> dict[int, str]:
        """Root -> reason, for every channel that cannot be removed."""
        out: dict[int, str] = {}
        for cid, why in self.fixed.items():
            out.setdefault(self.uf.find(cid), why)
        return out

    def groups(self) -> list[ChannelGroup]:
        """Every channel group, prunable or not (see :func:`channel_groups`)."""
        return _build_groups(self)


def analyze(model: Any) -> Analysis:
    """Follow every channel of ``model`` through its layers; raise on a layer it does not understand.

    Example:
        >>> import tensorflow as tf
        >>> analyze(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="d")])).order
        ['d']
    """
    check_keras_model(model)
    analysis = Analysis(model.name)
    for node in _nodes_in_order(model):
        _visit(analysis, model, node)
    for tensor in model.outputs:
        key = _key(tensor)
        for cid in analysis.ids[key]:
            analysis.fixed.setdefault(int(cid), f"it is an output of model {model.name!r}")
    return analysis


def _nodes_in_order(model: Any) -> list[Any]:
    nodes = keras_model.nodes_in_order(model)
    seen: dict[str, int] = {}
    for node in nodes:
        seen[node.layer.name] = seen.get(node.layer.name, 0) + 1
        if seen[node.layer.name] > 1:
            raise ValueError(f"layer {node.layer.name!r} ({type(node.layer).__name__}) is called more than once "
                             "in the model; shared layers are not supported by the channel graph")
    return nodes


def _key(tensor: Any) -> TensorKey:
    layer, node_index, tensor_index = keras_model.tensor_origin(tensor)
    return (layer.name, node_index, tensor_index)


def _visit(analysis: Analysis, model: Any, node: Any) -> None:
    import tensorflow as tf

    outer = node.layer
    name = outer.name
    layer = inner_layer(outer)
    in_keys = [_key(t) for t in tf.nest.flatten(node.keras_inputs)]
    out_tensors = tf.nest.flatten(node.outputs)
    out_keys = [_key(t) for t in out_tensors]
    if isinstance(outer, tf.keras.layers.InputLayer):
        ids = analysis.uf.new(int(out_tensors[0].shape[-1] or 0))
        for cid in ids:
            analysis.fixed[int(cid)] = f"it is an input channel of model {model.name!r}"
        analysis.ids[out_keys[0]] = ids
        analysis.shapes[out_keys[0]] = tuple(out_tensors[0].shape)
        return
    if len(out_keys) != 1:
        raise ValueError(_unsupported(name, layer, "it has several outputs"))
    kind, ids = _channels_out(analysis, name, layer, in_keys, tuple(out_tensors[0].shape))
    analysis.layers[name] = layer
    analysis.classes[name] = type(layer).__name__
    analysis.kinds[name] = kind
    analysis.order.append(name)
    analysis.inputs[name] = in_keys
    analysis.outputs[name] = out_keys
    analysis.ids[out_keys[0]] = ids
    analysis.shapes[out_keys[0]] = tuple(out_tensors[0].shape)


def _channels_out(analysis: Analysis, name: str, layer: Any, in_keys: list[TensorKey],
                  out_shape: tuple) -> tuple[str, np.ndarray]:
    """The layer's role and the channel ids of its output."""
    import tensorflow as tf

    L = tf.keras.layers
    ins = [analysis.ids[k] for k in in_keys]
    in_shapes = [analysis.shapes[k] for k in in_keys]
    if isinstance(layer, _merge_classes()):
        return "merge", _merge(analysis, name, layer, ins, in_shapes)
    if len(ins) != 1:
        raise ValueError(_unsupported(name, layer, f"it reads {len(ins)} tensors"))
    ids, in_shape = ins[0], in_shapes[0]
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        raise ValueError(_unsupported(name, layer, "separable convolutions are not supported; "
                                      "build them as DepthwiseConv2D + 1x1 Conv2D"))
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        _check_channels_last(name, layer)
        return "carrier", np.repeat(ids, int(layer.depth_multiplier))
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense)):
        return "producer", _producer(analysis, name, layer, ids, out_shape)
    if isinstance(layer, L.BatchNormalization):
        axis = [a % len(in_shape) for a in np.atleast_1d(layer.axis)]
        if axis != [len(in_shape) - 1]:
            raise ValueError(_unsupported(name, layer, f"it normalizes axis {layer.axis}, not the channel axis"))
        return "carrier", ids
    if isinstance(layer, L.PReLU):
        return "carrier", ids
    if _mixes_channels(layer):
        for cid in ids:
            analysis.fixed.setdefault(int(cid), f"layer {name!r} ({type(layer).__name__}) mixes its input channels")
        return "mixing", ids
    if isinstance(layer, _passthrough_classes()):
        return "passthrough", ids
    if isinstance(layer, L.Flatten):
        return "flatten", _spread(ids, in_shape)
    if isinstance(layer, L.Reshape):
        return _reshape(name, layer, ids, in_shape, out_shape)
    raise ValueError(_unsupported(name, layer, "the channel graph does not know how it moves channels"))


def _producer(analysis: Analysis, name: str, layer: Any, ids: np.ndarray, out_shape: tuple) -> np.ndarray:
    import tensorflow as tf

    if isinstance(layer, (tf.keras.layers.Conv1D, tf.keras.layers.Conv2D, tf.keras.layers.Conv3D)):
        _check_channels_last(name, layer)
        if int(getattr(layer, "groups", 1)) != 1:
            raise ValueError(_unsupported(name, layer, f"grouped convolutions (groups={layer.groups}) are not supported"))
    return analysis.uf.new(int(out_shape[-1]))


def _merge(analysis: Analysis, name: str, layer: Any, ins: list[np.ndarray], in_shapes: list[tuple]) -> np.ndarray:
    import tensorflow as tf

    if isinstance(layer, tf.keras.layers.Concatenate):
        rank = len(in_shapes[0])
        if layer.axis % rank == rank - 1:
            return np.concatenate(ins)
    sizes = {len(i) for i in ins}
    if len(sizes) != 1:
        raise ValueError(_unsupported(name, layer, f"its inputs have different channel counts {sorted(sizes)}"))
    for other in ins[1:]:
        for a, b in zip(ins[0], other):
            analysis.uf.union(int(a), int(b))
    return ins[0]


def _spread(ids: np.ndarray, in_shape: tuple) -> np.ndarray:
    """NHWC flattening: entry ``p*C + c`` of the flat vector is channel ``c`` at position ``p``."""
    positions = int(np.prod([int(d) for d in in_shape[1:-1]])) if len(in_shape) > 2 else 1
    return np.tile(ids, positions)


def _reshape(name: str, layer: Any, ids: np.ndarray, in_shape: tuple, out_shape: tuple) -> tuple[str, np.ndarray]:
    if int(out_shape[-1]) == len(ids):
        return "reshape", ids
    if len(out_shape) == 2:
        return "reshape", _spread(ids, in_shape)
    raise ValueError(_unsupported(name, layer, f"it reshapes {in_shape[1:]} to {out_shape[1:]}, "
                                  "moving the channel axis"))


def _check_channels_last(name: str, layer: Any) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(_unsupported(name, layer, "only data_format='channels_last' is supported"))


def _mixes_channels(layer: Any) -> bool:
    import tensorflow as tf

    L = tf.keras.layers
    if isinstance(layer, (L.Softmax, L.LayerNormalization, L.UnitNormalization)):
        return True
    activation = getattr(layer, "activation", None)
    return isinstance(layer, L.Activation) and getattr(activation, "__name__", "") in ("softmax", "log_softmax")


def _merge_classes() -> tuple[type, ...]:
    import tensorflow as tf

    L = tf.keras.layers
    return (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum, L.Average, L.Concatenate)


def _passthrough_classes() -> tuple[type, ...]:
    import tensorflow as tf

    L = tf.keras.layers
    return (
        L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.ThresholdedReLU,
        L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
        L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
        L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
        L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise,
        L.GaussianDropout, L.AlphaDropout, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
        L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
        L.Rescaling, L.Normalization, L.Identity, L.ActivityRegularization,
    )


def _unsupported(name: str, layer: Any, why: str) -> str:
    return f"layer {name!r} ({type(layer).__name__}): {why}"


def _names(analysis: Analysis, limit: int = 12) -> str:
    names = analysis.order[:limit]
    return ", ".join(names) + (", ..." if len(analysis.order) > limit else "")


# ---------------------------------------------------------------------------------------------
# From tied channels to groups


def _build_groups(analysis: Analysis) -> list[ChannelGroup]:
    members: dict[int, list[tuple[str, str, int]]] = {}      # root -> (role, layer, channel)
    for name in analysis.order:
        kind = analysis.kinds[name]
        if kind == "producer":
            roots = analysis.roots(analysis.outputs[name][0])
            for channel, root in enumerate(roots):
                members.setdefault(int(root), []).append(("producer", name, channel))
        elif kind == "carrier":
            roots = analysis.roots(analysis.inputs[name][0])
            for channel, root in enumerate(roots):
                members.setdefault(int(root), []).append(("carrier", name, channel))
    reads = _consumer_reads(analysis)
    fixed = analysis.fixed_roots()
    runs = _runs(members)
    groups = []
    for gid, roots in enumerate(runs):
        first = members[roots[0]]
        producers = tuple(Member(layer, ch) for role, layer, ch in first if role == "producer")
        carriers = tuple(Member(layer, ch) for role, layer, ch in first if role == "carrier")
        consumers = tuple(Consumer(layer, tuple(tuple(reads[r].get(layer, ())) for r in roots))
                          for layer in _ordered({l for r in roots for l in reads.get(r, {})}, analysis.order))
        why = next((fixed[r] for r in roots if r in fixed), "")
        groups.append(ChannelGroup(gid, len(roots), producers, carriers, consumers, not why, why))
    return groups


def _consumer_reads(analysis: Analysis) -> dict[int, dict[str, list[int]]]:
    reads: dict[int, dict[str, list[int]]] = {}
    for name in analysis.order:
        if analysis.kinds[name] != "producer":
            continue
        for row, root in enumerate(analysis.roots(analysis.inputs[name][0])):
            reads.setdefault(int(root), {}).setdefault(name, []).append(row)
    return reads


def _runs(members: dict[int, list[tuple[str, str, int]]]) -> list[list[int]]:
    """Roots whose members are the same layers at consecutive channels form one group."""
    by_pattern: dict[tuple, list[tuple[int, int]]] = {}
    for root, items in members.items():
        base = items[0][2]
        pattern = tuple((role, layer, ch - base) for role, layer, ch in items)
        by_pattern.setdefault(pattern, []).append((base, root))
    runs: list[list[int]] = []
    for pattern, entries in by_pattern.items():
        entries.sort()
        run = [entries[0][1]]
        for (prev, _), (base, root) in zip(entries, entries[1:]):
            if base == prev + 1:
                run.append(root)
            else:
                runs.append(run)
                run = [root]
        runs.append(run)
    return sorted(runs, key=lambda run: run[0])  # roots are numbered in model order


def _ordered(names: set[str], order: list[str]) -> list[str]:
    return [n for n in order if n in names]
