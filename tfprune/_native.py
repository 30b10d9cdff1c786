"""Capturing what native (C++) code writes to the process's stdout and stderr.

TensorFlow's converter and TFLite Micro print from C++ straight to file
descriptors 1 and 2, past Python's ``sys.stdout``; tfprune keeps that noise
out of its own output and reads what it needs from it (TFLite Micro's arena
report, its reason for refusing a model).

**Other threads.** A file descriptor belongs to the process, not to a thread:
while a capture is open, whatever any thread writes to descriptors 1 and 2
lands in it, Python's ``print``, logging and progress bars included (they end
in the same descriptors). Nothing records which thread wrote a byte, so the
capture cannot hand other threads' output back selectively, and a per-thread
descriptor table (Linux ``unshare(CLONE_FILES)``) would not cover the worker
threads the native libraries print from. So tfprune keeps each capture short
(one converter call, one interpreter set-up, one arena report), and with
``TFPRUNE_DEBUG=1`` (the CLI's ``--debug``) writes everything captured back to
stderr when the capture ends: nothing is lost then, only delayed.

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


def _debugging() -> bool:
    return os.environ.get("TFPRUNE_DEBUG", "0") not in ("", "0")


@contextmanager
def captured_output(*fds: int) -> Iterator[Captured]:
    """Redirect file descriptors ``fds`` (default 1 and 2) into a temporary file.

    Everything the process writes to them meanwhile is captured, from every
    thread (see the module). With ``TFPRUNE_DEBUG=1`` it is written to stderr
    (or to the only captured descriptor) afterwards.
    """
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
        if _debugging():
            _write_back(path, 2 if 2 in fds else fds[0])
        os.unlink(path)


def _write_back(path: str, fd: int) -> None:
    with open(path, "rb") as captured:
        data = captured.read()
    while data:
        data = data[os.write(fd, data):]
