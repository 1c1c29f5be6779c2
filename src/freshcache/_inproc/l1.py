"""The in-process tier as a cache uses it: fresh reads, guarded fills, drops.

Shared by both APIs (no I/O, no asyncio). Every fill goes through the
generation counters (``_inproc/generations.py``), so an invalidation that arrives
while a read is in flight is never undone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from freshcache._core.codec.envelope import Codec, Undecodable
from freshcache._core.entry import Entry
from freshcache._core.freshness import early_refresh_from
from freshcache._core.sentinels import MISS, Miss
from freshcache._inproc.generations import Generations, Snapshot
from freshcache._inproc.store import MemoryStore
from freshcache.errors import RevivalError
from freshcache.metrics import ErrorClass, Event, Metrics


class LocalTier:
    """An L1: the only tier of the embedded cache, or a front for Redis."""

    def __init__(
        self,
        store: MemoryStore,
        *,
        codec: Codec,
        metrics: Metrics,
        now: Callable[[], float],
        copy: bool,
        over_redis: bool,
        ttl_cap: float | None,
        current: Callable[[], bool],
        beta: float = 1.0,
    ) -> None:
        self.store = store
        self.copy = copy
        self.generations = Generations()
        self._codec = codec
        self._metrics = metrics
        self._now = now
        self._over_redis = over_redis
        self._ttl_cap = ttl_cap
        self._current = current
        self._beta = beta

    def get(
        self,
        full: str,
        *,
        stale_ok: bool = False,
        reviver: Callable[[Any], Any] | None = None,
        bounded: bool = True,
    ) -> Entry | Miss:
        """A fresh entry (a decoded copy in copy mode, revived by ``reviver``),
        or ``MISS``; with ``stale_ok``, also one past ``fresh_until`` that the
        store still holds (inside its stale window). Outside copy mode the
        entry holds the object that was stored, already of its type.
        ``bounded=False``: the caller has just checked the staleness bound."""
        entry: Entry | Miss = self.store.get(full)
        if entry is MISS:
            return MISS
        if bounded and self._over_redis and not self._current():  # the bound
            return MISS
        now = self._now()
        if now >= entry.fresh_until and not (stale_ok and now < entry.stale_until):
            return MISS
        if self.copy:
            decoded = self._codec.decode(full, entry.value)
            if isinstance(decoded, Undecodable):  # damaged in memory: drop it
                self._metrics.error(ErrorClass.DECODE.detail(decoded.reason))
                self.drop([full])
                return MISS
            if reviver is None:
                return decoded
            try:
                return decoded._replace(value=reviver(decoded.value))
            except RevivalError:
                self._metrics.error(ErrorClass.DECODE.detail("revive"))
                return MISS
        return entry

    def peek(self, full: str) -> tuple[Entry, float | None] | Miss:
        """The entry held for ``full`` (its value still encoded in copy mode)
        and the seconds until L1 drops it, without a hit counted anywhere:
        for ``inspect``."""
        found: tuple[Entry, float | None] | Miss = self.store.peek(full)
        return found

    def snapshot(self, full: str) -> Snapshot:
        """Take before reading Redis or loading; give to ``fill``."""
        return self.generations.snapshot(full)

    def fill(
        self, full: str, entry: Entry, data: bytes | None, size: int,
        hard: float | None, snapshot: Snapshot, *, fence: bool = False,
    ) -> None:  # fmt: skip
        """Store ``entry`` unless an invalidation came since ``snapshot``.

        ``fence``, for a write's own value (Redis holds it now): stored or
        not, no read that took its snapshot before this fill may fill after
        it. Such a read may have fetched the value the write replaced."""
        ttl = self._ttl(entry, hard)
        if ttl is not None and ttl <= 0:
            if fence:
                self.fence([full])
            return
        value = entry._replace(early_from=early_refresh_from(entry, self._beta))
        if self.copy:
            value = value._replace(value=data or self._codec.encode(full, entry))
        store = self.store
        if not self.generations.store_if_unchanged(
            full, snapshot, lambda: store.set(full, value, ttl=ttl, size=size),
            fence=fence,
        ):  # fmt: skip
            self._metrics.count(Event.L1_FILL_SKIPPED)

    def fence(self, fulls: Sequence[str]) -> None:
        """No read that took its snapshot of ``fulls`` before now fills them."""
        self.generations.invalidate(fulls, _nothing)

    def _ttl(self, entry: Entry, hard: float | None) -> float | None:
        """Never past the value's stale window (over Redis) or the cap; the
        hard TTL when L1 is the only tier. Past
        ``fresh_until`` an entry is only served by reads that may serve stale
        (and start the one refresh), as from Redis."""
        if not self._over_redis:
            return hard
        ttl = max(entry.fresh_until, entry.stale_until) - self._now()  # -inf: none
        if self._ttl_cap is not None:
            ttl = min(ttl, self._ttl_cap)
        return None if math.isinf(ttl) else ttl

    def drop(self, fulls: Sequence[str]) -> None:
        store = self.store
        self.generations.invalidate(fulls, lambda: store.delete_many(fulls))

    def drop_tagged(self, tags: Sequence[str]) -> None:
        """Drop every entry carrying one of ``tags`` (a scan: tags are rare)."""
        wanted = frozenset(tags)
        store = self.store
        self.generations.invalidate_all(
            lambda: store.delete_where(lambda entry: not wanted.isdisjoint(entry.tags))
        )

    def after_fork(self) -> None:
        """In a forked child: empty, with new locks; no fill from before the
        fork lands."""
        self.generations.after_fork()
        self.store.after_fork()

    def flush(self) -> None:
        """Drop everything and cancel every fill in flight."""
        self.generations.invalidate_all(self.store.clear)


def _nothing() -> None:
    pass
