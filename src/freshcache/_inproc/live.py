"""The live view across processes, pure parts: the stats snapshot a process
publishes (and its parsing), the totals over processes, what ``inspect``
returns, and the lease token that names its holder.

A snapshot is one JSON object (orjson), written with one SET under
``prefix:!stats:<process id>`` every ``publish_stats`` seconds with a TTL of
three periods::

    {"v": 1, "process": "web-1:4242:3fa9c1", "started": 1765000000.0,
     "at": 1765000012.5, "library": "0.1.0", "head": "app:v3:",
     "period": 5.0, "l1_entries": 812, "bus_connected": true,
     "watermark_age": 0.021, "bus_lag": 0.0004,
     "stats": {... CacheStats without its latency histograms ...}}

Times are the Redis server's clock (seconds since the epoch); ages are
seconds; ``null`` means unknown (no watermark yet, no ping back yet). Reading
never trusts the bytes: anything that is not such an object (foreign bytes,
a newer format, wrong types) is reported as unreadable, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from freshcache._core.sentinels import MISS
from freshcache._core.streams import WriteBehindStats
from freshcache.metrics import CacheStats, Lookups, NamespaceStats

FORMAT: Final = 1
REQUESTS_PER_TICK: Final = 4  # inspect requests one process answers per tick
REPLY_TTL: Final = 30.0  # seconds an inspect reply stays in Redis
STATS_TTL_PERIODS: Final = 3  # a snapshot lives this many publishing periods


def process_id(host: str, pid: int, token: str) -> str:
    """``host:pid:token``: who published a snapshot (``token``: a few random
    hex digits, new in a forked child, so a reused pid is another process)."""
    return f"{host}:{pid}:{token}"


# -- lease tokens ----------------------------------------------------------


def lease_token(holder: str, now: float, random_hex: str) -> str:
    """A fill lease's token: unique (``random_hex``), and naming the process
    that took it and when (ms, the server's clock), for ``inspect``."""
    return f"{holder}/{int(now * 1000)}/{random_hex}"


def lease_holder(token: bytes | str) -> tuple[str, float] | None:
    """The holder and the time (seconds) in a lease token; None for a token
    that does not name them (an older release's, or foreign bytes)."""
    if isinstance(token, bytes):
        token = token.decode("utf-8", "replace")
    holder, _, rest = token.rpartition("/")
    holder, _, taken = holder.rpartition("/")
    if not holder or not taken.isdigit() or not rest:
        return None
    return holder, int(taken) / 1000


def write_mark_time(mark: bytes | str) -> float | None:
    """When the write-behind write a pending mark names was queued (its
    stream entry id ``ms-seq``), in seconds; None for a placeholder (a
    cluster's put in progress, ``~...``) or anything else."""
    if isinstance(mark, bytes):
        mark = mark.decode("utf-8", "replace")
    ms, dash, seq = mark.partition("-")
    if not dash or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms) / 1000


# -- what inspect returns --------------------------------------------------


@dataclass(frozen=True)
class EnvelopeHeader:
    """The header of the envelope stored for a key (never its value).

    Times are seconds since the epoch on the Redis server's clock; a
    ``fresh_until`` of None means "never stale", a ``stale_until`` of None
    "no stale window". ``recompute_seconds`` is how long the loader took
    (early refresh uses it). ``check`` is ``"crc-32"``, ``"hmac"`` (verified
    with the cache's secret) or ``"unverified"`` (read by someone without
    the secret, or damaged)."""

    codec: str
    compressed: bool
    created_at: float
    fresh_until: float | None
    stale_until: float | None
    recompute_seconds: float
    size: int
    check: str


@dataclass(frozen=True)
class L1View:
    """A process's in-process (L1) entry for a key (never its value):
    ``present`` False when it holds none. ``expires_in``: seconds until L1
    drops it (None: no expiry); ``fresh`` whether it is fresh now."""

    present: bool
    created_at: float | None = None
    fresh_until: float | None = None
    stale_until: float | None = None
    expires_in: float | None = None
    fresh: bool | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None  # a reply that could not be read


@dataclass(frozen=True)
class KeyInfo:
    """What ``inspect(key)`` found for a key, in Redis and in L1.

    ``full_key`` is the key in Redis (under its namespace version
    ``namespace_version``). ``in_redis``: Redis holds bytes under it;
    ``redis_ttl`` seconds until Redis drops them (None: no expiry).
    ``header`` is their envelope header; ``undecodable`` says why this cache
    would not use them (``"checksum"``, ``"magic"``, ...), None when it
    would. ``lease_holder`` and ``lease_age`` name the process filling the
    key now and how long it has held the lease (the holder is ``"unknown"``
    for a lease an older release took); ``write_pending`` is the id of the
    newest write-behind write of the key not yet in the database, with its
    age. ``l1`` is this process's L1 entry (None: no L1); ``processes`` the
    L1 entries other processes reported (``freshcache inspect``). ``value``
    is the decoded value only when asked (``with_value=True``), else
    ``MISS``. ``error``: Redis could not be asked (the rest is then empty).
    ``read_at``: when (the Redis server's clock, as this process estimates
    it), so that ages can be shown.
    """

    key: str
    full_key: str
    namespace: str
    namespace_version: int | None = None
    in_redis: bool = False
    redis_ttl: float | None = None
    header: EnvelopeHeader | None = None
    undecodable: str | None = None
    tags: tuple[str, ...] = ()
    lease_holder: str | None = None
    lease_age: float | None = None
    lease_ttl: float | None = None
    write_pending: str | None = None
    write_pending_age: float | None = None
    l1: L1View | None = None
    processes: Mapping[str, L1View] = field(default_factory=dict)
    value: Any = MISS
    error: str | None = None
    read_at: float = 0.0  # when it was read (the Redis server's clock)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``value`` left out unless it was asked for)."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("header", "l1", "processes", "value")
        }
        out["tags"] = list(self.tags)
        out["header"] = None if self.header is None else vars(self.header).copy()
        out["l1"] = None if self.l1 is None else view_dict(self.l1)
        out["processes"] = {p: view_dict(v) for p, v in self.processes.items()}
        if self.value is not MISS:
            out["value"] = self.value
        return out


def view_dict(view: L1View) -> dict[str, Any]:
    data = {k: v for k, v in vars(view).items() if v is not None}
    data["tags"] = list(view.tags)
    return data


def parse_view(data: bytes | str) -> L1View:
    """A process's inspect reply; never raises (garbage: ``error`` set)."""
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("present"), bool):
            raise ValueError("not a reply")
        tags = raw.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("bad tags")
        numbers = {}
        for name in ("created_at", "fresh_until", "stale_until", "expires_in"):
            value = raw.get(name)
            if value is not None and not _number(value):
                raise ValueError(name)
            numbers[name] = value
        fresh = raw.get("fresh")
        return L1View(
            raw["present"], **numbers, tags=tuple(tags),
            fresh=fresh if isinstance(fresh, bool) else None,
        )  # fmt: skip
    except Exception:
        return L1View(False, error="unreadable reply")


def finite(value: float) -> float | None:
    """None for +-inf (JSON has no infinity; "never" reads as null)."""
    return None if math.isinf(value) or math.isnan(value) else value


# -- the published snapshot -------------------------------------------------


@dataclass(frozen=True)
class ProcessStats:
    """One process's published snapshot (see the module docstring)."""

    process: str
    started_at: float
    published_at: float
    library_version: str
    head: str
    period: float
    stats: CacheStats
    l1_entries: int | None = None
    bus_connected: bool | None = None
    watermark_age: float | None = None
    bus_lag: float | None = None


@dataclass(frozen=True)
class LiveStats:
    """Every live process of a prefix, their total, and its write-behind
    queues, as ``cache.live.stats()`` read them from Redis. ``unreadable``
    names the snapshots that could not be read (foreign or garbled bytes)."""

    processes: Sequence[ProcessStats]
    total: CacheStats
    queues: Mapping[str, WriteBehindStats] = field(default_factory=dict)
    unreadable: Sequence[str] = ()
    read_at: float = 0.0


def stats_dict(stats: CacheStats) -> dict[str, Any]:
    """``stats`` as plain JSON (the latency histograms left out)."""
    return stats.to_dict(latency=False)


def encode_snapshot(snapshot: ProcessStats) -> bytes:
    return orjson.dumps(
        {
            "v": FORMAT,
            "process": snapshot.process,
            "started": snapshot.started_at,
            "at": snapshot.published_at,
            "library": snapshot.library_version,
            "head": snapshot.head,
            "period": snapshot.period,
            "l1_entries": snapshot.l1_entries,
            "bus_connected": snapshot.bus_connected,
            "watermark_age": snapshot.watermark_age,
            "bus_lag": snapshot.bus_lag,
            "stats": stats_dict(snapshot.stats),
        }
    )


def process_dict(snapshot: ProcessStats) -> dict[str, Any]:
    """The JSON form (``freshcache stats --json``): the published fields."""
    out: dict[str, Any] = orjson.loads(encode_snapshot(snapshot))
    del out["v"]
    return out


class _BadError(Exception):
    pass


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _BadError
    return value


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _BadError
    return {str(k): _count(v) for k, v in value.items()}


def _floats(value: object) -> dict[str, float]:
    if not isinstance(value, dict) or not all(_number(v) for v in value.values()):
        raise _BadError
    return {str(k): float(v) for k, v in value.items()}


def _read_lookups(value: object) -> Lookups:
    if not isinstance(value, dict):
        raise _BadError
    return Lookups(
        _count(value.get("hits", 0)),
        _count(value.get("misses", 0)),
        _counts(value.get("bypasses", {})),
    )


def _read_stats(raw: object) -> CacheStats:
    if not isinstance(raw, dict):
        raise _BadError
    namespaces = raw.get("namespaces", {})
    if not isinstance(namespaces, dict):
        raise _BadError
    seconds = raw.get("load_seconds", 0.0)
    oldest = raw.get("oldest_pending_seconds", 0.0)
    if not _number(seconds) or not _number(oldest):
        raise _BadError
    return CacheStats(
        lookups=_read_lookups(raw.get("lookups", {})),
        l1=_read_lookups(raw.get("l1", {})),
        redis=_read_lookups(raw.get("redis", {})),
        namespaces={
            str(ns): NamespaceStats(
                _read_lookups(s.get("lookups", {})),
                _read_lookups(s.get("l1", {})),
                _read_lookups(s.get("redis", {})),
            )
            if isinstance(s, dict)
            else _fail()
            for ns, s in namespaces.items()
        },
        loads=_count(raw.get("loads", 0)),
        load_errors=_count(raw.get("load_errors", 0)),
        load_seconds=float(seconds),
        evictions=_counts(raw.get("evictions", {})),
        errors=_counts(raw.get("errors", {})),
        counts=_counts(raw.get("counts", {})),
        pending_invalidations=_count(raw.get("pending_invalidations", 0)),
        oldest_pending_seconds=float(oldest),
        gauges=_floats(raw.get("gauges", {})),
    )


def _fail() -> NamespaceStats:
    raise _BadError


def _optional(raw: dict[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if not _number(value):
        raise _BadError
    return float(value)


def parse_snapshot(data: bytes | str) -> ProcessStats | None:
    """The snapshot in ``data``; None for anything else. Never raises."""
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != FORMAT:
            return None
        process, library, head = raw["process"], raw["library"], raw["head"]
        if not all(isinstance(s, str) for s in (process, library, head)):
            return None
        connected = raw.get("bus_connected")
        entries = raw.get("l1_entries")
        started, at, period = (_optional(raw, n) for n in ("started", "at", "period"))
        if started is None or at is None or period is None:
            return None
        return ProcessStats(
            process=process,
            started_at=started,
            published_at=at,
            library_version=library,
            head=head,
            period=period,
            stats=_read_stats(raw["stats"]),
            l1_entries=None if entries is None else _count(entries),
            bus_connected=connected if isinstance(connected, bool) else None,
            watermark_age=_optional(raw, "watermark_age"),
            bus_lag=_optional(raw, "bus_lag"),
        )
    except Exception:  # foreign bytes: unreadable, never an exception
        return None


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def total(processes: Sequence[ProcessStats]) -> CacheStats:
    """The sum of the processes' counters. Gauges: the largest value of each
    (the worst process: a backlog, an age)."""
    out = CacheStats()
    for p in processes:
        s = p.stats
        names = dict(out.namespaces)
        for ns, part in s.namespaces.items():
            mine = names.get(ns, NamespaceStats())
            names[ns] = NamespaceStats(
                mine.lookups + part.lookups, mine.l1 + part.l1, mine.redis + part.redis
            )
        gauges = dict(out.gauges)
        for name, value in s.gauges.items():
            gauges[name] = max(gauges.get(name, value), value)
        out = CacheStats(
            lookups=out.lookups + s.lookups,
            l1=out.l1 + s.l1,
            redis=out.redis + s.redis,
            namespaces=dict(sorted(names.items())),
            loads=out.loads + s.loads,
            load_errors=out.load_errors + s.load_errors,
            load_seconds=out.load_seconds + s.load_seconds,
            evictions=_add(out.evictions, s.evictions),
            errors=_add(out.errors, s.errors),
            counts=_add(out.counts, s.counts),
            pending_invalidations=out.pending_invalidations + s.pending_invalidations,
            oldest_pending_seconds=max(
                out.oldest_pending_seconds, s.oldest_pending_seconds
            ),
            gauges=gauges,
        )
    return out
