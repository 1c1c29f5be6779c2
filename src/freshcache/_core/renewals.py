"""Keeping a fill lease alive while its holder loads, and only then.

A lease lasts what a load of its namespace takes (``loadtimes.py``): its
*life*. It is written with an expiry of at most ``SPAN``, though, and the
process holding it renews it whenever less than half of that is left, until
its life is over or its holder fills or gives it back. A holder whose process
dies, freezes or loses its link to Redis stops renewing, and its lease
expires within ``SPAN``. So an orphaned lease (a killed holder, an
acquisition whose reply was lost) delays its key's readers by ``SPAN`` at
most, even when its life was long: after a slow load, or in a process that
has not timed a load yet (its leases live ``lease_ttl``).

A holder that is alive but slower than the lease's life loses the lease to a
waiter, as before: renewals stop when the life is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

SPAN = 0.5  # seconds: the longest a lease outlives its holder's last renewal
RETRY = 0.05  # seconds before renewing again after a failed round trip


class Lock(Protocol):
    """A lock, or nothing where one thread shares the state (an event loop)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> Any: ...


@dataclass(slots=True)
class _Held:
    token: str
    until: float  # the end of the lease's life (monotonic seconds)
    expires: float  # when it expires in Redis unless renewed (at the latest)


class Renewals:
    """The leases this process holds that need renewing, and when.

    Shared by the holders' callers and one renewer (a task or a thread): the
    renewer runs while a lease is held and ends when none is; ``hold`` says
    when a new one must be started."""

    __slots__ = ("_held", "_lock", "_running")

    def __init__(self, lock: Lock) -> None:
        self._held: dict[str, _Held] = {}
        self._lock = lock  # a real one where threads share this
        self._running = False

    @staticmethod
    def expiry(life: float) -> float:
        """What a lease with ``life`` seconds to live is written with."""
        return min(life, SPAN)

    def hold(self, key: str, token: str, life: float, taken: float) -> bool:
        """The lease on ``key`` was taken (its command sent at ``taken``).
        True when a renewer must be started for it."""
        if life <= SPAN:
            return False  # its first expiry is its whole life
        with self._lock:
            self._held[key] = _Held(token, taken + life, taken + SPAN)
            if self._running:
                return False
            self._running = True
            return True

    def drop(self, key: str, token: str) -> None:
        """The lease on ``key`` was filled, given back, or is given up."""
        with self._lock:
            held = self._held.get(key)
            if held is not None and held.token == token:
                del self._held[key]

    def wait(self, now: float) -> float | None:
        """Seconds until a held lease needs renewing; None when none is held:
        the renewer ends (the next ``hold`` asks for another)."""
        with self._lock:
            if not self._held:
                self._running = False
                return None
            soonest = min(held.expires for held in self._held.values())
        return max(0.0, soonest - SPAN / 2 - now)

    def due(self, now: float) -> list[tuple[str, str, float]]:
        """The leases to renew now: ``(key, token, seconds)``, ``seconds`` the
        new expiry. A lease whose expiry already covers the rest of its life
        is no longer renewed."""
        renew = []
        with self._lock:
            for key, held in list(self._held.items()):
                if held.expires >= held.until:
                    del self._held[key]  # it expires with its life
                elif held.expires - now <= SPAN / 2:
                    renew.append((key, held.token, min(SPAN, held.until - now)))
        return renew

    def renewed(self, renewals: list[tuple[str, str, float]], results: list[bool],
                sent: float) -> None:  # fmt: skip
        """Renewals sent at ``sent`` came back: True, extended; False, the
        lease is gone (filled, given back, invalidated or expired)."""
        with self._lock:
            for (key, token, seconds), kept in zip(renewals, results, strict=True):
                held = self._held.get(key)
                if held is None or held.token != token:
                    continue
                if kept:
                    held.expires = sent + seconds
                else:
                    del self._held[key]
