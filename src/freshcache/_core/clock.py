"""Injected time: the system clock and a fake one for tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where freshcache reads the time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (shared across processes)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (in-process deadlines)."""
        ...


class SystemClock:
    """The real clocks."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
