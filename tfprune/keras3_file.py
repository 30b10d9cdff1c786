"""Keras 3 ``.keras`` files read as Keras 2 (tf-keras) models: the config translated, the weights copied.

Keras 3 and Keras 2 write the same zip (``config.json``, ``model.weights.h5``,
``metadata.json``) with different contents, so tf-keras cannot load a Keras 3 file
(``Unrecognized keyword arguments: ['batch_shape']``). A user on TensorFlow 2.16+ who
trained with Keras 3 still has the weights tfprune needs. This module rewrites what
differs, for Sequential and functional models whose layers Keras 2 also has under the
same class name (the layers tfprune prunes and those around them):

* a layer's ``dtype`` policy object becomes its name, ``InputLayer``'s ``batch_shape``
  becomes ``batch_input_shape``, and arguments Keras 2's layer does not take are dropped
  (arguments about training such as LoRA; an unknown initializer falls back to the default);
* Keras 3's call records (``{"args": [keras tensors], "kwargs": ...}``) become Keras 2's
  ``[[layer, node, tensor, {}], ...]``;
* weights come from ``model.weights.h5``, where Keras 3 files each layer under its class
  name in snake case, numbered per class in model order (``conv2d``, ``conv2d_1``), not
  under the layer's name.

Anything else (a layer class Keras 2 does not have, a nested model, a weight count or
shape that differs) raises ``ValueError`` with one line. It imports no other tfprune
module.

Example:
    >>> import tensorflow as tf
    >>> from pathlib import Path
    >>> path = Path(__file__).parents[1] / "tests" / "data" / "keras3_functional.keras"
    >>> keras_3_version(path)
    '3.15.1'
    >>> model = load_keras_3(path)
    >>> isinstance(model, tf.keras.Model), [layer.name for layer in model.layers][-1]
    (True, 'logits')
"""

from __future__ import annotations

import inspect
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

#: Arguments every Keras 2 layer takes through ``**kwargs`` (base Layer and InputLayer's shapes).
BASE_LAYER_ARGUMENTS = {"name", "trainable", "dtype", "batch_input_shape", "batch_size", "input_shape", "input_dim"}


def keras_file_version(path: str | Path) -> str | None:
    """The Keras version a ``.keras`` file records (``""`` when it records none); None for anything
    that is not a ``.keras`` zip (no ``metadata.json``).

    Example:
        >>> keras_file_version("missing.keras") is None
        True
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if "metadata.json" not in archive.namelist():
            return None
        return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))


def keras_3_version(path: str | Path) -> str | None:
    """The Keras version a ``.keras`` file was written by, when it is 3.x; None otherwise.

    Example:
        >>> keras_3_version("missing.keras") is None
        True
    """
    version = keras_file_version(path)
    return version if version and version.startswith("3") else None


def load_keras_3(path: str | Path) -> Any:
    """A Keras 2 model (``tf.keras``, uncompiled) with the architecture and weights of a Keras 3 ``.keras`` file.

    Raises ``ValueError`` with one line when the file holds something Keras 2 cannot
    express (see the module docstring).
    """
    import tensorflow as tf

    path = Path(path)
    version = keras_3_version(path)
    with zipfile.ZipFile(path) as archive:
        missing = [name for name in ("config.json", "model.weights.h5") if name not in archive.namelist()]
        if missing:
            raise ValueError(f"{path}: saved by Keras {version} but has no {' or '.join(missing)}; "
                             "it is not a whole .keras model")
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        raise ValueError(f"{path}: a Keras 3 {kind} model; tfprune reads Keras 3 Sequential and functional models only")
    if kind == "Sequential":
        build, translated = tf.keras.Sequential.from_config, _sequential_config(config["config"], path)
    else:
        build, translated = tf.keras.Model.from_config, _functional_config(config["config"], path)
    try:
        model = build(translated)
    except Exception as error:  # Keras 2's deserializer raises many kinds, each pages long
        text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: its Keras 3 model could not be rebuilt in Keras 2 ({text})") from error
    _copy_weights(model, weights, path)
    return model


# --- the config --------------------------------------------------------------------------------


def _sequential_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    return {"name": config.get("name", "sequential"),
            "layers": [_layer_entry(entry, path, functional=False) for entry in config["layers"]]}


def _functional_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    return {"name": config.get("name", "model"),
            "layers": [_layer_entry(entry, path, functional=True) for entry in config["layers"]],
            "input_layers": _endpoints(config["input_layers"]),
            "output_layers": _endpoints(config["output_layers"])}


def _endpoints(endpoints: list[Any]) -> list[list[Any]]:
    # Keras 3 writes one endpoint as ["name", 0, 0], several as [["a", 0, 0], ...].
    if endpoints and isinstance(endpoints[0], str):
        endpoints = [endpoints]
    return [list(endpoint) for endpoint in endpoints]


def _layer_entry(entry: dict[str, Any], path: Path, functional: bool) -> dict[str, Any]:
    import tensorflow as tf

    name, class_name = entry.get("config", {}).get("name"), entry.get("class_name")
    if class_name in ("Sequential", "Functional", "Model"):
        raise ValueError(f"{path}: layer {name!r} is a nested model; tfprune reads flat Keras 3 models only")
    cls = getattr(tf.keras.layers, class_name, None)
    if cls is None:
        raise ValueError(f"{path}: layer {name!r} is a Keras 3 {class_name}, which Keras 2 does not have; "
                         "rebuild the model with tf.keras layers")
    translated = {"class_name": class_name, "config": _layer_config(cls, entry["config"])}
    if functional:
        translated["name"] = name
        translated["inbound_nodes"] = [_call_record(node) for node in entry.get("inbound_nodes", [])]
    return translated


def _layer_config(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    config = dict(config)
    if "batch_shape" in config:
        config["batch_input_shape"] = config.pop("batch_shape")
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
    accepted = _arguments(cls) | BASE_LAYER_ARGUMENTS
    translated = {}
    for key, value in config.items():
        if key not in accepted:
            continue
        if isinstance(value, dict) and "class_name" in value:
            value = _object_config(key, value)
            if value is None:
                continue
        translated[key] = value
    return translated


def _object_config(key: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """An initializer, regularizer or constraint in Keras 2's form; None to keep Keras 2's default."""
    import tensorflow as tf

    module = {"initializer": tf.keras.initializers, "regularizer": tf.keras.regularizers,
              "constraint": tf.keras.constraints}.get(key.rsplit("_", 1)[-1])
    cls = getattr(module, value["class_name"], None) if module else None
    if cls is None:
        return None
    accepted = _arguments(cls)
    return {"class_name": value["class_name"],
            "config": {k: v for k, v in value.get("config", {}).items() if k in accepted}}


def _arguments(cls: type) -> set[str]:
    return {name for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)}


def _call_record(node: Any) -> list[list[Any]]:
    """Keras 3's ``{"args": [...], "kwargs": {...}}`` as Keras 2's ``[[layer, node, tensor, {}], ...]``."""
    tensors: list[list[Any]] = []
    _collect_tensors(node.get("args", []) if isinstance(node, dict) else node, tensors)
    return tensors


def _collect_tensors(value: Any, tensors: list[list[Any]]) -> None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        layer, node_index, tensor_index = value["config"]["keras_history"]
        tensors.append([layer, node_index, tensor_index, {}])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_tensors(item, tensors)


# --- the weights -------------------------------------------------------------------------------


def saved_name(class_name: str) -> str:
    """The snake-case name Keras 3 files a layer's weights under (before its per-class number).

    Example:
        >>> saved_name("BatchNormalization"), saved_name("ReLU"), saved_name("DepthwiseConv2D")
        ('batch_normalization', 're_lu', 'depthwise_conv2d')
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _copy_weights(model: Any, weights: bytes, path: Path) -> None:
    import h5py

    counts: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights), "r") as saved:
        layers = saved["layers"]
        for layer in model.layers:
            base = saved_name(type(layer).__name__)
            number = counts.get(base, -1) + 1
            counts[base] = number
            key = base if number == 0 else f"{base}_{number}"
            if not layer.weights:
                continue
            if key not in layers:
                raise ValueError(f"{path}: no weights for layer {layer.name!r} (looked for {key!r} in the Keras 3 file)")
            stored = layers[key]["vars"]
            values = [stored[str(i)][()] for i in range(len(stored))]
            expected = [tuple(weight.shape) for weight in layer.weights]
            if [value.shape for value in values] != expected:
                raise ValueError(f"{path}: layer {layer.name!r} has weights {[v.shape for v in values]} in the "
                                 f"Keras 3 file but {expected} in Keras 2")
            layer.set_weights(values)
