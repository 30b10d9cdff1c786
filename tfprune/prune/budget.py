"""A device budget: flash, arena, MACs and time that a deployed model must fit.

``flash`` is the bytes of the exported artifact (the ``.tflite`` the firmware
stores), ``arena`` the TFLite Micro tensor arena it needs, ``macs`` its
multiply-accumulates per inference, ``time`` its time per inference as a ratio
to the unpruned model (:func:`tfprune.compress` measures it as the ratio of CMSIS-NN
ticks on the emulated Cortex-M4, :func:`tfprune.emulate`, and as the ratio of MACs
where the emulator's tools are missing). Sizes accept ``"48KB"`` (1 KB = 1024 bytes, as flash
parts are sized), ``"48000B"``, ``"1.5MB"`` or plain integers.

Example:
    >>> budget = Budget(flash="48KB", arena=40_000)
    >>> budget.flash, budget.misses({"flash": 50_000, "arena": 30_000})
    (49152, ['flash 50,000 B > 49,152 B'])
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any, what: str = "size") -> int:
    """Bytes from an int or a text such as ``"48KB"``, ``"48 KiB"``, ``"49152"`` or ``"1.5MB"``.

    Example:
        >>> parse_size("48KB"), parse_size(1000), parse_size("2 MiB")
        (49152, 1000, 2097152)
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number of bytes or a text like '48KB', got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{what} {value!r} is not a size; write it like 48KB, 48000B or 49152")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(round(number * _UNITS[unit]))
    if size <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return size


@dataclass(frozen=True)
class Budget:
    """What the deployed model must fit; any subset of ``flash``, ``arena``, ``macs`` and ``time``.

    Example:
        >>> Budget(time=0.5).as_dict()
        {'flash': None, 'arena': None, 'macs': None, 'time': 0.5}
    """

    flash: Any = None
    arena: Any = None
    macs: Any = None
    time: float | None = None

    def __post_init__(self) -> None:
        for name in ("flash", "arena"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_size(value, name))
        if self.macs is not None:
            if isinstance(self.macs, bool) or not isinstance(self.macs, int) or self.macs <= 0:
                raise ValueError(f"macs must be a positive int, got {self.macs!r}")
        if self.time is not None:
            if isinstance(self.time, bool) or not isinstance(self.time, (int, float)) or not 0 < self.time <= 1:
                raise ValueError(f"time is a ratio to the unpruned model in (0, 1], got {self.time!r}")
        if all(value is None for value in asdict(self).values()):
            raise ValueError("the budget is empty; give at least one of flash, arena, macs, time")

    def misses(self, figures: Mapping[str, Any]) -> list[str]:
        """What ``figures`` (keys ``flash``, ``arena``, ``macs``, ``time``) exceed, one text each.

        Example:
            >>> Budget(macs=100, time=0.5).misses({"macs": 90, "time": 0.6})
            ['time 0.600 > 0.500']
        """
        misses = []
        for name, unit in (("flash", " B"), ("arena", " B"), ("macs", "")):
            limit, value = getattr(self, name), figures.get(name)
            if limit is not None and value is not None and value > limit:
                misses.append(f"{name} {value:,}{unit} > {limit:,}{unit}")
        if self.time is not None and figures.get("time") is not None and figures["time"] > self.time:
            misses.append(f"time {figures['time']:.3f} > {self.time:.3f}")
        return misses

    def as_dict(self) -> dict[str, Any]:
        """The limits as a plain dict (None where unset).

        Example:
            >>> Budget(flash=1000).as_dict()["flash"]
            1000
        """
        return asdict(self)
