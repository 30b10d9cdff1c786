"""What ``tools/bench --check`` asserts about a folder of results, and what it reports.

Failures (the check exits 1): a line that is not JSON, a field out of
:mod:`benchmarks.schema`, a row run on a tree with uncommitted changes, a key
twice in one file, and a row whose artifact is kept beside the results
(``artifacts/<sha256>.tflite``) but has other bytes. Reported, per table: the
commits its rows come from and which rows ran code that changed since, or that
was not recorded.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "x.jsonl").write_text('{"prune_seconds": -1}\\n')
    >>> audit(folder).failures[0]
    'x.jsonl:1: key: missing'
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import provenance, schema
from benchmarks.harness import ARTIFACTS

#: Where rows kept out of the evidence live, under the results folder.
ARCHIVE = "archive"


@dataclass
class Audit:
    """The outcome of :func:`audit`: failures, and one report line per table (and per stale row)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


def read_folder(folder: Path) -> tuple[list[tuple[str, int, Any]], list[str]]:
    """Every line of the folder's ``*.jsonl`` files as (file name, line number, parsed), and the unparsable."""
    rows, failures = [], []
    for path in sorted(Path(folder).glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((path.name, number, json.loads(line)))
            except json.JSONDecodeError as err:
                failures.append(f"{path.name}:{number}: not JSON ({err.msg})")
    return rows, failures


def audit(folder: str | Path) -> Audit:
    """Check every result in ``folder`` (see the module docstring)."""
    folder = Path(folder)
    rows, failures = read_folder(folder)
    outcome = Audit(failures=failures)
    seen: set[tuple[str, str]] = set()
    for name, number, result in rows:
        where = f"{name}:{number}"
        found = schema.problems(result)
        outcome.failures += [f"{where}: {problem}" for problem in found]
        if found:
            continue
        outcome.results.append(result)
        key = json.dumps(result["key"], sort_keys=True)
        if (name, key) in seen:
            outcome.failures.append(f"{where}: {_label(result)} is in the file twice")
        seen.add((name, key))
        if not result["clean"] or result["commit"].endswith("-dirty"):
            outcome.failures.append(f"{where}: {_label(result)} ran on a tree with uncommitted changes "
                                    f"(commit {result['commit']}); re-run it from a clean checkout or drop it")
        problem = _artifact_problem(folder, result)
        if problem:
            outcome.failures.append(f"{where}: {_label(result)}: {problem}")
    outcome.report = _report(folder, outcome.results)
    return outcome


def archived(folder: str | Path) -> list[dict[str, Any]]:
    """The rows kept out of the evidence in ``folder/archive/*.jsonl``."""
    rows, _ = read_folder(Path(folder) / ARCHIVE)
    return [result for _, _, result in rows if isinstance(result, dict) and "key" in result]


def _artifact_problem(folder: Path, result: dict[str, Any]) -> str | None:
    digest = result.get("flatbuffer_sha256")
    path = folder / ARTIFACTS / f"{digest}.tflite"
    if not digest or not path.is_file():
        return None
    data = path.read_bytes()
    if len(data) != result["flatbuffer_bytes"]:
        return f"flatbuffer_bytes: {result['flatbuffer_bytes']} is not its artifact's {len(data)} B ({path.name})"
    if hashlib.sha256(data).hexdigest() != digest:
        return f"flatbuffer_sha256: {path.name} does not hash to its name"
    return None


def _report(folder: Path, results: list[dict[str, Any]]) -> list[str]:
    tables: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        tables[(result["model"], result["dataset"], result["key"]["tier"])].append(result)
    lines = []
    for (model, dataset, tier), rows in sorted(tables.items()):
        status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for result in rows:
            status[provenance.code_status(result)].append(result)
        commits = sorted({r["commit"] for r in rows})
        lines.append(f"{model} on {dataset}, {tier} tier: {len(rows)} rows from commits {', '.join(commits)}; "
                     f"{len(status['current'])} ran the code of this checkout, {len(status['changed'])} code "
                     f"changed since, {len(status['unknown'])} code not recorded")
        for result in status["changed"]:
            changed = provenance.changed_files(result["code"]["files"])
            lines.append(f"  changed since: {_label(result)} ({', '.join(changed)})")
        if status["changed"] or status["unknown"]:
            lines.append(f"  refresh: tools/bench --tier {tier} --refresh")
    return lines


def _label(result: dict[str, Any]) -> str:
    key = result["key"]
    return f"{key['method']} {key['settings']} seed {key['seed']}"
