"""The write-behind worker: applies the queue to the database, losing nothing.

One loop, one batch at a time:

1. reclaim entries idle in any consumer's pending list for ``claim_idle``
   (a dead worker's, or ours after a failed apply) with ``XAUTOCLAIM``;
   an entry delivered more than ``max_deliveries`` times without an outcome
   (workers died holding it) gets a last try alone, and is dead-lettered
   only if a worker dies during that try too (a write that crashes
   workers, not workers killed while the database was slow);
2. read new entries with ``XREADGROUP`` (blocking up to ``block`` seconds);
3. coalesce to the newest write per key and apply the batch through the
   sink, in one transaction (a version-guarded upsert);
4. only after the commit, ``XACK`` and ``XDEL`` the batch's entries (one
   Redis transaction).

A crash anywhere leaves the entries pending; another worker (or this one
restarted) reclaims and applies them again, which the version guard makes
harmless. A batch that fails with a permanent error (``sink.is_permanent``)
is split to find the culprits, which go to the dead-letter stream after that
one attempt. A transient failure (the database down) is retried for as long
as it lasts, and its attempts do not count as deliveries (``XCLAIM
RETRYCOUNT 0``): an outage never dead-letters an acknowledged write.

``stop()`` (the CLI calls it on SIGTERM) lets the batch in hand finish.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from freshcache._concurrency import AsyncFlag, ainvoke
from freshcache._core.logs import LogEvent, error_name
from freshcache._core.sentinels import MAX_TIMEOUT, MAX_TTL_SECONDS, check_number
from freshcache._core.streams import (
    MAX_PARTITIONS,
    Malformed,
    Outcome,
    WorkerTotals,
    Write,
    WriteBehindStats,
    after_failure,
    coalesce,
    decode_entry,
    too_many_deliveries,
)
from freshcache._inproc.logs import Log
from freshcache.errors import StoreError
from freshcache.metrics import ErrorClass, Event, Gauge, Metrics, NullMetrics, Operation
from freshcache.sinks.base import Sink
from freshcache.tracing import (
    Attribute,
    AttributeValue,
    BatchOutcome,
    NullTracing,
    Span,
    SpanName,
    Tracing,
)

if TYPE_CHECKING:
    from freshcache._async.redis.connect import Endpoint, Source
    from freshcache._async.redis.streams import RawEntry

_FIRST_PAUSE = 0.05  # seconds
GAUGE_EVERY = 1.0  # seconds between refreshes of the queue's gauges


class AsyncWriteBehindWorker:
    """Reads a write-behind queue with a consumer group and applies it via ``sink``.

    ``on_commit``, if given, is called right after each database commit and
    before its acknowledgement (tests use it to crash in that window).
    ``tracing`` opens a ``freshcache.writebehind.batch`` span around each
    batch: the sink's apply (its database spans are children) and the
    acknowledgement.
    """

    def __init__(
        self,
        source: Source | Endpoint,
        sink: Sink,
        *,
        prefix: str = "fc",
        name: str = "default",
        partitions: int = 4,
        consumer: str | None = None,
        batch_size: int = 500,
        block: float = 1.0,
        claim_idle: float = 10.0,
        max_deliveries: int = 5,
        timeout: float = 2.0,
        metrics: Metrics | None = None,
        on_commit: Callable[[], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        check_number(partitions, "partitions", low=1, high=MAX_PARTITIONS, integer=True)
        check_number(batch_size, "batch_size", low=1, high=1_000_000, integer=True)
        check_number(
            max_deliveries, "max_deliveries", low=1, high=1_000_000, integer=True
        )
        check_number(block, "block", high=MAX_TIMEOUT)
        check_number(claim_idle, "claim_idle", low_open=True, high=MAX_TTL_SECONDS)
        check_number(timeout, "timeout", low_open=True, high=MAX_TIMEOUT)
        from freshcache._async.redis.streams import AsyncStreamStore  # needs redis

        self._store = AsyncStreamStore(
            source,
            prefix=prefix,
            name=name,
            partitions=partitions,
            timeout=timeout + block,
            max_connections=2,
        )
        self._sink = sink
        self.consumer = consumer or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self._batch_size = batch_size
        self._block_ms = int(block * 1000)
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._max_deliveries = max_deliveries
        self._metrics: Metrics = metrics or NullMetrics()
        self._stopping = AsyncFlag()
        self._log = Log("worker", tier="writebehind")
        self._prepared = False
        self.totals = WorkerTotals()
        self._pause = _FIRST_PAUSE  # after a failed apply, grows to claim_idle
        self._gauged_at = -GAUGE_EVERY
        self._on_commit = on_commit
        self._name = name
        self._tracing: Tracing = NullTracing() if tracing is None else tracing

    def stop(self) -> None:
        """Stop after the batch in hand (safe from a signal handler)."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> WorkerTotals:
        """Apply batches until ``stop()`` (or, with ``until_idle``, until a
        read finds nothing). Redis or database failures are retried with a
        pause; they never end the loop."""
        pause = 0.05
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
                pause = 0.05
            except StoreError as exc:
                kind = ErrorClass.WRITEBEHIND_WORKER.detail(exc.kind)
                self._log.warning(
                    LogEvent.WORKER_REDIS_FAILED,
                    "Redis failed: %s; retried",
                    exc,
                    tier="redis",
                    error_class=kind,
                )
                self._metrics.error(kind)
                await self._stopping.wait(pause)
                pause = min(pause * 2, 1.0)
                continue
            if until_idle and handled == 0:
                break
        await self._store.forget_consumer(self.consumer)
        return self.totals

    async def run_once(self) -> int:
        """One batch: reclaimed entries first, else new ones. Returns how many
        entries it handled (0: the queue had nothing for us)."""
        if not self._prepared:
            await self._store.prepare()
            self._prepared = True
        writes: list[Write] = []
        deliveries: dict[str, int] = {}  # of reclaimed entries (new ones: 1)
        reclaimed = await self._store.reclaim(
            self.consumer, self._claim_idle_ms, self._batch_size
        )
        if reclaimed:
            self.totals.redelivered += len(reclaimed)
            await self._store.count("redelivered", len(reclaimed))
        for raw, delivered in reclaimed:
            self._metrics.count(Event.WRITEBEHIND_REDELIVERED)
            item = _decode(raw)
            if isinstance(item, Malformed):
                await self._dead_letter(item, f"malformed entry: {item.reason}")
            elif too_many_deliveries(delivered, self._max_deliveries):
                await self._last_try(item, delivered)
            else:
                deliveries[item.entry_id] = delivered
                writes.append(item)
        if not reclaimed:
            block = 0 if self._stopping.is_set() else self._block_ms
            for raw in await self._store.read_new(
                self.consumer, self._batch_size, block
            ):
                item = _decode(raw)
                if isinstance(item, Malformed):
                    await self._dead_letter(item, f"malformed entry: {item.reason}")
                else:
                    writes.append(item)
        if writes:
            await self._apply(writes, deliveries)
        if time.monotonic() - self._gauged_at >= GAUGE_EVERY:
            self._gauged_at = time.monotonic()
            await self.stats()
        return len(reclaimed) + len(writes)

    async def _apply(self, writes: list[Write], deliveries: dict[str, int]) -> None:
        batch = coalesce(writes)
        attributes: dict[str, AttributeValue] = {
            Attribute.QUEUE: self._name,
            Attribute.BATCH_COUNT: len(writes),
            Attribute.APPLIED: len(batch),
        }
        with self._tracing.span(SpanName.WRITEBEHIND_BATCH, attributes) as span:
            applied = await self._apply_batch(writes, batch, deliveries, span)
        if not applied:  # left pending: reclaimed after claim_idle; back off
            await self._stopping.wait(self._pause)
            self._pause = min(self._pause * 2, self._claim_idle_ms / 1000)

    async def _apply_batch(
        self, writes: list[Write], batch: list[Write], deliveries: dict[str, int],
        span: Span,
    ) -> bool:  # fmt: skip
        """Apply ``batch`` (``writes`` coalesced) and acknowledge ``writes``;
        False when the sink failed transiently (the caller backs off)."""
        try:
            await ainvoke(lambda: self._sink.apply(batch))
        except Exception as exc:
            self.totals.failures += 1
            self._metrics.error(ErrorClass.WRITEBEHIND_SINK)
            span.record_error(exc)
            if self._sink.is_permanent(exc):
                span.set_attribute(Attribute.BATCH_OUTCOME, BatchOutcome.ISOLATED)
                await self._isolate(writes, deliveries)
                return True
            span.set_attribute(Attribute.BATCH_OUTCOME, BatchOutcome.RETRY)
            # the class only: a database's message can quote the row
            self._log.warning(
                LogEvent.SINK_FAILED,
                "sink failed, will retry: %s",
                _kind(exc),
                tier="sink",
                namespace=_namespace(writes),
                error_class=ErrorClass.WRITEBEHIND_SINK.value,
            )
            await self._store.forgive(writes, self.consumer)  # not their fault
            return False
        self._pause = _FIRST_PAUSE
        self._committed()
        await self._acknowledge(writes, len(batch))
        span.set_attribute(Attribute.BATCH_OUTCOME, BatchOutcome.APPLIED)
        return True

    async def _isolate(self, writes: list[Write], deliveries: dict[str, int]) -> None:
        """A batch failed permanently: apply each key's writes alone, newest
        first, to dead-letter exactly the writes that cannot be applied."""
        by_key: dict[str, list[Write]] = {}
        for write in writes:
            by_key.setdefault(write.key, []).append(write)
        for group in by_key.values():
            group.sort(key=lambda w: w.version, reverse=True)
            for index, write in enumerate(group):
                try:
                    await ainvoke(lambda w=write: self._sink.apply([w]))  # type: ignore[misc]
                except Exception as exc:
                    await self._after_failure(write, exc, deliveries)
                    if self._sink.is_permanent(exc):
                        continue  # try the next older write of this key
                    break  # transient: the rest stay pending, retried later
                self._committed()
                await self._acknowledge(group[index:], 1)
                break

    async def _last_try(self, write: Write, delivered: int) -> None:
        """Delivered more than ``max_deliveries`` times, each time without an
        outcome: a worker died holding it, each time. The write may crash
        workers, or workers were killed while the database was slow (a
        locked table, a restart loop): apply it alone, once, under a mark in
        Redis. Only if a worker dies during that try too (the mark is still
        there at the next reclaim) is it dead-lettered: an outage never is."""
        if not await self._store.last_try(write.entry_id):
            await self._dead_letter(
                write, f"a worker died applying it alone, after {delivered - 1} "
                "deliveries without an outcome",
            )  # fmt: skip
            await self._store.last_try_done(write.entry_id)
            return
        self._metrics.count(Event.WRITEBEHIND_LAST_TRY)
        await self._isolate([write], {write.entry_id: delivered})
        await self._store.last_try_done(write.entry_id)

    async def _after_failure(
        self, write: Write, exc: Exception, deliveries: dict[str, int]
    ) -> None:
        outcome = after_failure(permanent=self._sink.is_permanent(exc))
        if outcome is Outcome.DEAD_LETTER:
            await self._dead_letter(write, _reason(exc), shown=_kind(exc))
        else:  # an outage is not the entry's fault: this try does not count
            await self._store.forgive([write], self.consumer)

    def _committed(self) -> None:
        """Just after a database commit, before its XACK."""
        if self._on_commit is not None:
            self._on_commit()

    async def _acknowledge(self, writes: Sequence[Write], applied: int) -> None:
        await self._store.acknowledge(writes, len(writes))
        self.totals.batches += 1
        self.totals.applied += len(writes)
        self.totals.coalesced += len(writes) - applied
        now = time.time()
        for write in writes:
            self._metrics.count(Event.WRITEBEHIND_APPLIED)
            self._metrics.latency(
                Operation.WRITEBEHIND_LAG, max(0.0, now - _enqueued(write))
            )

    async def _dead_letter(
        self, item: Write | Malformed, reason: str, *, shown: str | None = None
    ) -> None:
        """Move ``item`` to the dead letters with ``reason`` (kept in Redis,
        beside the entry); the log shows ``shown`` (by default the reason)."""
        self._log.warning(
            LogEvent.DEAD_LETTERED,
            "dead-lettering entry %s of %s: %s",
            item.entry_id,
            item.stream,
            reason if shown is None else shown,
            namespace=item.namespace if isinstance(item, Write) else None,
            error_class=ErrorClass.WRITEBEHIND_SINK.value,
            repeat=False,  # each one: the data is set aside
        )
        await self._store.dead_letter(item, reason)
        self.totals.dead_lettered += 1
        self._metrics.count(Event.WRITEBEHIND_DEAD_LETTERED)

    async def stats(self) -> WriteBehindStats:
        """The queue's backlog, pending, lag and every worker's totals; also
        recorded as gauges in the worker's metrics (``cache.stats().gauges``
        for ``wb.worker(...)``)."""
        stats = await self._store.stats()
        record_gauges(self._metrics, stats)
        return stats

    async def aclose(self) -> None:
        await self._store.aclose()


def _decode(raw: RawEntry) -> Write | Malformed:
    stream, entry_id, fields = raw
    return decode_entry(stream, entry_id, fields)


def _enqueued(write: Write) -> float:
    return write.version / 1_000_000_000


def _reason(exc: BaseException) -> str:
    """Why a write was dead-lettered, stored with it: the message too."""
    return f"{type(exc).__name__}: {exc}"


def _kind(exc: BaseException) -> str:
    """What a log may say about a sink's exception: its class, never its
    message (a database's message can quote the row: "Failing row
    contains ...")."""
    return error_name(exc)


def _namespace(writes: Sequence[Write]) -> str | None:
    """The one namespace of a batch's writes (None: several)."""
    found = {w.namespace for w in writes}
    return found.pop() if len(found) == 1 else None


def record_gauges(metrics: Metrics, stats: WriteBehindStats) -> None:
    """A queue's figures as ``cache.stats().gauges`` shows them (last values)."""
    metrics.gauge(Gauge.WRITEBEHIND_BACKLOG, stats.backlog)
    metrics.gauge(Gauge.WRITEBEHIND_PENDING, stats.pending)
    metrics.gauge(Gauge.WRITEBEHIND_LAG, stats.lag)
    metrics.gauge(Gauge.WRITEBEHIND_APPLIED, stats.applied)
    metrics.gauge(Gauge.WRITEBEHIND_REDELIVERED, stats.redelivered)
    metrics.gauge(Gauge.WRITEBEHIND_DEAD_LETTERED, stats.dead_lettered)
