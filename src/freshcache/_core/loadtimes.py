"""How long a fill lease lives: a few times the loads it stands for.

A lease is held while one caller loads a key, and everyone else waits for
its fill. A holder that is alive but stuck (a hung query, a frozen driver)
keeps it until it expires, and every reader of the key, in every process,
waits that long. So a lease lives what a load of its namespace takes here,
not a fixed ``lease_ttl``: ``FACTOR`` times the slowest of the last ``KEPT``
loads (at least ``FLOOR``, at most ``lease_ttl``; ``lease_ttl`` until a load
was timed here). A load slower than that loses its lease to a waiter, which
loads too; its fill is then refused (the lease is a compare-and-set), which
is correct and counted. A holder that is gone (killed, or its reply lost)
stops renewing its lease and loses it sooner (``renewals.py``).
"""

from __future__ import annotations

from collections import deque

FACTOR = 4.0
FLOOR = 0.05  # seconds: network jitter alone can take this
KEPT = 16  # loads remembered per namespace
NAMESPACES = 1024  # namespaces remembered (past this, the oldest are forgotten)


class LoadTimes:
    """Recent load times per namespace, and the lease they call for."""

    __slots__ = ("_cap", "_recent", "_slowest")

    def __init__(self, cap: float) -> None:
        self._cap = cap
        self._recent: dict[str, deque[float]] = {}
        self._slowest = 0.0  # of any namespace lately: for a namespace not seen

    def record(self, namespace: str, seconds: float) -> None:
        recent = self._recent.pop(namespace, None)  # re-inserted: newest last
        if recent is None:
            recent = deque(maxlen=KEPT)
            if len(self._recent) >= NAMESPACES:
                del self._recent[next(iter(self._recent))]
        recent.append(max(0.0, seconds))
        self._recent[namespace] = recent
        self._slowest = max(self._slowest * 0.9, seconds)

    def lease_ttl(self, namespace: str) -> float:
        """How long a lease for a load of ``namespace`` lasts: ``lease_ttl``
        until a load that took any time was seen here."""
        recent = self._recent.get(namespace)
        slowest = max(recent) if recent else self._slowest
        if slowest <= 0.0:
            return self._cap
        return min(self._cap, max(FLOOR, FACTOR * slowest))
