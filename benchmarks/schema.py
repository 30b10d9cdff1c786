"""The result schema: the type and range of every field of a benchmark result.

The harness refuses to write a result that breaks it (:func:`validate`) and
``tools/bench --check`` reads every committed result through :func:`problems`.
A problem names the field and what is wrong with it.

Example:
    >>> problems({"prune_seconds": -207.4})[:2]
    ['key: missing', 'model: missing']
    >>> [p for p in problems({"prune_seconds": -207.4}) if p.startswith("prune")]
    ['prune_seconds: -207.4 is below 0']
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STARTS = ("pretrained", "scratch", "artifact")
QUANTIZATIONS = ("int8", "float32")
_COMMIT = re.compile(r"^([0-9a-f]{7,40}(-dirty)?|unknown)$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@dataclass(frozen=True)
class Field:
    """One field: the JSON types it takes, a range check, and whether a result must have it.

    ``check`` returns what is wrong with a value of the right type, or None.
    ``nullable`` lets the value be null (a figure a row cannot measure).
    """

    name: str
    types: tuple[type, ...]
    check: Callable[[Any], str | None] | None = None
    required: bool = True
    nullable: bool = False


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"{v} is below {low:g}"


def _within(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"{v} is outside [{low:g}, {high:g}]"


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"{v!r} is not one of {', '.join(allowed)}"


def _matches(pattern: re.Pattern[str], what: str) -> Callable[[Any], str | None]:
    return lambda v: None if pattern.match(v) else f"{v!r} is not {what}"


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "is empty"


INT, NUMBER = (int,), (int, float)

FIELDS: tuple[Field, ...] = (
    Field("key", (dict,)),
    Field("model", (str,), _nonempty),
    Field("dataset", (str,), _nonempty),
    Field("start", (str,), _one_of(*STARTS)),
    Field("description", (str,)),
    Field("prune_seconds", NUMBER, _at_least(0), nullable=True),
    Field("train_seconds", NUMBER, _at_least(0)),
    Field("train_seconds_reused", NUMBER, _at_least(0), required=False),
    Field("epochs_total", INT, _at_least(0)),
    Field("epochs_this_run", INT, _at_least(0)),
    Field("accuracy", NUMBER, _within(0, 1)),
    Field("test_samples", INT, _at_least(1)),
    Field("tflm_agreement", NUMBER, _within(0, 1), nullable=True),
    Field("agreement_samples", INT, _at_least(0)),
    Field("flatbuffer_bytes", INT, _at_least(1)),
    Field("flatbuffer_sha256", (str,), _matches(re.compile(r"^[0-9a-f]{64}$"), "a SHA-256 in hex"),
          required=False),
    Field("weight_bytes", INT, _at_least(0)),
    Field("arena_bytes", INT, _at_least(1), nullable=True),
    Field("macs", INT, _at_least(0)),
    Field("nonzero_weights", INT, _at_least(0), nullable=True),
    Field("quantization", (str,), _one_of(*QUANTIZATIONS)),
    Field("lut_compressed", (bool,)),
    Field("tflm_ms_host", NUMBER, _at_least(0), nullable=True),
    Field("tflm_ms_dense_same_run", NUMBER, _at_least(0), nullable=True),
    Field("tflm_time_ratio", NUMBER, _at_least(0), nullable=True),
    Field("extra", (dict,), required=False),
    Field("commit", (str,), _matches(_COMMIT, "a git short hash")),
    Field("clean", (bool,)),
    Field("code", (dict,), nullable=True),
    Field("versions", (dict,)),
    Field("host", (str,)),
    Field("timestamp", (str,), _matches(_TIMESTAMP, "an ISO time in UTC (YYYY-MM-DDTHH:MM:SSZ)")),
    Field("corrections", (list,), required=False),
)

_KEY = {"method": (str,), "settings": (str,), "tier": (str,), "seed": INT}
_CORRECTION = ("field", "before", "after", "why")


def problems(result: Any) -> list[str]:
    """Everything wrong with ``result``, one ``"field: what"`` line each ([] when it is valid)."""
    if not isinstance(result, dict):
        return [f"result: a {type(result).__name__}, not a JSON object"]
    found = []
    known = {spec.name for spec in FIELDS}
    found += [f"{name}: not a field of a result" for name in sorted(set(result) - known)]
    for spec in FIELDS:
        if spec.name not in result:
            if spec.required:
                found.append(f"{spec.name}: missing")
            continue
        problem = _field_problem(spec, result[spec.name])
        if problem:
            found.append(f"{spec.name}: {problem}")
    if not found:
        found += _relations(result)
    return found


def validate(result: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of ``result`` that breaks the schema.

    Example:
        >>> validate({"flatbuffer_bytes": 0})
        Traceback (most recent call last):
        ...
        ValueError: benchmark result refused: key: missing (and 28 more)
    """
    found = problems(result)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ValueError(f"benchmark result refused: {found[0]}{more}")


def _field_problem(spec: Field, value: Any) -> str | None:
    if value is None:
        return None if spec.nullable else "null"
    # bool is an int in Python; a count or a duration must not be True
    if isinstance(value, bool) and bool not in spec.types:
        return f"{value!r} is not a {' or '.join(t.__name__ for t in spec.types)}"
    if not isinstance(value, spec.types):
        return f"{value!r} is a {type(value).__name__}, not a {' or '.join(t.__name__ for t in spec.types)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not finite"
    if spec.name == "key":
        return _key_problem(value)
    if spec.name == "corrections":
        return _corrections_problem(value)
    if spec.name == "code" and not all(isinstance(v, str) for v in value.get("files", {}).values()):
        return "files must map paths to hashes"
    return spec.check(value) if spec.check else None


def _key_problem(key: dict[str, Any]) -> str | None:
    for name, types in _KEY.items():
        if not isinstance(key.get(name), types) or isinstance(key.get(name), bool):
            return f"{name} must be a {types[0].__name__}, got {key.get(name)!r}"
    if key["seed"] < 0:
        return f"seed {key['seed']} is below 0"
    try:
        settings = json.loads(key["settings"])
    except json.JSONDecodeError:
        return f"settings {key['settings']!r} is not JSON"
    if not isinstance(settings, dict) or json.dumps(settings, sort_keys=True) != key["settings"]:
        return f"settings {key['settings']!r} is not a canonical JSON object (sorted keys)"
    return None


def _corrections_problem(corrections: list[Any]) -> str | None:
    for correction in corrections:
        if not isinstance(correction, dict) or set(correction) != set(_CORRECTION):
            return f"each correction has exactly {', '.join(_CORRECTION)}"
        if not isinstance(correction["why"], str) or not correction["why"].strip():
            return "a correction says why"
    return None


def _relations(result: dict[str, Any]) -> list[str]:
    """What must hold between fields."""
    found = []
    if result["weight_bytes"] > result["flatbuffer_bytes"]:
        found.append(f"weight_bytes: {result['weight_bytes']} is more than the whole flatbuffer "
                     f"({result['flatbuffer_bytes']} B)")
    if result["epochs_this_run"] > result["epochs_total"]:
        found.append(f"epochs_this_run: {result['epochs_this_run']} is more than epochs_total "
                     f"({result['epochs_total']})")
    if result.get("train_seconds_reused", 0) > result["train_seconds"]:
        found.append(f"train_seconds_reused: {result['train_seconds_reused']} is more than train_seconds "
                     f"({result['train_seconds']})")
    if result["agreement_samples"] > result["test_samples"]:
        found.append(f"agreement_samples: {result['agreement_samples']} is more than test_samples "
                     f"({result['test_samples']})")
    if result["prune_seconds"] is None and not any(c["field"] == "prune_seconds"
                                                  for c in result.get("corrections", [])):
        found.append("prune_seconds: null without a correction saying why")
    if result["clean"] and result["commit"].endswith("-dirty"):
        found.append(f"clean: true, but the commit says {result['commit']}")
    return found
