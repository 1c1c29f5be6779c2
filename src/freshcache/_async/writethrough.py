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

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from freshcache._concurrency import AsyncShield, acheck_function
from freshcache._core.sentinels import MISS, TTL, UNSET, Unset, ttl_seconds
from freshcache._core.tagging import TagSource, check_tag
from freshcache._core.templates import KeyTemplate
from freshcache.metrics import Event

if TYPE_CHECKING:
    from freshcache._async.decorator import AsyncCachedFunction
    from freshcache.metrics import Metrics

P = ParamSpec("P")
R = TypeVar("R")


class AsyncRefresher(Protocol):
    """What write-through needs of its cache (``AsyncCache`` is one)."""

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        ttl: TTL | Unset = ...,
        tags: Iterable[str | TagSource] = ...,
    ) -> Any:
        """The cached value of ``key``, or ``loader()``'s, stored under a lease."""
        ...

    async def invalidate(self, *keys: str) -> bool:
        """Remove ``keys`` everywhere; False: queued for retry."""
        ...

    async def invalidate_tags(self, *tags: str) -> bool:
        """Remove every key stored with ``tags`` everywhere; False: queued."""
        ...


class AsyncWriteThrough:
    """What ``AsyncCache.write_through`` returns: an async context manager.

    Put it *outside* the transaction, so that its exit runs after the commit::

        async with cache.write_through("user:1", reload=lambda: load_user(1)):
            async with conn.transaction():
                await conn.execute("UPDATE users ...")

    On a normal exit: invalidate ``keys`` and ``tags`` (queued and retried,
    never raised, if Redis cannot be reached), then with ``reload`` refill
    the one key by re-reading the source under a lease (``get_or_load`` with
    ``ttl`` and ``reload_tags``, the tags its readers store it with). On an
    exception: nothing. Afterwards ``value`` is what ``reload`` returned
    (``MISS`` without one) and ``landed`` whether Redis took the
    invalidation (False: queued).
    """

    def __init__(
        self,
        cache: AsyncRefresher,
        keys: Sequence[str],
        *,
        tags: Iterable[str],
        reload: Callable[[], Any] | None,
        ttl: TTL | Unset = UNSET,
        reload_tags: Iterable[str | TagSource] = (),
        metrics: Metrics,
    ) -> None:
        if isinstance(tags, str) or isinstance(reload_tags, str):
            raise TypeError("tags is a list of tags, not one str")
        tags = [check_tag(t) for t in tags]
        if reload is not None and len(keys) != 1:
            raise ValueError("reload refills one key: give exactly one key")
        if not keys and not tags:
            raise ValueError("write_through needs keys or tags to refresh")
        self._cache = cache
        self._metrics = metrics
        self._keys = tuple(keys)
        self._tags = tuple(tags)
        self._reload = reload
        if ttl is not UNSET:  # checked before the transaction, not after it
            ttl_seconds(ttl)
        self._ttl = ttl
        self._reload_tags = tuple(
            t if callable(t) else check_tag(t) for t in reload_tags
        )
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
        from the source under a lease. Returns the reloaded value, or ``MISS``.

        The invalidation runs to its end even if the caller is cancelled
        meanwhile: the commit has happened, so it must not be lost.
        """
        await AsyncShield.run(self._invalidate)
        if self._reload is not None:
            self.value = await self._cache.get_or_load(
                self._keys[0], self._reload, ttl=self._ttl, tags=self._reload_tags
            )
        return self.value

    async def _invalidate(self) -> None:
        cache = self._cache
        landed = True
        if self._keys:
            landed = await cache.invalidate(*self._keys)
        if self._tags:
            landed = await cache.invalidate_tags(*self._tags) and landed
        self.landed = landed
        if not landed:  # queued and retried: the commit stands
            self._metrics.count(Event.WRITE_THROUGH_QUEUED)


def writes(
    cache: AsyncRefresher,
    readers: Sequence[AsyncCachedFunction[..., Any]],
    tags: Iterable[str],
    *,
    metrics: Metrics,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``AsyncCache.writes``: refresh ``readers`` after the decorated function
    (which performs and commits a write) returns; nothing if it raises::

        @cache.writes(get_user, tags=["team:{team_id}"])
        async def rename_user(user_id: int, team_id: int, name: str) -> None:
            async with conn.transaction():
                await conn.execute("UPDATE users ...")

    Each reader (a ``cached`` function) gets the decorated function's
    arguments of the same names: its key is invalidated, then it is called,
    which refills it under a lease with its own TTL and tags. ``tags`` are
    templates of the decorated function's arguments. Redis unreachable: as
    ``write_through`` (queued, retried, not raised).
    """
    if isinstance(tags, str):
        raise TypeError("tags is a list of tags, not one str")
    templates = tuple(tags)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        acheck_function(func, "AsyncCache.writes")
        signature = inspect.signature(func)
        plans = [(reader, _shared_names(reader, signature)) for reader in readers]
        tag_renders = [KeyTemplate.compile(t, func).render for t in templates]

        @functools.wraps(func)
        async def write(*args: P.args, **kwargs: P.kwargs) -> R:
            result = await func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = [{n: bound.arguments[n] for n in names} for _, names in plans]
            keys = [
                reader.key(**g) for (reader, _), g in zip(plans, given, strict=True)
            ]
            rendered = [render(args, kwargs) for render in tag_renders]
            if keys or rendered:
                refresh = AsyncWriteThrough(
                    cache, keys, tags=rendered, reload=None, metrics=metrics
                )
                await refresh.refresh()
            for (reader, _), arguments in zip(plans, given, strict=True):
                await reader(**arguments)  # refills under a lease
            return result

        return write

    return decorate


def _shared_names(
    reader: AsyncCachedFunction[..., Any], writer: inspect.Signature
) -> tuple[str, ...]:
    """The reader's parameters, all of which the writer must have (by name)."""
    wanted = inspect.signature(reader.__wrapped__).parameters
    missing = [
        name
        for name, parameter in wanted.items()
        if name not in writer.parameters and parameter.default is parameter.empty
    ]
    if missing:
        raise TypeError(f"the written function has no argument named {missing}")
    return tuple(name for name in wanted if name in writer.parameters)
