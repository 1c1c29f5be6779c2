"""Retry invalidations that could not reach Redis, until they land.

An invalidation (key, tag, namespace bump) that fails with a ``StoreError``
is queued in ``PendingInvalidations`` (coalesced, bounded). One background
loop per cache (a tracked task, or a daemon thread in the sync twin) retries
everything queued with jittered exponential backoff (10 ms up to 250 ms;
each retry itself may take the invalidation budget while Redis is away), and
ends once the queue is empty. A retry redoes the whole invalidation: Redis
first, then this process's L1, then the bus message, so every other process
drops its L1 copy once it lands. On close: one last try, then whatever is
left is reported (logged at ERROR and counted), never silently dropped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from freshcache._async.engine.versions import AsyncVersions
from freshcache._concurrency import AsyncFlag, AsyncWorker
from freshcache._core.events import Message, Origin
from freshcache._core.layout import versioned
from freshcache._core.logs import LogEvent, failure, namespace_of
from freshcache._core.retry import retry_delay
from freshcache._inproc.invalidation_queue import Batch, PendingInvalidations
from freshcache._inproc.logs import Log
from freshcache.errors import ConfigStoreError, StoreError
from freshcache.metrics import ErrorClass, Event, Metrics, Operation

if TYPE_CHECKING:
    from freshcache._async.redis.store import AsyncRedisStore


class AsyncTiers(Protocol):
    """The tiers an invalidation acts on (the engine is one): Redis, the
    namespace versions, this process's L1, and the bus to every other one."""

    l2: AsyncRedisStore | None
    versions: AsyncVersions

    async def send(self, message: Message) -> None:
        """Tell every other process (the bus)."""
        ...

    async def clear(self, head: str) -> None:
        """Delete every data key under ``head`` in every tier and process."""
        ...

    def forget_local(
        self, fulls: Sequence[str], tags: Sequence[str], *, flush: bool
    ) -> None:
        """Drop keys, tags (or, with ``flush``, everything) from this L1."""
        ...


class AsyncInvalidationRetry:
    def __init__(
        self, tiers: AsyncTiers, *, head: str, origin: Origin, metrics: Metrics,
        mono: Callable[[], float],
    ) -> None:  # fmt: skip
        self.pending = PendingInvalidations()
        self._mono = mono
        self._since: float | None = None  # when the queue last became non-empty
        self._tiers = tiers
        self._head = head
        self._origin = origin
        self._metrics = metrics
        self._rng = random.Random()
        self._stop = AsyncFlag()
        self._worker: AsyncWorker | None = None
        self._log = Log("engine", tier="redis", now=mono)

    def reset(self) -> None:
        """A new event loop, or a forked child: the retry loop belonged to the
        old one (or to the parent). What is queued stays, and a new loop
        retries it here (one call has just come: there is a loop to run on)."""
        self._stop = AsyncFlag()
        self._worker = None
        if self.pending.nonempty:
            self._worker = AsyncWorker(self._loop, name="freshcache-retry")
            self._worker.start()

    async def pause(self) -> None:
        """Stop the retry loop (its event loop is ending); what is queued
        stays queued for the next one (``reset``)."""
        self._stop.set()
        if self._worker is not None:
            await self._worker.join(1.0)

    def queue(
        self,
        error: StoreError,
        *,
        keys: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        namespaces: tuple[str, ...] = (),
        unresolved: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Queue an invalidation that failed with ``error``; retry it later."""
        self._metrics.count(Event.INVALIDATIONS_QUEUED)
        if self._since is None:
            self._since = self._mono()
        overflows = self.pending.overflows
        start = self.pending.add(
            keys=keys, tags=tags, namespaces=namespaces, unresolved=unresolved
        )
        if self.pending.overflows != overflows:
            self._metrics.count(Event.INVALIDATIONS_OVERFLOW)
            self._log.error(
                LogEvent.INVALIDATION_OVERFLOW,
                "invalidation queue full; a flush is queued instead",
                error_class=error.kind,
            )
        if start and not self._stop.is_set():
            self._log.warning(
                LogEvent.INVALIDATION_QUEUED,
                "invalidation queued for retry: %s",
                error,
                error_class=error.kind,
                namespace=self._namespace(keys, namespaces, unresolved),
            )
            self._worker = AsyncWorker(self._loop, name="freshcache-retry")
            self._worker.start()

    async def _loop(self) -> None:
        attempt = 0
        while not await self._stop.wait(retry_delay(attempt, self._rng.random())):
            batch = self.pending.peek()
            if batch is None:
                return  # all landed; the next queue() starts a new loop
            if await self._try(batch):
                attempt = 0
            else:
                attempt += 1

    async def _try(self, batch: Batch) -> bool:
        try:
            await self._apply(batch)
        except ConfigStoreError as exc:  # refused for good: retrying cannot help
            self._metrics.error(ErrorClass.INVALIDATION_RETRY)
            self._refused(batch, exc)
            return False
        except StoreError:
            self._metrics.error(ErrorClass.INVALIDATION_RETRY)
            return False
        except Exception as exc:  # a bug must not end the loop with work queued
            self._metrics.error(ErrorClass.INVALIDATION_RETRY)
            self._log.error(
                LogEvent.INVALIDATION_RETRY_BUG,
                "invalidation retry failed (%s)",
                failure(exc),
                error_class=ErrorClass.INVALIDATION_RETRY.value,
            )
            return False
        self.pending.done(batch)
        self._metrics.count(Event.INVALIDATIONS_RETRIED)
        if not self.pending.nonempty and self._since is not None:
            self._metrics.latency(
                Operation.INVALIDATION_TO_LAND, self._mono() - self._since
            )
            self._since = None
        return True

    def _refused(self, batch: Batch, exc: ConfigStoreError) -> None:
        """Redis refuses the batch for good (WRONGTYPE on a tag set, a counter
        that is not a number, an ACL that forbids the command): flush the
        prefix instead, which removes whatever the batch would have; if the
        flush is refused too, give up, loudly (retrying forever would keep
        this process's L1 from filling and land nothing)."""
        if not batch.flush:
            self.pending.collapse()
            self._metrics.count(Event.INVALIDATIONS_ESCALATED)
            self._log.error(
                LogEvent.INVALIDATION_ESCALATED,
                "Redis refuses a queued invalidation (%s); "
                "flushing the cache's keys instead",
                exc,
                error_class=exc.kind,
            )
            return
        lost = self.pending.abandon()
        self._since = None
        for _ in range(lost):
            self._metrics.count(Event.INVALIDATIONS_ABANDONED)
        self._log.error(
            LogEvent.INVALIDATION_DROPPED,
            "Redis refuses to flush the cache's keys (%s); %d queued "
            "invalidations are dropped and their keys may be served stale from "
            "Redis until their TTL",
            exc,
            lost,
            error_class=exc.kind,
        )

    def _namespace(
        self,
        keys: tuple[str, ...],
        namespaces: tuple[str, ...],
        unresolved: tuple[tuple[str, str], ...],
    ) -> str | None:
        """The namespace a queued invalidation is about, for its record:
        None when it is about none (tags) or several."""
        found = {namespace_of(key, self._head) for key in keys}
        found.update(namespaces)
        found.update(namespace for _, namespace in unresolved)
        return found.pop() if len(found) == 1 else None

    def oldest_age(self) -> float:
        """Seconds since the queue last went from empty to non-empty (0 when
        empty): an upper bound on the age of the oldest queued invalidation."""
        since = self._since
        return (
            0.0 if since is None or not self.pending.nonempty else self._mono() - since
        )

    async def _apply(self, batch: Batch) -> None:
        """Redis first, then this process's L1, then every other process."""
        tiers = self._tiers
        l2 = tiers.l2
        assert l2 is not None  # nothing fails (and is queued) without Redis
        if batch.flush:
            await tiers.clear(self._head)
            return
        keys = list(batch.keys)
        for base, namespace in batch.unresolved:
            version = await tiers.versions.get(namespace, hard=True)
            keys.append(versioned(self._head, namespace, version, base))
        bumped = []
        for namespace in batch.namespaces:
            bumped.append((namespace, await tiers.versions.bump(namespace)))
        if keys:
            await l2.invalidate(keys)
        if batch.tags:
            await l2.invalidate_tags(batch.tags)
        tiers.forget_local(keys, batch.tags, flush=bool(bumped))
        message = Message(
            self._origin.id, keys=tuple(keys), tags=batch.tags,
            namespaces=tuple(bumped), head=self._head,
        )  # fmt: skip
        await tiers.send(message)

    async def aclose(self, wait: float) -> None:
        """Stop the loop, try once more, and report what never landed."""
        self._stop.set()
        if self._worker is not None:
            await self._worker.join(wait)
        batch = self.pending.peek()
        if batch is not None:
            await self._try(batch)
        lost = self.pending.abandon()
        self._since = None
        for _ in range(lost):
            self._metrics.count(Event.INVALIDATIONS_ABANDONED)
        if lost:
            self._log.error(
                LogEvent.INVALIDATION_DROPPED,
                "%d invalidations could not reach Redis before close; "
                "their keys may be served stale until their TTL",
                lost,
                repeat=False,
            )
