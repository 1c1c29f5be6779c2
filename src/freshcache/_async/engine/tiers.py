"""L1 over L2: reads, leased fills, writes and invalidations across tiers and processes.

The protocol (docs/coherence.md has the sequence diagrams):

* A read snapshots the key's L1 generation *before* it reads Redis or runs
  the loader, and stores into L1 only if no invalidation came since (no
  stale fill in L1).
* A miss takes a lease in Redis before the loader runs; the fill is a
  compare-and-set on it, and every invalidation deletes it. A value loaded
  before an invalidation is therefore never stored (no stale fill in
  Redis). A lost lease (evicted, Redis restarted) fails closed: the value
  is returned, not stored.
* A fill with tags registers the key in each tag's set first, and stores only
  if no tag invalidation ran since before the loader (the tag epoch).
* Invalidation deletes in Redis first, then bumps generations and drops the
  L1 entries, then tells every other process over the bus (coherent L1
  everywhere, read-your-writes here).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from freshcache._async.engine.events import AsyncEvents
from freshcache._async.engine.invalidation import AsyncInvalidator
from freshcache._async.engine.leases import AsyncLeases
from freshcache._async.engine.live import AsyncStatsPublisher, ProcessName
from freshcache._async.engine.local_bus import LocalBus
from freshcache._async.engine.versions import AsyncVersions
from freshcache._concurrency import (
    AsyncBackground,
    AsyncLoopOwner,
    AsyncSingleFlight,
    ainvoke,
    alock,
)
from freshcache._core.clock import Clock
from freshcache._core.codec.envelope import Codec
from freshcache._core.deploys import local_keys
from freshcache._core.entry import Entry, Hit
from freshcache._core.events import Message, Origin
from freshcache._core.events import encode as encode_message
from freshcache._core.freshness import Lifetime, refresh_early
from freshcache._core.layout import bus_channel, ping_channel
from freshcache._core.logs import LogEvent, error_name
from freshcache._core.sentinels import MISS, Miss
from freshcache._core.staleness import Local, local_verdict
from freshcache._core.tagging import TagSource, render_tags
from freshcache._core.updates import MAX_SWAPS, Change
from freshcache._inproc.encoder import EntryEncoder
from freshcache._inproc.generations import Snapshot
from freshcache._inproc.l1 import LocalTier
from freshcache._inproc.logs import Log
from freshcache._inproc.store import MemoryStore
from freshcache.errors import (
    CacheClosedError,
    CircuitOpenError,
    RevivalError,
    StoreError,
    TransientStoreError,
)
from freshcache.metrics import (
    Bypass,
    ErrorClass,
    Event,
    Metrics,
    Outcome,
    StatsRecorder,
    Tier,
)
from freshcache.tracing import (
    REDIS,
    Attribute,
    AttributeValue,
    FillOutcome,
    LoadReason,
    NullTracing,
    SpanName,
    Tracing,
)

if TYPE_CHECKING:
    from freshcache._async.redis.bus import AsyncRedisBus
    from freshcache._async.redis.store import AsyncRedisStore

Reviver = Callable[[Any], Any] | None
NO_SNAPSHOT = Snapshot((0, 0))  # without an L1 there is nothing to guard
DEFAULT_STALENESS = 0.1  # seconds: the bound when L1 does not set one
Count = tuple[Tier, str]  # a tier, and an ``Outcome`` or ``Bypass`` reason in it


def bypass_reason(error: StoreError) -> Bypass:
    """Why a lookup that met ``error`` skipped Redis."""
    if isinstance(error, CircuitOpenError):
        return Bypass.CIRCUIT_OPEN
    return Bypass.UNAVAILABLE


def count_outcome(metrics: Metrics, tier: str, namespace: str, outcome: str) -> None:
    """One outcome of a lookup in ``tier``: ``Outcome.HIT``, ``Outcome.MISS``
    or a ``Bypass`` reason."""
    if outcome == Outcome.HIT:
        metrics.hit(tier, namespace)
    elif outcome == Outcome.MISS:
        metrics.miss(tier, namespace)
    else:
        metrics.bypass(tier, namespace, outcome)


class AsyncEngine:
    """The engine behind the facade: L1 (optional), L2 (optional), bus, events.

    Its public attributes and methods are the interface the facade, the
    decorator, write-through and write-behind use (and tests); ``head`` is the
    ``prefix:version:`` every full key starts with, ``now`` the wall clock.
    """

    def __init__(
        self,
        *,
        head: str,
        prefix: str,
        origin: Origin,
        l1: MemoryStore | None,
        l1_ttl: float | None,
        l1_copy: bool,
        l2: AsyncRedisStore | None,
        codec: Codec,
        metrics: Metrics,
        clock: Clock,
        now: Callable[[], float],
        lease_ttl: float,
        strict: bool,
        beta: float = 1.0,
        jitter: float = 0.0,
        max_staleness: float | None = DEFAULT_STALENESS,
        stale_when_down: float = 0.0,
        owner: AsyncLoopOwner,
        tracing: Tracing | None = None,
    ) -> None:
        self.head = head
        self.tracing: Tracing = NullTracing() if tracing is None else tracing
        self.prefix = prefix
        self.closed = False
        self._channel = bus_channel(prefix)
        self.owner = owner
        self.bus: AsyncRedisBus | LocalBus
        if l2 is None:
            self.bus = LocalBus()
        else:
            from freshcache._async.redis.bus import AsyncRedisBus  # needs redis

            self.bus = AsyncRedisBus(
                l2.endpoint,
                channel=self._channel,
                origin=origin,
                store=l2,
                metrics=metrics,
                on_message=self.apply,
                on_connect=self.bus_connected,
                on_disconnect=self.bus_disconnected,
                on_gap=self.bus_gap,
                clock=clock,
                ping_channel=functools.partial(ping_channel, prefix),
                ping_every=max(0.005, (max_staleness or DEFAULT_STALENESS) / 4),
                owner=owner,
            )
        # The staleness bound of in-process state over Redis (L1 entries and
        # namespace versions): see ``current``. None: L1 is not bounded.
        self.bound = math.inf if max_staleness is None else max_staleness
        self._version_bound = max_staleness or DEFAULT_STALENESS
        self._stale_when_down = stale_when_down
        self.mono = clock.monotonic
        self.l2 = l2
        # This process in the live view and in lease tokens; the publisher
        # of its stats, when the cache has one (``publish_stats``).
        self.process_name = ProcessName(origin)
        self.publisher: AsyncStatsPublisher | None = None
        if l2 is not None:
            l2.holder = self.process_name
        self.l1 = (
            None
            if l1 is None
            else LocalTier(
                l1,
                codec=codec,
                metrics=metrics,
                now=now,
                copy=l1_copy,
                over_redis=l2 is not None,
                ttl_cap=l1_ttl,
                current=self.current,
                beta=beta,
            )
        )
        self.metrics = metrics
        self._clock = clock
        self.now = now
        self._lease_ttl = lease_ttl
        self.leases = (
            None
            if l2 is None
            else AsyncLeases(l2, metrics=metrics, clock=clock, ttl=lease_ttl)
        )
        self.entries = EntryEncoder(
            codec, metrics=metrics, now=now, strict=strict, jitter=jitter, head=head
        )
        self._log = Log("engine", now=clock.monotonic)
        self._origin = origin
        self.versions = AsyncVersions(
            l2, current=self.versions_current, listen=self._listen
        )
        self.events = AsyncEvents(
            origin=origin,
            metrics=metrics,
            send=self.send,
            on_first_handler=self._listen,
        )
        self._listening = False
        self._updating = alock()  # the embedded tier's read-modify-writes
        self.flights = AsyncSingleFlight()
        self._background = AsyncBackground()
        self.refreshing: set[str] = set()  # refreshes under way here (decorator reads)
        self._rng = random.Random()
        self._beta = beta
        # Invalidations Redis did not take: retried; meanwhile not served here.
        self.invalidator = AsyncInvalidator(
            self, head=head, origin=origin, metrics=metrics, mono=clock.monotonic
        )
        self.pending = self.invalidator.pending
        owner.on_change(self._reset)
        owner.on_end(self._end)
        owner.on_fork(self._forked)

    # -- lifecycle: event loops and forks -----------------------------------

    def _reset(self) -> None:
        """A new event loop, or the first call in a forked child: what was in
        flight belongs to the old loop (or the parent) and never finishes
        here. Drop it; the bus starts again on first use; over Redis, L1
        starts empty (the new subscription would flush it anyway). The
        embedded cache keeps its L1: it is the cache."""
        self.flights = AsyncSingleFlight()
        self._background = AsyncBackground()
        self.refreshing.clear()
        self._listening = False
        self.versions.reset()
        if self.leases is not None:
            self.leases.reset()
        self.invalidator.reset()
        if self.l2 is not None:
            self.flush_local()

    async def _end(self) -> None:
        """The event loop is ending: refreshes and the retry loop on it stop
        (before the bus and the store close, which they use)."""
        await self._background.drain(0)
        await self.invalidator.retry.pause()

    def _forked(self) -> None:
        """At once in a forked child: an origin of its own (see ``Origin``),
        in-process state with new locks, an empty L1, its own stats."""
        self._origin.renew()
        if self.l1 is not None:
            self.l1.after_fork()
        self.pending.after_fork()
        if isinstance(self.metrics, StatsRecorder):
            self.metrics.after_fork()

    # -- the bus ------------------------------------------------------------

    def _listen(self) -> None:
        """Start the bus listener once (lazily: async needs a running loop)."""
        if not self._listening:
            self._listening = True
            self.bus.start()
            if self.publisher is not None:
                self.publisher.start()

    def live_state(self) -> dict[str, Any]:
        """What the live view publishes besides ``stats()``: L1's size, the
        bus's state, the watermark's age and the last ping's round trip."""
        bus = self.bus
        age = self.mono() - bus.watermark
        return {
            "l1_entries": None if self.l1 is None else len(self.l1.store),
            "bus_connected": bus.connected,
            "watermark_age": None if math.isinf(age) else max(0.0, age),
            "bus_lag": bus.lag,
        }

    def _verdict(self, bound: float) -> Local:
        bus = self.bus
        return local_verdict(
            self.mono() - bus.watermark, bound,
            grace=self._stale_when_down, connected=bus.connected,
        )  # fmt: skip

    def current(self) -> bool:
        """May L1 serve now? Only while this process knows it has applied every
        invalidation that returned more than ``bound`` ago (the bus's
        watermark); or, in the degraded mode, while the bus is down and the
        watermark is at most ``stale_when_down`` older than that. Counts
        nothing: a lookup asks ``local_open``."""
        return self._verdict(self.bound) is not Local.REFUSE

    def local_open(self, namespace: str) -> bool:
        """``current`` for a lookup of ``namespace``, counted: a refusal is an
        L1 bypass (``stale_bound``), the degraded mode ``l1_stale_when_down``.
        The embedded cache's L1 is the cache: always open."""
        if self.l2 is None:
            return True
        verdict = self._verdict(self.bound)
        if verdict is Local.SERVE:
            return True
        if verdict is Local.DEGRADED:
            self.metrics.count(Event.L1_STALE_WHEN_DOWN)
            return True
        self.metrics.bypass(Tier.L1, namespace, Bypass.STALE_BOUND)
        return False

    def versions_current(self) -> bool:
        """May the namespace versions known here be used? As ``current``, with
        the default bound when L1 sets none (or there is no L1)."""
        return self._verdict(self._version_bound) is not Local.REFUSE

    def bus_connected(self) -> None:
        """(Re)subscribed. Messages sent while we were away are lost: drop what
        L1 holds and cancel every L1 fill that began before (its snapshot)."""
        self.metrics.count(Event.BUS_CONNECT)
        self.versions.forget()
        self.flush_local()

    def bus_disconnected(self) -> None:
        """Nothing to drop: without pings back the watermark stops, and L1
        stops serving within the bound (``current``); the flush comes when
        the bus is back, since messages sent meanwhile are lost."""
        self.metrics.count(Event.BUS_DISCONNECT)

    def bus_gap(self) -> None:
        """A ping came back while an older one never did: messages may have
        been lost on a connection that stayed up (a cluster node that died
        before forwarding them). Drop what L1 holds, as on a resubscription."""
        self.versions.forget()
        self.flush_local()

    def reopen(self) -> None:
        """Undo ``aclose``: everything is rebuilt on the next call (new
        connections, a new subscription, an empty L1). Pending invalidations
        that ``aclose`` reported lost stay lost."""
        if not self.closed:
            return
        self.closed = False
        if self.l2 is not None:
            self.l2.reopen()
        self.owner.renew()

    def check_open(self) -> None:
        """Raise ``CacheClosedError`` once ``aclose`` has run: closing is final;
        then make sure what is loop-bound belongs to the running loop."""
        if self.closed:
            raise CacheClosedError("this cache was closed; make a new one")
        self.owner.check()

    async def send(self, message: Message) -> None:
        self.check_open()
        if self.l2 is not None:
            await self.bus.publish(message, hard=True)
            self.metrics.count(Event.INVALIDATIONS_SENT)

    async def apply(self, message: Message) -> None:
        """A message from another process."""
        if self.leases is not None:
            self.leases.wake(message.fills)
        if message.fills and not (message.keys or message.tags or message.flush):
            return  # a fill notice, not an invalidation
        self.metrics.count(Event.INVALIDATIONS_RECEIVED)
        if message.flush:
            self.flush_local()
        if message.keys:  # another version's keys: the same keys here
            self._drop_local(local_keys(message.keys, self.head, self.versions.known))
        if message.tags:
            self._drop_tagged(message.tags)
        foreign = bool(message.head) and message.head != self.head
        for namespace, version in message.namespaces:
            if foreign:  # its bump moved ours too, to a number of our own
                self.versions.forget_namespace(namespace)
            else:
                self.versions.learn(namespace, version)
        if message.event is not None:
            await self.events.dispatch(*message.event)

    # -- L1 -------------------------------------------------------------------

    # Each drop also detaches loads in flight: a caller arriving after an
    # invalidation never joins a load that began before it.

    def flush_local(self) -> None:
        self.flights.forget()
        if self.l1 is not None:
            self.l1.flush()

    def _drop_local(self, fulls: Sequence[str]) -> None:
        self.flights.forget(fulls)
        if self.l1 is not None:
            self.l1.drop(fulls)

    def _drop_tagged(self, tags: Sequence[str]) -> None:
        self.flights.forget()
        if self.l1 is not None:
            self.l1.drop_tagged(tags)

    def forget_local(
        self, fulls: Sequence[str], tags: Sequence[str], *, flush: bool
    ) -> None:
        if flush:
            self.flush_local()
            return
        self._drop_local(fulls)
        if tags:
            self._drop_tagged(tags)

    def _snapshot(self, full: str) -> Snapshot:
        return NO_SNAPSHOT if self.l1 is None else self.l1.snapshot(full)

    def _local_fill(
        self, full: str, entry: Entry, data: bytes | None, size: int,
        hard: float | None, snapshot: Snapshot, *, fence: bool = False,
    ) -> None:  # fmt: skip
        """``fence``: see ``LocalTier.fill``."""
        if self.l1 is None:
            return
        # No L1 fills at all while an invalidation is pending (it may cover them).
        if not self.pending.nonempty:
            self.l1.fill(full, entry, data, size, hard, snapshot, fence=fence)
        elif fence:
            self.l1.fence([full])

    # -- reads ----------------------------------------------------------------

    async def lookup(
        self, full: str, namespace: str, reviver: Reviver, *,
        local_checked: bool, stale_ok: bool = False, asked: bool = False,
        counted: list[Count] | None = None,
    ) -> tuple[Entry | Miss, Snapshot]:  # fmt: skip
        """A fresh entry (or, with ``stale_ok``, one still inside its stale
        window) from the first tier that has one, and the snapshot taken
        before the tiers were read (for a later fill).

        Counted once per tier reached, then once for the cache if no tier
        hit (``Metrics``). ``local_checked``: the caller has read (or
        skipped) L1 and counted it; ``asked``: it did read it. ``counted``
        collects what this lookup counted past L1, for the callers that
        joined it (``serve``)."""
        self.check_open()
        snapshot = self._snapshot(full)
        if self.l1 is not None and not local_checked and self.local_open(namespace):
            asked = True
            entry = self.l1.get(full, stale_ok=stale_ok, reviver=reviver, bounded=False)
            if entry is not MISS:
                self.metrics.hit(Tier.L1, namespace)
                return entry, snapshot
            self.metrics.miss(Tier.L1, namespace)
        if self.l2 is not None:
            self._listen()
            watched = self.pending.watch()
            try:
                hit: Hit | Miss = await self.l2.get(full)
            except StoreError as exc:
                reason = bypass_reason(exc)
                self._count(counted, Tier.REDIS, namespace, reason)
                final = Outcome.MISS if asked else reason
                self._count(counted, Tier.CACHE, namespace, final)
                return MISS, snapshot
            if hit is not MISS:
                entry = await self.usable(
                    full, hit[0], reviver, stale_ok=stale_ok, watched=watched
                )
                if entry is not MISS:
                    self._count(counted, Tier.REDIS, namespace, Outcome.HIT)
                    self._local_fill(full, entry, None, hit[1], None, snapshot)
                    return entry, snapshot
            self._count(counted, Tier.REDIS, namespace, Outcome.MISS)
        self._count(counted, Tier.CACHE, namespace, Outcome.MISS)
        return MISS, snapshot

    def _count(
        self, counted: list[Count] | None, tier: Tier, namespace: str, outcome: str
    ) -> None:
        """Count one outcome of a lookup in ``tier``: ``Outcome.HIT``,
        ``Outcome.MISS``, or a ``Bypass`` reason; and note it in ``counted``."""
        if counted is not None:
            counted.append((tier, outcome))
        count_outcome(self.metrics, tier, namespace, outcome)

    async def lookup_many(
        self, wanted: Sequence[tuple[str, str]], reviver: Reviver
    ) -> list[Entry | Miss]:
        """``lookup`` for many ``(full, namespace)`` pairs: one round trip to L2."""
        self.check_open()
        metrics = self.metrics
        found: list[Entry | Miss] = [MISS] * len(wanted)
        snapshots = [self._snapshot(full) for full, _ in wanted]
        remaining = list(range(len(wanted)))
        asked = [False] * len(wanted)  # L1 was read for it (not bypassed)
        if self.l1 is not None:
            for i in list(remaining):
                full, namespace = wanted[i]
                if not self.local_open(namespace):
                    continue
                asked[i] = True
                entry = self.l1.get(full, reviver=reviver, bounded=False)
                if entry is MISS:
                    metrics.miss(Tier.L1, namespace)
                else:
                    metrics.hit(Tier.L1, namespace)
                    found[i] = entry
                    remaining.remove(i)
        if remaining and self.l2 is not None:
            self._listen()
            watched = self.pending.watch()  # as in lookup: a retry landing now
            try:
                hits = await self.l2.get_many([wanted[i][0] for i in remaining])
            except StoreError as exc:
                reason = bypass_reason(exc)
                for i in remaining:
                    namespace = wanted[i][1]
                    metrics.bypass(Tier.REDIS, namespace, reason)
                    count_outcome(
                        metrics, Tier.CACHE, namespace,
                        Outcome.MISS if asked[i] else reason,
                    )  # fmt: skip
                return found
            for i, hit in zip(list(remaining), hits, strict=True):
                full, namespace = wanted[i]
                entry = (
                    MISS
                    if hit is MISS
                    else await self.usable(full, hit[0], reviver, watched=watched)
                )
                if entry is MISS:
                    metrics.miss(Tier.REDIS, namespace)
                    continue
                metrics.hit(Tier.REDIS, namespace)
                found[i] = entry
                remaining.remove(i)
                assert hit is not MISS
                self._local_fill(full, entry, None, hit[1], None, snapshots[i])
        for i in remaining:
            metrics.miss(Tier.CACHE, wanted[i][1])
        return found

    async def usable(
        self, full: str, entry: Entry, reviver: Reviver, *, stale_ok: bool = False,
        watched: int | None = None,
    ) -> Entry | Miss:  # fmt: skip
        """A fresh Redis entry (Redis keeps one past ``fresh_until`` only
        inside its stale window) revived to the caller's type, else ``MISS``.

        Data that no longer fits the type (a dataclass that gained a field) is
        a miss, counted as ``decode:revive``, and removed.
        """
        now = self.now()
        if now >= entry.fresh_until and not (stale_ok and now < entry.stale_until):
            return MISS
        pending = self.pending
        if (pending.nonempty and pending.covers(full, entry.tags)) or (
            pending.landed_since(watched)  # read before a retry landed
        ):
            self.metrics.count(Event.PENDING_BYPASS)  # Redis may still hold it
            return MISS
        if reviver is None:
            return entry
        try:
            return entry._replace(value=reviver(entry.value))
        except RevivalError:  # a miss for this caller; others may read it
            self.metrics.error(ErrorClass.DECODE.detail("revive"))
            return MISS

    # -- loads ----------------------------------------------------------------

    async def _load(
        self,
        full: str,
        namespace: str,
        loader: Callable[[], Any],
        lifetime: Lifetime,
        tags: Sequence[str | TagSource],
        snapshot: Snapshot,
        reviver: Reviver,
    ) -> Any:
        """Run the loader under a lease and fill every tier it may fill; when
        another process holds the lease, wait for its fill instead."""
        if self.l1 is not None:  # a flight that just ended may have filled it
            entry = self.l1.get(full, reviver=reviver)
            if entry is not MISS:
                return entry.value
        token, epoch, busy = await self._lease(
            full, namespace, bool(tags), second_look=True
        )
        if isinstance(token, tuple):  # filled between our miss and the lease
            found = await self.usable(full, token[0], reviver)
            if found is not MISS:
                self._local_fill(full, found, None, token[1], None, snapshot)
                return found.value
            # Stored, but not usable here: stale, or of another type (an
            # older deploy's): take the lease over it, so our fill replaces
            # it (nobody else's copy is deleted meanwhile). While
            # invalidations are queued here, load without filling: Redis
            # keeps what it has until they land.
            token, epoch, busy = None, 0, False
            if not self.pending.nonempty:
                token, epoch, busy = await self._lease(full, namespace, bool(tags))
        if busy:
            self.metrics.count(Event.LEASE_BUSY)
            assert self.leases is not None
            stored, token, epoch = await self.leases.wait_for_fill(
                full, namespace, bool(tags)
            )
            if stored is not None:
                filled = await self.usable(full, stored, reviver)
                if filled is not MISS:  # else: filled, but unusable: load
                    self.metrics.count(Event.LEASE_WAIT_SERVED)
                    self._local_fill(full, filled, None, 0, None, snapshot)
                    return filled.value
        return await self._run_and_fill(
            full, namespace, loader, lifetime, tags, snapshot, token, epoch
        )

    async def _run_and_fill(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource],
        snapshot: Snapshot, token: str | None, epoch: int,
        reason: LoadReason = LoadReason.MISS,
    ) -> Any:  # fmt: skip
        """Run the loader, then fill every tier the lease (if any) allows
        (a span around each: ``freshcache.load``, ``freshcache.fill``)."""
        tracing = self.tracing
        started = self._clock.monotonic()
        try:
            with tracing.span(
                SpanName.LOAD,
                {Attribute.NAMESPACE: namespace, Attribute.LOAD_REASON: reason},
            ):
                value = await ainvoke(loader)
                rendered = render_tags(tags, value)
        except BaseException:
            self.metrics.load(namespace, self._clock.monotonic() - started, failed=True)
            await self._release(full, token)
            raise
        delta = self._clock.monotonic() - started
        self.metrics.load(namespace, delta, failed=False)
        if self.leases is not None:
            self.leases.times.record(namespace, delta)
        if value is None and lifetime.negative is not None:
            lifetime = Lifetime(lifetime.negative)  # "not found", briefly
        with tracing.span(SpanName.FILL, self._fill_attributes(namespace)) as span:
            encoded = self.entries.encode(full, value, lifetime, delta, rendered)
            if encoded is None:
                span.set_attribute(Attribute.FILL_OUTCOME, FillOutcome.UNCACHEABLE)
                await self._release(full, token)
                return value
            entry, data, hard = encoded
            if self.leases is not None:
                fills = Message(self._origin.id, fills=(full,))  # wakes others
                notice = (self._channel, encode_message(fills))
                if not await self.leases.fill(
                    full, token, epoch, data, hard, rendered, notice
                ):
                    span.set_attribute(Attribute.FILL_OUTCOME, FillOutcome.SKIPPED)
                    return value
            self._local_fill(full, entry, data, len(data), hard, snapshot)
            span.set_attribute(Attribute.FILL_OUTCOME, FillOutcome.STORED)
        return value

    def _fill_attributes(self, namespace: str) -> dict[str, AttributeValue]:
        if self.l2 is None:
            return {Attribute.NAMESPACE: namespace, Attribute.TIER: Tier.L1.value}
        return {
            Attribute.NAMESPACE: namespace,
            Attribute.TIER: Tier.REDIS.value,
            Attribute.DB_SYSTEM_NAME: REDIS,
        }

    def store_attributes(self) -> dict[str, AttributeValue]:
        """Attributes of a span that writes to this cache's tiers: with
        Redis, ``db.system.name``."""
        return {} if self.l2 is None else {Attribute.DB_SYSTEM_NAME: REDIS}

    # -- stale-while-revalidate and early refresh ----------------------------

    async def serve(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource],
        reviver: Reviver, *, local_checked: bool,
    ) -> Any:  # fmt: skip
        """Cache-aside with a loader at hand: a fresh value, or a stale one
        (inside its stale window) at once while one refresh runs in the
        background; XFetch may refresh a fresh one early. Else load.

        Past L1, concurrent callers of one key in this process share one
        Redis read, and on a miss one load (or one wait for another
        process's fill and one read of it): in a stampede, a process reads
        Redis once, not once per caller."""
        self.check_open()
        asked = local_checked  # the decorator read L1 (a miss, not yet counted)
        if self.l1 is not None:
            if not local_checked and self.local_open(namespace):
                asked = True
                entry = self.l1.get(full, stale_ok=True, reviver=reviver, bounded=False)
                if entry is not MISS:
                    self.metrics.hit(Tier.L1, namespace)
                    return self._served(full, namespace, loader, lifetime, tags, entry)
            if asked:
                self.metrics.miss(Tier.L1, namespace)
        led: list[bool] = []

        async def read_or_load() -> tuple[Entry | None, Any, list[Count], bool]:
            led.append(True)
            return await self._read_or_load(
                full, namespace, loader, lifetime, tags, reviver, asked
            )

        # Join a read already in flight only while every invalidation that
        # returned before now - bound has been applied here (each one detaches
        # the flights it covers); otherwise that read may predate one.
        join = self._verdict(self.bound) is not Local.REFUSE
        flight = await self.flights.run(full, read_or_load, join=join)
        read, value, counted, failed = flight
        if not led:  # joined another caller's read (or load): count it as ours
            for tier, outcome in counted:
                count_outcome(self.metrics, tier, namespace, outcome)
        if failed:  # the loader raised: every caller of the flight raises it
            raise value
        if read is None:
            return value
        return self._served(full, namespace, loader, lifetime, tags, read)

    async def _read_or_load(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource], reviver: Reviver,
        asked: bool,
    ) -> tuple[Entry | None, Any, list[Count], bool]:  # fmt: skip
        """``(entry, value, counted, False)`` of a read; ``(None, value,
        counted, False)`` of a load, ``(None, error, counted, True)`` of a
        load that raised ``error``; ``counted``: the outcomes past L1 the
        read counted, for the callers that joined it (who raise the error
        too, counted as they should be)."""
        counted: list[Count] = []
        entry, snapshot = await self.lookup(
            full, namespace, reviver, local_checked=True, stale_ok=True,
            asked=asked, counted=counted,
        )  # fmt: skip
        if entry is MISS:
            try:
                value = await self._load(
                    full, namespace, loader, lifetime, tags, snapshot, reviver
                )
            except Exception as exc:
                return None, exc, counted, True
            return None, value, counted, False
        return entry, entry.value, counted, False

    def _served(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource], entry: Entry,
    ) -> Any:  # fmt: skip
        """The value of a cached entry; a refresh in the background if it is
        stale, or (XFetch) if it is due for an early one."""
        now = self.now()
        if now >= entry.fresh_until:
            self.metrics.count(Event.SWR_SERVED_STALE)
            self._refresh_later(full, namespace, loader, lifetime, tags, entry)
        elif refresh_early(entry, now, self._rng, self._beta):
            self.metrics.count(Event.EARLY_REFRESH)
            self._refresh_later(full, namespace, loader, lifetime, tags, entry)
        return entry.value

    def _refresh_later(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource], seen: Entry,
    ) -> None:  # fmt: skip
        if full in self.refreshing:
            return  # one refresh per key in this process; the lease: cluster-wide
        self.refreshing.add(full)
        self._background.submit(
            lambda: self._refresh(
                full, namespace, loader, lifetime, tags, seen.fresh_until
            )
        )

    async def _refresh(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource], seen: float,
    ) -> None:  # fmt: skip
        """Refresh the entry the caller saw (fresh until ``seen``), unless a
        refresh elsewhere (or an earlier one here) has replaced it since: the
        caller may have read the old entry just before that refresh filled
        and released the lease, and the lease alone would then let it load
        a second time."""
        try:
            snapshot = self._snapshot(full)
            token, epoch, busy = await self._lease(full, namespace, bool(tags))
            if busy:
                self.metrics.count(Event.REFRESH_SKIPPED_LEASE_BUSY)
                return  # another process is refreshing it
            if await self._refreshed_since(full, seen):
                self.metrics.count(Event.REFRESH_SKIPPED_REFRESHED)
                await self._release(full, token)
                if self.l2 is not None and self.l1 is not None:
                    self.l1.drop([full])  # stale here: the next read takes Redis's
                return
            await self._run_and_fill(
                full, namespace, loader, lifetime, tags, snapshot, token, epoch,
                LoadReason.REFRESH,
            )  # fmt: skip
        except Exception as exc:  # the stale value is served until its hard expiry
            self.metrics.error(ErrorClass.REFRESH)
            # the class only: the loader's message can quote a row
            self._log.warning(
                LogEvent.REFRESH_FAILED,
                "background refresh failed: %s; the stale value is served",
                error_name(exc),
                namespace=namespace,
                error_class=ErrorClass.REFRESH.value,
            )
        finally:
            self.refreshing.discard(full)

    async def _refreshed_since(self, full: str, seen: float) -> bool:
        """The stored entry is newer than the one fresh until ``seen``. Over
        Redis this read comes after taking the lease: a fill stores and
        releases in one step, so a refresh that finished before we took the
        lease is visible here."""
        if self.l2 is not None:
            try:
                hit: Hit | Miss = await self.l2.get(full)
            except StoreError:
                return False
            return hit is not MISS and hit[0].fresh_until > seen
        if self.l1 is not None:
            entry = self.l1.get(full, stale_ok=True)
            return entry is not MISS and entry.fresh_until > seen
        return False

    async def _lease(
        self, full: str, namespace: str, tagged: bool, *, second_look: bool = False
    ) -> tuple[Any, int, bool]:
        if self.leases is None:
            return None, 0, False
        return await self.leases.take(full, namespace, tagged, second_look=second_look)

    async def _release(self, full: str, token: str | None) -> None:
        if self.leases is not None:
            await self.leases.release(full, token)

    # -- writes ---------------------------------------------------------------

    async def put(
        self, items: Sequence[tuple[str, Any, Sequence[str]]],
        lifetime: Lifetime,
    ) -> bool:  # fmt: skip
        """Write values straight to every tier; False if any was not cached (or
        Redis or the bus could not be reached)."""
        self.check_open()
        encoded = []
        for full, value, tags in items:
            one = self.entries.encode(full, value, lifetime, 0.0, tags)
            if one is not None:
                encoded.append((full, *one))
        fulls = [full for full, *_ in encoded]
        # Drop the old L1 entries first (cancelling local fills in flight), then
        # snapshot: a newer write that lands in Redis after ours invalidates us
        # over the bus, and our L1 fill below then gives way to it.
        self._drop_local(fulls)
        snapshots = [self._snapshot(full) for full in fulls]
        if self.l2 is not None and self.leases is not None and encoded:
            self._listen()
            try:
                for full, entry, _, hard in encoded:
                    if entry.tags:
                        await self.l2.register(
                            entry.tags, full, self.leases.tag_ttl(hard)
                        )
                await self.l2.put_many(
                    [(f, data, hard) for f, _, data, hard in encoded]
                )
            except StoreError:
                self._drop_local(fulls)  # L1 must not keep what Redis may not have
                return False
            try:  # the other live versions' copies of these keys are old now
                await self.l2.invalidate(fulls, own=False)
            except StoreError as exc:  # retried (ours too) until it lands
                self.invalidator.retry.queue(exc, keys=tuple(fulls))
                self._drop_local(fulls)
                return False
        # Redis holds the new values now. A read here may have fetched the old
        # ones after our first drop, and not stored them in L1 yet: each fill
        # below also fences its key, so that such a read never stores after it.
        for (full, entry, data, hard), snapshot in zip(encoded, snapshots, strict=True):
            self._local_fill(full, entry, data, len(data), hard, snapshot, fence=True)
        sent = True
        if fulls and self.l2 is not None:
            try:
                await self.send(Message(self._origin.id, keys=tuple(fulls)))
            except StoreError:
                self.metrics.error(ErrorClass.BUS_PUBLISH)
                sent = False
        return sent and len(encoded) == len(items)

    async def update(
        self, full: str, decide: Callable[[Entry | Miss], Change | None]
    ) -> bool:
        """A read-modify-write of one key, atomic across processes: read it,
        ``decide`` what to store from its fresh entry (or ``MISS``), and store
        that only if the key still holds what was read (else read again).
        False when ``decide`` said nothing; ``decide``'s exceptions propagate;
        ``StoreError`` when Redis cannot be read or written, or the key kept
        changing under us (``MAX_SWAPS`` attempts).

        Without Redis the update runs under a lock of this cache's: atomic
        against this cache's other updates, not against a concurrent ``put``."""
        self.check_open()
        if self.l2 is None:
            with self._updating:
                current = MISS if self.l1 is None else self.l1.get(full)
                change = decide(current)
                if change is None:
                    return False
                return bool(await self._store_change(full, change, None))
        self._listen()
        for _ in range(MAX_SWAPS):
            watched = self.pending.watch()
            expected, hit = await self.l2.read(full)
            current = (
                MISS
                if hit is MISS
                else await self.usable(full, hit[0], None, watched=watched)
            )
            change = decide(current)
            if change is None:
                return False
            stored = await self._store_change(full, change, expected)
            if stored is not False:
                return bool(stored)
            self.metrics.count(Event.UPDATE_RETRY)
        raise TransientStoreError("the key kept changing during a read-modify-write")

    async def _store_change(
        self, full: str, change: Change, expected: bytes | None
    ) -> bool | None:
        """``update``'s write, as ``put`` does one: True when stored, False
        when the key no longer holds ``expected``, None when the value is not
        cacheable (counted; raised with ``strict``): nothing changes then."""
        encoded = None
        if not change.remove:
            encoded = self.entries.encode(
                full, change.value, change.lifetime, 0.0, change.tags
            )
            if encoded is None:
                return None
        self._drop_local([full])
        snapshot = self._snapshot(full)
        if self.l2 is not None and self.leases is not None:
            if encoded is not None and encoded[0].tags:
                await self.l2.register(
                    encoded[0].tags, full, self.leases.tag_ttl(encoded[2])
                )
            data, hard = (None, None) if encoded is None else encoded[1:]
            if not await self.l2.swap(full, expected, data, hard):
                return False
            try:  # the other live versions' copies of the key are old now
                await self.l2.invalidate([full], own=False)
            except StoreError as exc:  # retried (ours too) until it lands
                self.invalidator.retry.queue(exc, keys=(full,))
        if encoded is not None:
            entry, data, hard = encoded
            self._local_fill(full, entry, data, len(data), hard, snapshot, fence=True)
        elif self.l1 is not None:
            self.l1.fence([full])
        if self.l2 is not None:
            try:
                await self.send(Message(self._origin.id, keys=(full,)))
            except StoreError:
                self.metrics.error(ErrorClass.BUS_PUBLISH)
        return True

    def notice(self, fulls: Sequence[str]) -> bytes:
        """The bus message that drops ``fulls`` from every other process's L1,
        for a script to PUBLISH in the same step as its write (write-behind)."""
        self.metrics.count(Event.INVALIDATIONS_SENT)
        return encode_message(Message(self._origin.id, keys=tuple(fulls)))

    def written(self, fulls: Sequence[str]) -> None:
        """After such a script ran (or may have): drop ``fulls`` from L1 here;
        a read in flight here fails its snapshot."""
        self._drop_local(fulls)
        self._listen()

    async def clear(self, head: str) -> None:
        """Delete every data key under ``head`` in Redis (and its lease), then
        every L1 here and, over the bus, everywhere."""
        self.check_open()
        if self.l2 is not None:
            await self.l2.clear(head)
        self.flush_local()
        await self.send(Message(self._origin.id, flush=True))

    async def aclose(self) -> None:
        """Final: background work gets ``lease_ttl`` to end, queued
        invalidations one last try; then every call raises
        ``CacheClosedError``, and L1 is emptied."""
        if self.closed:
            return
        self.owner.check()  # closing from another loop closes nothing of the old
        await self._background.drain(self._lease_ttl)
        await self.invalidator.aclose(self._lease_ttl)
        if self.publisher is not None:
            await self.publisher.pause()
        self.closed = True
        await self.bus.aclose()
        if self.l2 is not None:
            await self.l2.aclose()
        self.flush_local()
