"""Capturing what native (C++) code writes to the process's stdout and stderr.

TensorFlow's converter and TFLite Micro print from C++ straight to file
descriptors 1 and 2, past Python's ``sys.stdout``; tfprune keeps that noise
out of its own output and reads what it needs from it.

Example:
    >>> import os
    >>> with captured_output(2) as captured:
    ...     _ = os.write(2, b"from C\\n")
    ...     captured.text()
    'from C\\n'
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator


class Captured:
    """What was written to the captured descriptors so far."""

    def __init__(self, path: str) -> None:
        self._path = path

    def text(self) -> str:
        """The captured text; read it inside the ``with`` block."""
        with open(self._path, errors="replace") as handle:
            return handle.read()


@contextmanager
def captured_output(*fds: int) -> Iterator[Captured]:
    """Redirect file descriptors ``fds`` (default 1 and 2) into a temporary file."""
    fds = fds or (1, 2)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    handle, path = tempfile.mkstemp(prefix="tfprune_native_", suffix=".log")
    saved = {fd: os.dup(fd) for fd in fds}
    try:
        for fd in fds:
            os.dup2(handle, fd)
        yield Captured(path)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(handle)
        os.unlink(path)
