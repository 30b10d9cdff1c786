"""Where a result comes from: the commit, whether the tree was clean, and the code it ran.

A row's code is the set of project files (``tfprune/``, ``benchmarks/``) the harness and the
row's method can execute: the static closure of their imports (every ``import`` in a file,
inside functions too, the packages a module's import runs, attribute chains such as
``tfprune.core.count.x`` on an imported package, and a package's lazy public names). Each
file is recorded with a hash of its bytes; a row is *current* while every recorded file is
unchanged, *changed* once one differs or is gone.

Example:
    >>> files = code_files(["benchmarks.harness"])
    >>> "benchmarks/harness.py" in files and "tfprune/deploy/pipeline.py" in files
    True
    >>> changed_files(files)
    []
    >>> changed_files({"benchmarks/harness.py": "0" * 12})
    ['benchmarks/harness.py']
    >>> code_status({"code": {"files": files}}), code_status({"code": None})
    ('current', 'unknown')
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

#: The repository root (the checkout whose code the benchmark runs).
ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages whose files make up a row's code.
PACKAGES = ("tfprune", "benchmarks")
#: Paths a benchmark run writes itself; their changes do not make the tree unclean.
OUTPUTS = ("tools/results", "BENCHMARKS.md")


def module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def code_files(modules: Iterable[str]) -> dict[str, str]:
    """Repository path -> hash of the files ``modules`` can execute (see the module docstring)."""
    seen: set[str] = set()
    todo = [name for name in modules if module_file(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in _parents(name) + sorted(_imports(name)) if m not in seen and module_file(m)]
    paths = {module_file(name) for name in seen}
    return {path.relative_to(ROOT).as_posix(): file_hash(path) for path in sorted(paths)}


def file_hash(path: Path) -> str:
    """The first 12 hex digits of the SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def fingerprint(files: dict[str, str]) -> str:
    """One hash for a set of recorded files: equal fingerprints, equal code."""
    text = "".join(f"{path} {digest}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_files(files: dict[str, str]) -> list[str]:
    """The recorded files whose bytes differ today, or that are gone."""
    return sorted(path for path, digest in files.items()
                  if not (ROOT / path).is_file() or file_hash(ROOT / path) != digest)


def code_status(result: dict[str, Any]) -> str:
    """``"current"`` while the files a result's row ran are unchanged, ``"changed"`` once one is not,
    ``"unknown"`` for a row recorded before rows listed their code (``"code": null``)."""
    code = result.get("code")
    if not code:
        return "unknown"
    return "changed" if changed_files(code["files"]) else "current"


def git_commit() -> str:
    """The short hash of HEAD, or ``"unknown"`` outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tree_clean(outputs: Iterable[str | Path] = ()) -> bool:
    """Whether no tracked file differs from HEAD, outside what a benchmark run writes.

    ``outputs`` are more paths the run writes (a results folder, a page), beside
    :data:`OUTPUTS`; False outside a git checkout (nothing says what the code was).
    """
    excluded = [*OUTPUTS, *(_inside(Path(p)) for p in outputs)]
    pathspec = ["."] + [f":(exclude){p}" for p in excluded if p]
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *pathspec],
                                capture_output=True, text=True, check=True, cwd=ROOT).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return not status.strip()


def _inside(path: Path) -> str | None:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None


def _parents(name: str) -> list[str]:
    """The packages Python runs before module ``name``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def _imports(name: str) -> frozenset[str]:
    """The project modules file ``name`` may run: imports anywhere, attribute chains, lazy names."""
    path = module_file(name)
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    bound: dict[str, str] = {}  # local name -> the module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            found.add(base)
            for alias in node.names:
                target = _resolve(base, alias.name)
                if target:
                    found.add(target)
                    bound[alias.asname or alias.name] = target
    for node in ast.walk(tree):
        chain = _chain(node)
        if chain and chain[0] in bound:
            parts = bound[chain[0]].split(".") + chain[1:]
            found |= {m for m in (_deepest(parts),) if m}
    return frozenset(m for m in found if m.split(".")[0] in PACKAGES)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _resolve(package: str, attribute: str) -> str | None:
    """``from package import attribute``: a submodule, a lazy public name's module, or None."""
    if module_file(f"{package}.{attribute}"):
        return f"{package}.{attribute}"
    return _lazy_names(package).get(attribute)


def _deepest(parts: list[str]) -> str | None:
    """The deepest module an attribute chain ``a.b.c.name`` reaches."""
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if module_file(name):
            if end < len(parts):
                return _resolve(name, parts[end]) or name
            return name
    return None


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` of an outermost-or-inner attribute expression as ["a", "b", "c"]."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts:
        return None
    return [node.id] + parts[::-1]


@cache
def _lazy_names(package: str) -> dict[str, str]:
    """A package's lazily imported public names: ``{"name": "package.module"}`` dicts in its ``__init__``."""
    path = module_file(package)
    if path is None or path.name != "__init__.py":
        return {}
    names: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Constant)
                        and isinstance(value.value, str) and module_file(value.value)):
                    names[key.value] = value.value
    return names
