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


class FakeClock:
    """A clock that moves only when told to; for tests."""

    __slots__ = ("_mono", "_wall")

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._wall += seconds
        self._mono += seconds


SYSTEM_CLOCK = SystemClock()
