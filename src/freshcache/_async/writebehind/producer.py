"""Write-behind: ``put`` updates the cache and queues the write, durably, at once;
a worker (``freshcache worker``) applies the queue to the database.

``put`` runs one Lua script: it appends the write to its partition's Redis
stream (partitioned by key hash, so writes to one key stay in order) and
stores the envelope ``set`` would store, revoking any fill lease, and
publishes the key on the bus so every process drops it from its L1. The
stream entry id is the write's version. ``put`` returns once Redis has
answered, which with ``appendfsync always`` is after the fsync, and with
``replicas=N`` after ``WAIT N``. It raises rather than report a write it
could not make durable: Redis down, the backlog full, out of memory.
On a Redis Cluster the script's work is done in single-slot steps
(``AsyncStreamStore._cluster_enqueue``); ``put_many`` is then all or
nothing per partition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from freshcache._async.writebehind.worker import record_gauges
from freshcache._concurrency import AsyncLoopOwner, asleep
from freshcache._core.entry import px
from freshcache._core.logs import LogEvent
from freshcache._core.persistence import Verdict, judge
from freshcache._core.sentinels import (
    MAX_TIMEOUT,
    TTL,
    UNSET,
    Unset,
    check_number,
    stale_seconds,
    ttl_seconds,
)
from freshcache._core.streams import (
    MAX_PARTITIONS,
    MAX_REPLICAS,
    Enqueued,
    WriteBehindStats,
    encode_value,
    partition_of,
    version_of,
)
from freshcache._inproc.logs import Log
from freshcache.errors import UnsafeRedisError
from freshcache.metrics import ErrorClass, Event, Metrics, Operation
from freshcache.sinks.base import Sink
from freshcache.tracing import Tracing

if TYPE_CHECKING:
    from freshcache._async.redis.connect import Endpoint
    from freshcache._async.writebehind.worker import AsyncWriteBehindWorker

_log = Log("writebehind", tier="writebehind")
_FLUSH_POLL = (0.005, 0.1)  # seconds: flush polls from the first to the second


class Prepared(NamedTuple):
    """What the cache would store for one write, and where."""

    full: str  # the full key under its namespace's current version
    envelope: bytes | None  # None: not cacheable
    hard: float | None  # the entry's hard TTL in seconds (None: none)
    head: str  # the cache's prefix and version
    namespace: str  # the key's namespace
    base: str  # the full key under namespace version 0


@dataclass(frozen=True)
class WriteBehindHost:
    """What write-behind needs of its cache (``AsyncCache.write_behind`` makes it).

    ``entry(key, value, ttl, stale_ttl)``: where and what ``set`` would
    store (``Prepared``); ``notice``:
    the bus channel and message that make every other process drop the full
    keys from its L1; ``written``: drop them from this process's L1.
    """

    endpoint: Endpoint | None  # None: the cache has no Redis
    owner: AsyncLoopOwner  # the cache's: its event loop, its process
    prefix: str
    metrics: Metrics
    entry: Callable[[str, Any, TTL | Unset, TTL | Unset], Awaitable[Prepared]]
    notice: Callable[[list[str]], tuple[str, bytes]]
    written: Callable[[list[str]], None]
    tracing: Tracing | None = None  # the cache's: its workers' batch spans


class AsyncWriteBehind:
    """Write-behind over an ``AsyncCache`` on Redis: made by
    ``AsyncCache.write_behind``.

    ``name`` names the queue (its streams live under ``prefix:!wb:name:``,
    outside the cache's keys: ``clear()`` and a new ``version`` never touch
    them). ``partitions`` is fixed for a queue. ``max_backlog`` bounds the
    entries not yet applied (split evenly over partitions): past it ``put``
    raises ``BacklogFullError``. ``ttl``/``stale_ttl`` are the cache
    entry's, as in ``set``.

    On first use it reads the server's settings: a ``maxmemory-policy``
    that can evict the queue raises ``UnsafeRedisError`` (unless
    ``allow_eviction=True``); AOF not at ``appendfsync always`` is logged
    as a warning (``durable`` is then False). It reads them again every
    ``recheck`` seconds while it is used: a policy changed under it to one
    that evicts makes ``put`` raise ``UnsafeRedisError`` from then on.
    """

    def __init__(
        self,
        host: WriteBehindHost,
        *,
        name: str = "default",
        partitions: int = 4,
        max_backlog: int = 100_000,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        allow_eviction: bool = False,
        replicas: int = 0,
        replica_timeout: float = 1.0,
        timeout: float = 1.0,
        recheck: float = 5.0,
    ) -> None:
        endpoint = host.endpoint
        if endpoint is None:
            raise ValueError("write-behind needs a Redis cache (a URL or a client)")
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            raise ValueError(f"name must be letters, digits, '_', '-', '.': {name!r}")
        check_number(partitions, "partitions", low=1, high=MAX_PARTITIONS, integer=True)
        check_number(max_backlog, "max_backlog", low=partitions, integer=True)
        check_number(replicas, "replicas", high=MAX_REPLICAS, integer=True)
        for seconds, what in (
            (replica_timeout, "replica_timeout"), (timeout, "timeout"),
            (recheck, "recheck"),
        ):  # fmt: skip
            check_number(seconds, what, low_open=True, high=MAX_TIMEOUT)
        if ttl is not UNSET:
            ttl_seconds(ttl)
        if stale_ttl is not UNSET:
            stale_seconds(stale_ttl)
        self._recheck = recheck
        self._checked_at = -math.inf
        self._host = host
        self._metrics = host.metrics
        self.endpoint = endpoint  # where its Redis is (no password in its repr)
        self.prefix = host.prefix
        self.name = name
        self.partitions = partitions
        self._limit = -(-max_backlog // partitions)
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._allow_eviction = allow_eviction
        self._replicas = replicas
        self._replica_wait_ms = px(replica_timeout)
        from freshcache._async.redis.streams import AsyncStreamStore  # needs redis

        self._store = AsyncStreamStore(
            endpoint,
            owner=host.owner,
            prefix=self.prefix,
            name=name,
            partitions=partitions,
            timeout=timeout + (replica_timeout if replicas else 0.0),
        )
        self.verdict: Verdict | None = None

    @property
    def durable(self) -> bool:
        """True once checked: the server fsyncs every write (AOF ``always``)."""
        return self.verdict is not None and self.verdict.durable

    async def start(self) -> Verdict:
        """Check the server's settings and create the streams' group (``put``
        does it on first use). Raises ``UnsafeRedisError`` on a server that
        may evict the queue."""
        verdict = await self._check()
        for warning in verdict.warnings:
            _log.warning(
                LogEvent.WRITEBEHIND_SETTINGS, "write-behind %r: %s", self.name,
                warning, repeat=False,
            )  # fmt: skip
        await self._store.prepare()
        self.verdict = verdict
        return verdict

    async def _check(self) -> Verdict:
        """Judge the server's settings now; raise ``UnsafeRedisError`` if they
        may evict the queue."""
        verdict = judge(
            await self._store.settings(),
            allow_eviction=self._allow_eviction,
            replicas=self._replicas,
        )
        self._checked_at = time.monotonic()
        if verdict.refusals:
            self._metrics.error(ErrorClass.WRITEBEHIND.detail("unsafe_settings"))
            raise UnsafeRedisError(
                "freshcache will not queue writes: "
                + "; ".join(verdict.refusals)
                + " (write_behind(allow_eviction=True) overrides this)"
            )
        return verdict

    async def put(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> int:
        """Cache ``value`` under ``key`` and queue it for the database; returns
        the write's version once the write is durable. Raises ``StoreError``
        (``BacklogFullError`` when the queue is full) if it could not be
        made: then neither the cache nor the queue changed, except when the
        reply was lost (a timeout) or ``WAIT`` for replicas fell short: the
        write may then be queued."""
        versions = await self.put_many({key: value}, ttl=ttl, stale_ttl=stale_ttl)
        return versions[key]

    async def put_many(
        self,
        values: Mapping[str, Any],
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> dict[str, int]:
        """``put`` for several keys in one script, all or nothing (and one
        fsync): the version of each key once all are durable. On a Redis
        Cluster, all or nothing per partition (a failure after the backlog
        check can leave other partitions' writes queued while it raises)."""
        if isinstance(values, str) or not isinstance(values, Mapping):
            raise TypeError("put_many takes a mapping of keys to values")
        payloads = {k: encode_value(v) for k, v in values.items()}  # TypeError first
        if not payloads:
            return {}
        if self.verdict is None:
            await self.start()
        elif time.monotonic() - self._checked_at >= self._recheck:
            verdict = await self._check()  # raises if the queue may be evicted
            if self.verdict.durable and not verdict.durable:
                _log.warning(
                    LogEvent.WRITEBEHIND_SETTINGS, "write-behind %r: %s",
                    self.name, "; ".join(verdict.warnings), repeat=False,
                )  # fmt: skip
            self.verdict = verdict
        started = time.perf_counter()
        soft = self._ttl if ttl is UNSET else ttl
        stale = self._stale_ttl if stale_ttl is UNSET else stale_ttl
        writes: list[Enqueued] = []
        for key, value in values.items():
            at = await self._host.entry(key, value, soft, stale)
            writes.append(Enqueued(
                partition_of(key, self.partitions), at.full, at.envelope or b"",
                0 if at.hard is None else px(at.hard), key, payloads[key],
                at.head, at.namespace, at.base,
            ))  # fmt: skip
        fulls = [w.data_key for w in writes]
        try:
            ids = await self._store.enqueue(
                writes,
                self._limit,
                self._host.notice(fulls),
                self._replicas,
                self._replica_wait_ms,
            )
        except Exception as exc:
            self._metrics.error(
                ErrorClass.WRITEBEHIND.detail(getattr(exc, "kind", "error"))
            )
            raise
        finally:  # after the script, which may have run even if we got no reply
            self._host.written(fulls)
        for _ in ids:
            self._metrics.count(Event.WRITEBEHIND_ENQUEUED)
        self._metrics.latency(Operation.WRITEBEHIND_PUT, time.perf_counter() - started)
        return {key: version_of(i) for key, i in zip(values, ids, strict=True)}

    async def flush(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until every write enqueued before this call (by any process)
        has been applied or dead-lettered. Needs a running worker; raises
        ``TimeoutError`` after ``timeout`` seconds (None: wait forever)."""
        upto = await self._store.last_ids()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _FLUSH_POLL[0]
        while await self._store.any_left(upto):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"write-behind {self.name!r}: writes still queued after "
                    f"{timeout} s (is a worker running?)"
                )
            await asleep(delay)
            delay = min(delay * 2, _FLUSH_POLL[1])

    async def stats(self) -> WriteBehindStats:
        """Backlog, pending, lag, and the workers' totals (read from Redis);
        also kept in ``cache.stats().gauges`` until the next call."""
        stats = await self._store.stats()
        record_gauges(self._metrics, stats)
        return stats

    async def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The oldest ``count`` dead-lettered entries: id and fields (the key
        ``k``, JSON value ``v``, origin ``stream`` and ``id``, ``reason``)."""
        return await self._store.dead_lettered(count)

    async def remove(self, *, force: bool = False) -> None:
        """Delete the queue from Redis (its streams, dead letters and totals),
        for tests and demos. Raises ``ValueError`` if writes are still queued,
        unless ``force=True`` (which loses them)."""
        if not force and await self._store.backlog():
            raise ValueError(
                f"write-behind {self.name!r} still holds writes; flush() first "
                "or pass force=True to lose them"
            )
        await self._store.remove()
        self.verdict = None  # a later put recreates the group

    def worker(self, sink: Sink, **options: Any) -> AsyncWriteBehindWorker:
        """A worker for this queue in this process, counting into this cache's
        stats and tracing through its ``tracing`` (``freshcache worker`` runs
        one in a process of its own)."""
        from freshcache._async.writebehind.worker import AsyncWriteBehindWorker

        options.setdefault("tracing", self._host.tracing)

        return AsyncWriteBehindWorker(
            self.endpoint,
            sink,
            prefix=self.prefix,
            name=self.name,
            partitions=self.partitions,
            metrics=self._metrics,
            **options,
        )

    async def aclose(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        flush: bool = True,
    ) -> None:
        """Flush (see ``flush``; ``flush=False`` skips it), then close the
        queue's connections. The cache stays open."""
        try:
            if flush and self.verdict is not None:
                await self.flush(timeout)
        finally:
            await self._store.aclose()

    async def __aenter__(self) -> AsyncWriteBehind:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
