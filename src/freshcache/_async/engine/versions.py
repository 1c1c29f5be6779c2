"""Namespace versions: ``bump`` orphans every key of a namespace in O(1).

Each process caches the versions it has used (bumps arrive as bus messages)
and uses them only while the engine says they are current (the bus's
watermark: every bump that returned more than the bound ago has arrived);
otherwise it reads them from Redis. It forgets them on every resubscribe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from freshcache._concurrency import AsyncSingleFlight
from freshcache.errors import StoreError

if TYPE_CHECKING:
    from freshcache._async.redis.store import AsyncRedisStore


class AsyncVersions:
    def __init__(
        self,
        l2: AsyncRedisStore | None,
        *,
        current: Callable[[], bool],
        listen: Callable[[], None],
    ) -> None:
        self._l2 = l2
        self._current = current
        self._listen = listen
        self.known: dict[str, int] = {}  # read without a lock by the hot path
        self._era = 0  # bumped by forget(): a read from before it is not kept
        # Concurrent reads of one namespace's version share one GET: after a
        # start or a resubscribe, a burst of callers would otherwise send one
        # each, overflow the pool, and bypass the cache to the loader.
        self._reads = AsyncSingleFlight()

    def reset(self) -> None:
        """A new event loop, or a forked child: reads in flight belong to the
        old one. What is known over Redis is read again (the embedded cache's
        versions live only here: they stay)."""
        self._reads = AsyncSingleFlight()
        if self._l2 is not None:
            self.forget()

    async def get(self, namespace: str, *, hard: bool = False) -> int:
        """The current version.

        Raises ``StoreError`` when it is not known and Redis cannot tell: a
        guess could read a namespace's orphaned, older entries. ``hard``: for
        an invalidation, read on the invalidation path (its own deadline and
        retries), and never answered from a version that is not current
        (invalidating an old version's key would miss the live one).
        """
        cached = self.known.get(namespace)
        l2 = self._l2
        if l2 is None:
            return self.known.setdefault(namespace, 0)
        self._listen()
        if cached is not None and self._current():
            return cached
        era = self._era
        if hard:
            fetched = await l2.version(namespace, hard=True)
            if era == self._era:
                self.learn(namespace, fetched)
            return max(fetched, self.known.get(namespace, 0))
        try:
            fetched = await self._reads.run(
                namespace, lambda: l2.version(namespace), join=self._current()
            )
        except StoreError:
            if cached is None:
                raise
            return cached
        if era == self._era:  # no resubscribe meanwhile
            self.learn(namespace, fetched)
        return max(fetched, self.known.get(namespace, 0))

    async def bump(self, namespace: str) -> int:
        if self._l2 is not None:
            version = await self._l2.bump(namespace)
        else:
            version = self.known.get(namespace, 0) + 1
        self.learn(namespace, version)
        return version

    def learn(self, namespace: str, version: int) -> None:
        """Keys carry their namespace version, so old entries simply become
        unreachable: nothing to drop, no fill to cancel."""
        known = self.known.get(namespace)
        if known is None or version > known:
            self.known[namespace] = version

    def forget_namespace(self, namespace: str) -> None:
        """Another version of the prefix bumped ``namespace``; its bump moved
        this version's counter too (every live version's), but its number is
        not ours: read ours from Redis again."""
        self._era += 1
        self.known.pop(namespace, None)
        self._reads.forget([namespace])

    def forget(self) -> None:
        """The bus (re)connected: bumps may have been missed."""
        self._era += 1
        self.known.clear()
        self._reads.forget()  # a caller from now on reads anew
