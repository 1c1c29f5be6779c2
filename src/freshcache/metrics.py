"""Metrics: the protocol a cache reports to, its names, and the stats it keeps.

The cache reports every event to one ``Metrics`` object. The default,
``StatsRecorder``, keeps counters in memory so that ``cache.stats()`` works
out of the box; ``NullMetrics`` turns recording off; an exporter (for
example ``freshcache.contrib.prometheus``) reads ``cache.stats()``, or
implements the same protocol.

Every lookup (a key read by ``get``, ``get_many``, ``get_or_load`` or a
cached function) is counted exactly once as a hit, a miss or a bypass, in
each tier it reached (``l1``, ``redis``) and for the cache as a whole
(``cache``), by namespace. Every other name a cache counts is defined here,
once: ``Event`` (``stats().counts``), ``ErrorClass`` (``stats().errors``),
``Bypass`` (why a lookup skipped a tier), ``Operation`` (``stats().latency``),
``Gauge`` (``stats().gauges``). Names are ``snake_case``; a ``:``
separates a family from its detail (``decode:checksum``).

Labels are tiers, namespaces, causes and error classes: never keys or values.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

BUCKETS: Final = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, float("inf"),
)  # fmt: skip
"""Latency histogram buckets: upper bounds in seconds, 25 us to 10 s, then +inf."""


class Tier(StrEnum):
    """Where a lookup was answered, missed or skipped.

    ``CACHE`` is the cache as a whole: a lookup's final outcome.
    """

    L1 = "l1"
    REDIS = "redis"
    CACHE = "cache"


class Outcome(StrEnum):
    """What a lookup found in a tier (or in the cache as a whole)."""

    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"


class Bypass(StrEnum):
    """Why a lookup skipped a tier, or the whole cache."""

    DISABLED = "disabled"  # enabled=False / FRESHCACHE_ENABLED=0 (cache)
    STALE_BOUND = "stale_bound"  # L1 could not prove max_staleness (l1)
    CIRCUIT_OPEN = "circuit_open"  # the breaker refused the call (redis, cache)
    UNAVAILABLE = "unavailable"  # Redis failed to answer (redis, cache)


class Event(StrEnum):
    """Names of ``stats().counts``: things that happened, counted."""

    BUS_CONNECT = "bus_connect"
    BUS_DISCONNECT = "bus_disconnect"
    BUS_GAP = "bus_gap"  # a ping back while an older one never came: L1 dropped
    EARLY_REFRESH = "early_refresh"
    FILL_SKIPPED_LEASE_LOST = "fill_skipped:lease_lost"
    FILL_SKIPPED_TAG_INVALIDATED = "fill_skipped:tag_invalidated"
    FILL_SKIPPED_WRITE_PENDING = "fill_skipped:write_pending"
    INVALIDATION_ATTEMPT_FAILED = "invalidation_attempt_failed"
    INVALIDATION_GAVE_UP = "invalidation_gave_up"
    INVALIDATIONS_ABANDONED = "invalidations_abandoned"
    INVALIDATIONS_ESCALATED = "invalidations_escalated"
    INVALIDATIONS_OVERFLOW = "invalidations_overflow"
    INVALIDATIONS_QUEUED = "invalidations_queued"
    INVALIDATIONS_RECEIVED = "invalidations_received"
    INVALIDATIONS_RETRIED = "invalidations_retried"
    INVALIDATIONS_SENT = "invalidations_sent"
    L1_FILL_SKIPPED = "l1_fill_skipped"
    L1_STALE_WHEN_DOWN = "l1_stale_when_down"
    LEASE_BUSY = "lease_busy"
    LEASE_TAKEOVER = "lease_takeover"
    LEASE_UNSURE_RELEASE = "lease_unsure_release"
    LEASE_WAIT_SERVED = "lease_wait_served"
    LEASE_WAIT_TIMEOUT = "lease_wait_timeout"
    PENDING_BYPASS = "pending_bypass"
    REFRESH_SKIPPED_LEASE_BUSY = "refresh_skipped:lease_busy"
    REFRESH_SKIPPED_REFRESHED = "refresh_skipped:refreshed"
    SWR_SERVED_STALE = "swr_served_stale"
    UPDATE_RETRY = "update_retry"  # add/incr/touch: the key changed meanwhile
    VERSION_LAPSED = "version_lapsed"
    WRITE_THROUGH_QUEUED = "write_through_queued"
    WRITEBEHIND_APPLIED = "writebehind:applied"
    WRITEBEHIND_DEAD_LETTERED = "writebehind:dead_lettered"
    WRITEBEHIND_ENQUEUED = "writebehind:enqueued"
    WRITEBEHIND_LAST_TRY = "writebehind:last_try"
    WRITEBEHIND_REDELIVERED = "writebehind:redelivered"


class ErrorClass(StrEnum):
    """Names of ``stats().errors``; a family (``DECODE``, ``CLUSTER``,
    ``FAILOVER``, ``WRITEBEHIND``, ``WRITEBEHIND_WORKER``) takes a detail
    after ``:`` (``decode:checksum``). Redis errors count under their class:
    ``transient``, ``capacity``, ``config`` (``freshcache.errors``)."""

    ACL = "acl"
    BUS_APPLY = "bus_apply"
    BUS_DECODE = "bus_decode"
    BUS_DISCONNECT = "bus_disconnect"
    BUS_LISTENER = "bus_listener"
    BUS_PING = "bus_ping"
    BUS_PUBLISH = "bus_publish"
    CIRCUIT_OPEN = "circuit_open"
    CLUSTER = "cluster"
    CONFIG = "config"
    DECODE = "decode"
    EVENT_HANDLER = "event_handler"
    FAILOVER = "failover"
    INVALIDATION_RETRY = "invalidation_retry"
    LIVE_PUBLISH = "live_publish"  # a live-view stats tick failed
    LIVE_REFRESH = "live_refresh"
    OVERSIZE = "oversize"
    POOL_WAIT = "pool_wait"
    REFRESH = "refresh"
    SERIALIZE = "serialize"
    WRITEBEHIND = "writebehind"
    WRITEBEHIND_SINK = "writebehind_sink"
    WRITEBEHIND_WORKER = "writebehind_worker"

    def detail(self, detail: str) -> str:
        """``family:detail``: ``ErrorClass.DECODE.detail("checksum")``."""
        return f"{self.value}:{detail}"


class Operation(StrEnum):
    """Names of ``stats().latency``: what was timed. Redis calls are named by
    what the cache asked of Redis, not by the command it sent."""

    BUMP = "bump"  # a namespace's version moved on
    DELETE = "delete"
    EPOCH = "epoch"  # reading the tag epoch
    FILL = "fill"  # storing a loaded value under its lease
    GET = "get"
    INVALIDATE = "invalidate"
    INVALIDATION_TO_LAND = "invalidation_to_land"  # queued until Redis took it
    LEASE = "lease"  # taking a fill lease
    LIVE = "live"  # the registry of versions deployed (rolling deploys)
    LIVE_VIEW = "live_view"  # publishing and reading the live view
    LOAD = "load"  # the loader (the application's code)
    MGET = "mget"
    PING = "ping"
    PUBLISH = "publish"  # a bus message
    REGISTER = "register"  # tagging a key
    RELEASE = "release"  # giving a lease back
    RENEW = "renew"  # renewing held leases
    SCAN = "scan"
    SET = "set"
    SET_MANY = "set_many"
    SWAP = "swap"  # compare-and-set (add, incr, touch)
    TAG = "tag"  # invalidating tags
    VERSION = "version"  # reading a namespace's version
    WATERMARK_AGE = "watermark_age"  # the L1 staleness watermark, before a ping
    WRITEBEHIND_LAG = "writebehind_lag"  # enqueued until applied
    WRITEBEHIND_PUT = "writebehind_put"


class Gauge(StrEnum):
    """Names of ``stats().gauges``: last values (a write-behind queue's, read
    by ``stats()`` of its producer or worker)."""

    WRITEBEHIND_BACKLOG = "writebehind_backlog"
    WRITEBEHIND_PENDING = "writebehind_pending"
    WRITEBEHIND_LAG = "writebehind_lag"
    WRITEBEHIND_APPLIED = "writebehind_applied"
    WRITEBEHIND_REDELIVERED = "writebehind_redelivered"
    WRITEBEHIND_DEAD_LETTERED = "writebehind_dead_lettered"


class Metrics(Protocol):
    """Where a cache reports what happens. Every method must be cheap (the
    hit path calls ``hit``); none may raise.

    Per lookup, the cache calls, in this order, for each tier it reached:
    ``hit(tier, ns)`` (and stops: the lookup is a hit), ``miss(tier, ns)``
    or ``bypass(tier, ns, reason)``; then, if no tier hit, once
    ``miss(Tier.CACHE, ns)`` (some tier was asked) or ``bypass(Tier.CACHE,
    ns, reason)`` (none was: the cache is disabled, Redis out of reach).
    """

    def hit(self, tier: str, namespace: str) -> None: ...
    def miss(self, tier: str, namespace: str) -> None: ...
    def bypass(self, tier: str, namespace: str, reason: str) -> None: ...
    def load(self, namespace: str, seconds: float, *, failed: bool) -> None: ...
    def eviction(self, tier: str, cause: str) -> None: ...
    def error(self, kind: str) -> None: ...
    def count(self, name: str) -> None: ...
    def latency(self, operation: str, seconds: float) -> None: ...
    def gauge(self, name: str, value: float) -> None: ...
    def snapshot(self) -> CacheStats: ...


@dataclass(frozen=True)
class Latency:
    """A latency histogram: ``counts[i]`` observations at most ``bounds[i]``
    seconds (and above ``bounds[i - 1]``); ``sum`` is their total."""

    counts: tuple[int, ...] = (0,) * len(BUCKETS)
    sum: float = 0.0
    bounds: tuple[float, ...] = BUCKETS

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def buckets(self) -> tuple[tuple[float, int], ...]:
        """``(upper bound in seconds, observations in that bucket)`` pairs."""
        return tuple(zip(self.bounds, self.counts, strict=True))

    @property
    def mean(self) -> float | None:
        total = self.count
        return self.sum / total if total else None

    def quantile(self, q: float) -> float | None:
        """Upper bound (seconds) of the bucket holding quantile ``q`` (0 to 1):
        the true quantile is at most this. None if empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return self.bounds[-1]  # pragma: no cover

    @property
    def p50(self) -> float | None:
        return self.quantile(0.50)

    @property
    def p90(self) -> float | None:
        return self.quantile(0.90)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)


@dataclass(frozen=True)
class Lookups:
    """Lookups counted by outcome: each one once."""

    hits: int = 0
    misses: int = 0
    bypasses: Mapping[str, int] = field(default_factory=dict)  # by ``Bypass`` reason

    @property
    def bypassed(self) -> int:
        return sum(self.bypasses.values())

    @property
    def total(self) -> int:
        """``hits + misses + bypassed``."""
        return self.hits + self.misses + self.bypassed

    @property
    def hit_rate(self) -> float:
        """``hits / total``; 0.0 before any lookup."""
        total = self.total
        return self.hits / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``hits``, ``misses``, ``bypasses`` (by reason),
        ``hit_rate``."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "bypasses": {str(k): n for k, n in self.bypasses.items()},
            "hit_rate": self.hit_rate,
        }

    def __add__(self, other: Lookups) -> Lookups:
        bypasses = dict(self.bypasses)
        for reason, n in other.bypasses.items():
            bypasses[reason] = bypasses.get(reason, 0) + n
        return Lookups(self.hits + other.hits, self.misses + other.misses, bypasses)


@dataclass(frozen=True)
class NamespaceStats:
    """The lookups of one namespace: as a whole, and per tier reached."""

    lookups: Lookups = Lookups()  # every lookup once: hit in some tier, miss, bypass
    l1: Lookups = Lookups()  # the lookups that reached L1
    redis: Lookups = Lookups()  # the lookups that reached Redis (L1 did not answer)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of what a cache has done since it was created (or forked).

    ``lookups`` counts every lookup once: ``hits`` (answered by a tier),
    ``misses`` (asked, not found: the loader ran or the default came back)
    and ``bypasses`` by reason (the cache was not asked: disabled, Redis
    out of reach). ``l1`` and ``redis`` count the lookups that reached each
    tier, so ``l1.total == lookups.total - lookups.bypassed`` with an L1, and
    ``redis.total == l1.total - l1.hits`` over Redis.
    """

    lookups: Lookups = Lookups()
    l1: Lookups = Lookups()
    redis: Lookups = Lookups()
    namespaces: Mapping[str, NamespaceStats] = field(default_factory=dict)
    loads: int = 0  # loader calls
    load_errors: int = 0  # loader calls that raised
    load_seconds: float = 0.0  # time spent in loaders
    evictions: Mapping[str, int] = field(default_factory=dict)  # "tier:cause"
    errors: Mapping[str, int] = field(default_factory=dict)  # by ``ErrorClass``
    counts: Mapping[str, int] = field(default_factory=dict)  # by ``Event``
    latency: Mapping[str, Latency] = field(default_factory=dict)  # by operation
    pending_invalidations: int = 0  # queued for retry: Redis did not take them
    oldest_pending_seconds: float = 0.0  # how long the queue has been non-empty
    gauges: Mapping[str, float] = field(default_factory=dict)  # last value, by name

    @property
    def hit_rate(self) -> float:
        """``lookups.hit_rate``: the share of lookups a tier answered."""
        return self.lookups.hit_rate

    def to_dict(self, *, latency: bool = True) -> dict[str, Any]:
        """The snapshot as plain JSON types (for ``json.dumps``, a log line,
        a dashboard): every field above, each ``Lookups`` with its
        ``hit_rate``, each latency histogram as ``counts`` (per bucket of
        ``BUCKETS``; ``latency=False`` leaves them out) and ``sum``; gauges
        that are not finite numbers are left out (JSON cannot carry them)."""
        out: dict[str, Any] = {
            "lookups": self.lookups.to_dict(),
            "l1": self.l1.to_dict(),
            "redis": self.redis.to_dict(),
            "namespaces": {
                ns: {
                    "lookups": s.lookups.to_dict(),
                    "l1": s.l1.to_dict(),
                    "redis": s.redis.to_dict(),
                }
                for ns, s in self.namespaces.items()
            },
            "loads": self.loads,
            "load_errors": self.load_errors,
            "load_seconds": self.load_seconds,
            "evictions": _plain(self.evictions),
            "errors": _plain(self.errors),
            "counts": _plain(self.counts),
            "pending_invalidations": self.pending_invalidations,
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "gauges": {
                str(name): value
                for name, value in self.gauges.items()
                if math.isfinite(value)
            },
        }
        if latency:
            out["latency"] = {
                str(op): {"counts": list(h.counts), "sum": h.sum}
                for op, h in self.latency.items()
            }
        return out


class NullMetrics:
    """Records nothing; ``snapshot()`` is always empty."""

    __slots__ = ()

    def hit(self, tier: str, namespace: str) -> None:
        pass

    def miss(self, tier: str, namespace: str) -> None:
        pass

    def bypass(self, tier: str, namespace: str, reason: str) -> None:
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


_SUM = len(BUCKETS)  # a histogram's list: one count per bucket, then the sum


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
        self._bypasses: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._loads = 0
        self._load_errors = 0
        self._load_seconds = 0.0
        self._evictions: defaultdict[str, int] = defaultdict(int)
        self._errors: defaultdict[str, int] = defaultdict(int)
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._latency: dict[str, list[float]] = {}
        self._gauges: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, tier: str, namespace: str) -> None:
        self._hits[tier][namespace] += 1

    def miss(self, tier: str, namespace: str) -> None:
        self._misses[tier][namespace] += 1

    def bypass(self, tier: str, namespace: str, reason: str) -> None:
        self._bypasses[tier, namespace, reason] += 1

    def load(self, namespace: str, seconds: float, *, failed: bool) -> None:
        self._loads += 1
        self._load_seconds += seconds
        if failed:
            self._load_errors += 1
        self.latency(Operation.LOAD, seconds)

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
                counts = self._latency.setdefault(operation, [0.0] * (_SUM + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        counts[_SUM] += seconds

    def gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value

    def snapshot(self) -> CacheStats:
        hits = {tier: dict(c) for tier, c in list(self._hits.items())}
        misses = {tier: dict(c) for tier, c in list(self._misses.items())}
        bypasses = list(self._bypasses.items())
        names = {ns for by_ns in (*hits.values(), *misses.values()) for ns in by_ns}
        names.update(ns for (_, ns, _), _ in bypasses)

        def lookups(tier: str, namespace: str) -> Lookups:
            if tier == Tier.CACHE:
                hit = sum(by_ns.get(namespace, 0) for by_ns in hits.values())
            else:
                hit = hits.get(tier, {}).get(namespace, 0)
            reasons = {
                str(reason): n
                for (t, ns, reason), n in bypasses
                if t == tier and ns == namespace
            }
            return Lookups(hit, misses.get(tier, {}).get(namespace, 0), reasons)

        namespaces = {
            ns: NamespaceStats(
                lookups(Tier.CACHE, ns), lookups(Tier.L1, ns), lookups(Tier.REDIS, ns)
            )
            for ns in sorted(names)
        }
        return CacheStats(
            lookups=_total(s.lookups for s in namespaces.values()),
            l1=_total(s.l1 for s in namespaces.values()),
            redis=_total(s.redis for s in namespaces.values()),
            namespaces=namespaces,
            loads=self._loads,
            load_errors=self._load_errors,
            load_seconds=self._load_seconds,
            evictions=_plain(self._evictions),
            errors=_plain(self._errors),
            counts=_plain(self._counts),
            latency={
                str(op): Latency(tuple(int(n) for n in c[:_SUM]), c[_SUM])
                for op, c in list(self._latency.items())
            },
            gauges=_plain(self._gauges),
        )


_N = TypeVar("_N", int, float)


def _plain(counted: Mapping[str, _N]) -> dict[str, _N]:
    """A copy keyed by plain strings (the recorder is handed enum members,
    which are strings too, but print and pickle as their enum)."""
    return {str(name): n for name, n in list(counted.items())}


def _counter() -> defaultdict[str, int]:
    return defaultdict(int)


def _total(parts: Iterable[Lookups]) -> Lookups:
    total = Lookups()
    for part in parts:
        total += part
    return total
