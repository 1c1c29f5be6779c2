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


class ServerTime:
    """This process's estimate of the Redis server's clock, as an offset to
    add to its own wall clock.

    Freshness is written and judged in the server's time, so processes whose
    clocks disagree still agree on when a value goes stale. Each sample is
    one round trip that read the server's ``TIME``: the server read it
    somewhere between the send and the reply, so the estimate is off by at
    most half the round trip. Of the last ``KEPT`` samples, the one with the
    shortest round trip counts; samples come every few seconds (the registry
    refresh), so a step in this process's clock is corrected within
    ``KEPT`` of them. Until the first sample the offset is 0.
    """

    KEPT = 3

    __slots__ = ("_samples", "offset")

    def __init__(self) -> None:
        self.offset = 0.0
        self._samples: list[tuple[float, float]] = []  # (round trip, offset)

    def sample(self, sent: float, server: float, round_trip: float) -> None:
        """The server said ``server`` (seconds since the epoch) in reply to a
        command sent at ``sent`` (this process's wall clock), ``round_trip``
        seconds (monotonic) before the reply came."""
        if round_trip < 0:
            return
        offset = server - (sent + round_trip / 2)
        self._samples = [*self._samples[1 - self.KEPT :], (round_trip, offset)]
        self.offset = min(self._samples)[1]
