"""Write-through: refresh the cache after the block that commits a write.

``async with cache.write_through("user:1", reload=load_user_1):`` around the
database transaction. On a normal exit (the transaction committed) it
invalidates the keys and tags, then, with ``reload``, refills the key through
the leased ``get_or_load`` path, re-reading the row from the database. On an
exception (a rollback) it does nothing.

Why two writers cannot leave the older value cached: nothing here stores a
value the writer *wrote*; the refill stores what a read *after* the
writer's own invalidation returned, under a lease that every later
invalidation revokes. Let W1 commit v1 and W2 commit v2 after it. W2's
invalidation follows W2's commit, so a refill either reads after W2's commit
(and loads v2), or holds a lease that W2's invalidation revokes (and stores
nothing). The sequences are in docs/coherence.md, section 9.

When Redis cannot take the invalidation, the commit stands: the invalidation
is queued and retried (``retry.py``), the block does not raise, and this
process serves none of the keys from the cache until it lands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from freshcache._types import MISS, TTL, UNSET, Unset
from freshcache.core.tagging import TagSource
from freshcache.errors import StoreError

if TYPE_CHECKING:
    from freshcache._async.cache import AsyncCache


class AsyncWriteThrough:
    """What ``AsyncCache.write_through`` returns: an async context manager.

    After a normal exit, ``value`` is what ``reload`` loaded (``MISS`` without
    a reload) and ``landed`` tells whether Redis took the invalidation (False:
    it is queued for retry).
    """

    def __init__(
        self,
        cache: AsyncCache,
        keys: Sequence[str],
        *,
        tags: Sequence[str],
        reload: Callable[[], Any] | None,
        ttl: TTL | Unset = UNSET,
        reload_tags: Sequence[str | TagSource] = (),
    ) -> None:
        if reload is not None and len(keys) != 1:
            raise ValueError("reload refills one key: give exactly one key")
        if not keys and not tags:
            raise ValueError("write_through needs keys or tags to refresh")
        self._cache = cache
        self._keys = tuple(keys)
        self._tags = tuple(tags)
        self._reload = reload
        self._ttl = ttl
        self._reload_tags = tuple(reload_tags)
        self.value: Any = MISS
        self.landed = False

    async def __aenter__(self) -> AsyncWriteThrough:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:  # committed: refresh; rolled back: leave it alone
            await self.refresh()

    async def refresh(self) -> Any:
        """Invalidate (queued for retry if Redis cannot take it), then refill
        from the source under a lease. Returns the reloaded value, or ``MISS``."""
        cache = self._cache
        self.landed = True
        try:
            if self._keys:
                await cache.invalidate(*self._keys)
        except StoreError:  # queued and retried: the commit stands
            self.landed = False
        try:
            if self._tags:
                await cache.invalidate_tags(*self._tags)
        except StoreError:
            self.landed = False
        if not self.landed:
            cache._metrics.count("write_through_queued")
        if self._reload is not None:
            self.value = await cache.get_or_load(
                self._keys[0], self._reload, ttl=self._ttl, tags=self._reload_tags
            )
        return self.value
