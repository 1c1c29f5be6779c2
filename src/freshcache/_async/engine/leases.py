"""Fill leases in Redis: take one before a load, fill under it, or wait for
the holder's fill (docs/coherence.md has the sequence diagrams).

* A miss takes the lease (``{key}:lease``) before the loader runs; the fill is
  a compare-and-set on it, and every invalidation deletes it, so a value
  loaded before an invalidation is never stored. A lost lease fails closed.
* A fill with tags registers the key in each tag's set first, and stores only
  if no tag invalidation ran since the lease was taken (the tag epoch).
* A caller that finds the lease taken waits for the fill: woken by a fill
  notice on the bus (the FILL script publishes it), polling with jittered
  backoff as the fallback. Each poll also tries the lease, so exactly one
  waiter takes over a dead holder's.
* A lease lives a few times this process's recent loads of its namespace
  (``_core/loadtimes.py``), at most ``lease_ttl``: a holder that hangs delays
  its key's readers by about one load. It is renewed while its holder's
  process holds it, and expires within half a second once nobody renews it
  (``_core/renewals.py``): an orphaned lease (a lost reply, a killed
  process) delays them by that much at most. The store also gives back a
  lease whose acquisition may have run without our hearing of it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from freshcache._concurrency import AsyncFlag
from freshcache._core.clock import Clock
from freshcache._core.entry import Entry, Hit
from freshcache._core.loadtimes import LoadTimes
from freshcache.errors import StoreError
from freshcache.metrics import Event, Metrics

if TYPE_CHECKING:
    from freshcache._async.redis.store import AsyncRedisStore

WAIT_FIRST_POLL = 0.005  # seconds; a waiter's polls back off from here...
WAIT_MAX_POLL = 0.1  # ...to here (a fill notice wakes it sooner)
WAIT_MARGIN = 0.1  # past lease_ttl, a waiter stops waiting and loads itself


class AsyncLeases:
    """The lease side of a leased fill, for one Redis tier."""

    def __init__(
        self, l2: AsyncRedisStore, *, metrics: Metrics, clock: Clock, ttl: float
    ) -> None:
        self._l2 = l2
        self._metrics = metrics
        self._clock = clock
        self.ttl = ttl
        self.times = LoadTimes(ttl)  # the engine records each load here
        self._waiting: dict[str, AsyncFlag] = {}  # keys waiting for a fill here

    def reset(self) -> None:
        """A new event loop, or a forked child: whoever waited belongs to the
        old one (setting their flags from here could fail)."""
        self._waiting = {}

    def wake(self, fulls: Sequence[str]) -> None:
        """Fill notices arrived: wake the callers waiting for those keys."""
        for full in fulls:
            waiting = self._waiting.get(full)
            if waiting is not None:
                waiting.set()

    async def take(
        self, full: str, namespace: str, tagged: bool, *, second_look: bool = False
    ) -> tuple[Any, int, bool]:
        """Take the fill lease (and the tag epoch) before the loader runs:
        ``(token, epoch, busy)``; busy when another caller holds it. With
        ``second_look``, the token is the stored entry (a ``Hit``) instead
        when someone filled the key since the caller's miss."""
        ttl = self.times.lease_ttl(namespace)
        try:
            if second_look:
                token: Hit | str | None = await self._l2.acquire_or_get(full, ttl)
                if isinstance(token, tuple):
                    return token, 0, False
            else:
                token = await self._l2.acquire(full, ttl)
        except StoreError:
            return None, 0, False
        epoch = 0
        if token is not None and tagged:
            try:
                epoch = await self._l2.epoch()
            except StoreError:
                await self._l2.release(full, token)
                return None, 0, False
        return token, epoch, token is None

    async def release(self, full: str, token: str | None) -> None:
        if token is not None:
            await self._l2.release(full, token)

    async def fill(
        self, full: str, token: str | None, epoch: int, data: bytes,
        hard: float | None, tags: Sequence[str], notice: tuple[str, bytes],
    ) -> bool:  # fmt: skip
        """Store in Redis if the lease survived and no tag invalidation ran;
        the same script publishes ``notice`` (channel, message) to wake the
        callers other processes have waiting for it."""
        if token is None:
            return False  # another caller holds the lease (or Redis is down)
        try:
            if tags:
                await self._l2.register(tags, full, self.tag_ttl(hard))
                if await self._l2.epoch() != epoch:
                    self._metrics.count(Event.FILL_SKIPPED_TAG_INVALIDATED)
                    await self._l2.release(full, token)
                    return False
        except StoreError:  # no fill will come: nobody may wait for one
            self._l2.give_back(full, token)
            return False
        except BaseException:  # cancelled before the FILL was sent: likewise
            self._l2.give_back(full, token)
            raise
        try:  # a FILL whose outcome is unknown gives the lease back itself
            stored = await self._l2.fill(full, token, data, hard, notice)
        except StoreError:
            return False
        if stored == 1:
            return True
        self._metrics.count(
            Event.FILL_SKIPPED_WRITE_PENDING
            if stored == 2
            else Event.FILL_SKIPPED_LEASE_LOST
        )
        return False

    def tag_ttl(self, hard: float | None) -> float | None:
        """A tag set outlives its member by a lease: the member is written up
        to a lease after it is registered."""
        return None if hard is None else hard + self.ttl

    async def wait_for_fill(
        self, full: str, namespace: str, tagged: bool
    ) -> tuple[Entry | None, str | None, int]:
        """Wait for the lease holder's fill. Returns the stored entry (not yet
        checked for freshness or type); or,
        when the lease came free (its holder died), the lease we took over;
        or nothing once ``ttl`` has passed: then the caller loads by itself
        and stores nothing. It never raises because it waited."""
        deadline = self._clock.monotonic() + self.ttl + WAIT_MARGIN
        delay = WAIT_FIRST_POLL
        try:
            while True:
                woken = self._waiting[full] = AsyncFlag()  # before the read
                try:  # the value, or the lease if it is free: one atomic look
                    token, epoch, busy = await self.take(
                        full, namespace, tagged, second_look=True
                    )
                    if isinstance(token, tuple):
                        return token[0], None, 0
                except StoreError:
                    return None, None, 0
                if not busy:
                    self._metrics.count(Event.LEASE_TAKEOVER)
                    return None, token, epoch
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    self._metrics.count(Event.LEASE_WAIT_TIMEOUT)
                    return None, None, 0
                await woken.wait(min(random.uniform(delay / 2, delay), left))
                delay = min(2 * delay, WAIT_MAX_POLL)
        finally:
            self._waiting.pop(full, None)
