"""Metrics: a small protocol, a no-op sink, and the built-in stats recorder.

The cache reports every event to one ``Metrics`` object. The default,
``StatsRecorder``, keeps counters in memory so that ``cache.stats()`` works
out of the box; ``NullMetrics`` turns recording off; an integration (for
example Prometheus) implements the same protocol.

Labels are tiers, namespaces, causes and error classes: never keys or values.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

# Latency buckets: upper bounds in seconds, 25 us to 10 s.
BUCKETS: Final = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, float("inf"),
)  # fmt: skip


class Metrics(Protocol):
    """Where a cache reports what happens. Every method must be cheap."""

    def hit(self, tier: str, namespace: str) -> None: ...
    def miss(self, tier: str, namespace: str) -> None: ...
    def load(self, namespace: str, seconds: float, *, failed: bool) -> None: ...
    def eviction(self, tier: str, cause: str) -> None: ...
    def error(self, kind: str) -> None: ...
    def count(self, name: str) -> None: ...
    def latency(self, operation: str, seconds: float) -> None: ...
    def gauge(self, name: str, value: float) -> None: ...
    def snapshot(self) -> CacheStats: ...


@dataclass(frozen=True)
class Latency:
    """A latency histogram: counts per bucket upper bound (seconds)."""

    counts: tuple[int, ...] = (0,) * len(BUCKETS)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q``; None if empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for bound, n in zip(BUCKETS, self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return BUCKETS[-1]  # pragma: no cover


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of what a cache has done since it was created."""

    hits: Mapping[str, int] = field(default_factory=dict)  # by tier
    misses: Mapping[str, int] = field(default_factory=dict)  # by tier
    hits_by_namespace: Mapping[str, int] = field(default_factory=dict)
    misses_by_namespace: Mapping[str, int] = field(default_factory=dict)
    loads: int = 0
    load_errors: int = 0
    load_seconds: float = 0.0
    evictions: Mapping[str, int] = field(default_factory=dict)  # "tier:cause"
    errors: Mapping[str, int] = field(default_factory=dict)  # by class
    counts: Mapping[str, int] = field(default_factory=dict)  # other events, by name
    latency: Mapping[str, Latency] = field(default_factory=dict)  # by operation
    pending_invalidations: int = 0  # queued for retry: Redis did not take them
    oldest_pending_seconds: float = 0.0  # how long the queue has been non-empty
    gauges: Mapping[str, float] = field(default_factory=dict)  # last value, by name

    @property
    def requests(self) -> int:
        """Lookups answered: a hit in any tier or a final miss."""
        return sum(self.hits.values()) + self.misses.get("all", 0)

    @property
    def hit_rate(self) -> float:
        """Share of lookups answered from a tier; 0.0 before any lookup."""
        total = self.requests
        return sum(self.hits.values()) / total if total else 0.0


class NullMetrics:
    """Records nothing; ``snapshot()`` is always empty."""

    __slots__ = ()

    def hit(self, tier: str, namespace: str) -> None:
        pass

    def miss(self, tier: str, namespace: str) -> None:
        pass

    def load(self, namespace: str, seconds: float, *, failed: bool) -> None:
        pass

    def eviction(self, tier: str, cause: str) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def count(self, name: str) -> None:
        pass

    def latency(self, operation: str, seconds: float) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass

    def snapshot(self) -> CacheStats:
        return CacheStats()


class StatsRecorder:
    """In-memory counters behind ``cache.stats()`` (the default).

    Counter updates are plain dict increments: a lost update under a thread
    race costs one count, never a crash, so the hot path takes no lock.
    """

    def __init__(self) -> None:
        self.after_fork()

    def after_fork(self) -> None:
        """Zero (and, in a forked child, a new lock): a process's stats are
        its own, never its parent's."""
        # tier -> namespace -> count: no tuple built per event (hot path).
        self._hits: defaultdict[str, defaultdict[str, int]] = defaultdict(_counter)
        self._misses: defaultdict[str, defaultdict[str, int]] = defaultdict(_counter)
        self._loads = 0
        self._load_errors = 0
        self._load_seconds = 0.0
        self._evictions: defaultdict[str, int] = defaultdict(int)
        self._errors: defaultdict[str, int] = defaultdict(int)
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._latency: dict[str, list[int]] = {}
        self._gauges: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, tier: str, namespace: str) -> None:
        self._hits[tier][namespace] += 1

    def miss(self, tier: str, namespace: str) -> None:
        self._misses[tier][namespace] += 1

    def load(self, namespace: str, seconds: float, *, failed: bool) -> None:
        self._loads += 1
        self._load_seconds += seconds
        if failed:
            self._load_errors += 1
        self.latency("load", seconds)

    def eviction(self, tier: str, cause: str) -> None:
        self._evictions[f"{tier}:{cause}"] += 1

    def error(self, kind: str) -> None:
        self._errors[kind] += 1

    def count(self, name: str) -> None:
        self._counts[name] += 1

    def latency(self, operation: str, seconds: float) -> None:
        counts = self._latency.get(operation)
        if counts is None:
            with self._lock:
                counts = self._latency.setdefault(operation, [0] * len(BUCKETS))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1

    def gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value

    def snapshot(self) -> CacheStats:
        hits = {tier: dict(c) for tier, c in list(self._hits.items())}
        misses = {tier: dict(c) for tier, c in list(self._misses.items())}
        return CacheStats(
            hits={tier: sum(c.values()) for tier, c in hits.items()},
            misses={tier: sum(c.values()) for tier, c in misses.items()},
            hits_by_namespace=_merge(hits.values()),
            misses_by_namespace=dict(misses.get("all", {})),
            loads=self._loads,
            load_errors=self._load_errors,
            load_seconds=self._load_seconds,
            evictions=dict(self._evictions),
            errors=dict(self._errors),
            counts=dict(self._counts),
            latency={op: Latency(tuple(c)) for op, c in list(self._latency.items())},
            gauges=dict(self._gauges),
        )


def _counter() -> defaultdict[str, int]:
    return defaultdict(int)


def _merge(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: defaultdict[str, int] = defaultdict(int)
    for by_namespace in counts:
        for namespace, n in by_namespace.items():
            out[namespace] += n
    return dict(out)
