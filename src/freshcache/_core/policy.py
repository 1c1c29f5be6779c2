"""The circuit breaker that stops a dead cache server from costing a deadline per call.

A pure state machine: the caller passes the time in and asks whether a call
may go through. Closed: every call goes. After ``failures`` consecutive
failures it opens: no call goes for ``open_seconds``. Then it is half-open:
one probe goes; its success closes the breaker, its failure opens it again.

The machine is total: a probe that ends with neither (cancelled, or it never
reached Redis) is ``abandon``-ed and the next call probes; a probe whose end
is never reported at all (a bug) counts as lost after ``open_seconds``, and
the next call probes. So once Redis answers again, the breaker closes within
one probe interval whatever happened to earlier probes.
"""

from __future__ import annotations

import enum


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """``healthy`` is True while no failure is on record: then a caller may
    skip ``allow`` and ``success`` (and the clock read) entirely."""

    __slots__ = (
        "_failures",
        "_open_seconds",
        "_opened_at",
        "_probe_started",
        "_streak",
        "healthy",
    )

    def __init__(self, *, failures: int = 5, open_seconds: float = 1.0) -> None:
        if failures < 1 or open_seconds <= 0:
            raise ValueError("failures must be >= 1 and open_seconds > 0")
        self._failures = failures
        self._open_seconds = open_seconds
        self._streak = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None  # the probe in flight
        self.healthy = True

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self._open_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, now: float) -> bool:
        """May a call go through now? In half-open state, only one probe may."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        started = self._probe_started
        if started is not None and now - started < self._open_seconds:
            return False  # one probe at a time (a silent one is lost after this)
        self._probe_started = now
        return True

    def success(self) -> None:
        self._streak = 0
        self._opened_at = None
        self._probe_started = None
        self.healthy = True

    def abandon(self) -> None:
        """A call allowed through ended without a verdict on Redis (cancelled,
        or it never got a connection): if it was the probe, the next call
        probes. No effect on a closed breaker."""
        self._probe_started = None

    def failure(self, now: float) -> bool:
        """Record a failed call; return True when it (re)opened the breaker."""
        self.healthy = False
        self._streak += 1
        if self._probe_started is not None or self._streak >= self._failures:
            self._opened_at = now
            self._probe_started = None
            return True
        return False
