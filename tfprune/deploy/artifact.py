"""The exported artifact: flatbuffer, C sources and report, saved atomically.

Example:
    >>> import tempfile, pathlib
    >>> artifact = Artifact(b"fb", Report({"schema_version": 1}), {"model_data.h": "// h"})
    >>> out = artifact.save(pathlib.Path(tempfile.mkdtemp()) / "build")
    >>> sorted(path.name for path in out.iterdir())
    ['model.tflite', 'model_data.h', 'report.json']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Report(dict):
    """The report dict (keys documented in :mod:`tfprune.deploy.report`); prints as a table.

    Example:
        >>> Report({"a": 1})["a"]
        1
    """

    def __str__(self) -> str:
        from tfprune.deploy.report import format_report

        return format_report(self)

    def to_json(self) -> str:
        """The report as indented JSON text."""
        return json.dumps(self, indent=2, sort_keys=False) + "\n"


@dataclass
class Artifact:
    """What :func:`tfprune.export` makes: ``flatbuffer`` (bytes), ``report``, C ``sources``.

    ``reference_flatbuffer`` is the converter's flatbuffer of the same model
    when the deployed one differs from it (DECODE compression, lean
    flatbuffer): what the stock TFLite interpreter can load; else None.

    ``save(directory)`` writes ``model.tflite``, the C sources (for ``cortex-m``)
    and ``report.json`` into ``directory``, all or nothing.
    """

    flatbuffer: bytes
    report: Report
    sources: dict[str, str] = field(default_factory=dict)
    reference_flatbuffer: bytes | None = None

    def files(self) -> dict[str, bytes]:
        """File name -> bytes, as :meth:`save` writes them."""
        files = {"model.tflite": bytes(self.flatbuffer)}
        files.update({name: text.encode() for name, text in self.sources.items()})
        files["report.json"] = self.report.to_json().encode()
        return files

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the files into ``directory``; an existing non-empty one is kept unless ``overwrite``.

        Files are written into a temporary sibling directory which then takes
        the target's place, so a failure leaves nothing half-written.
        """
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a directory; choose another output directory")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise FileExistsError(f"{target} already exists and is not empty; pass overwrite=True (--force) to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, data in self.files().items():
                (staging / name).write_bytes(data)
            replace_directory(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def __str__(self) -> str:
        return str(self.report)


def replace_directory(new: Path, target: Path) -> None:
    if not target.exists():
        new.rename(target)
        return
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    target.rename(retired)
    new.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def as_json_ready(value: Any) -> Any:
    """Replace NumPy scalars and tuples by plain JSON values, recursively.

    Example:
        >>> import numpy as np
        >>> as_json_ready({"a": (np.int64(1), np.float32(0.5))})
        {'a': [1, 0.5]}
    """
    if isinstance(value, dict):
        return {str(key): as_json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json_ready(item) for item in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
