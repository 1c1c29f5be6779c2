"""The cache facade: cache-aside over the in-process tier or Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

from freshcache._async.decorator import AsyncCachedFunction, wrap
from freshcache._async.stores.redis import AsyncRedisStore
from freshcache._concurrency import ainvoke
from freshcache._models import RevivalError, make_reviver
from freshcache._types import MISS, TTL, UNSET, Miss, Unset, ttl_seconds
from freshcache.clock import SYSTEM_CLOCK, Clock, SystemClock
from freshcache.codec import Codec, ValueTooLargeError
from freshcache.config import L1
from freshcache.core.entry import Entry
from freshcache.core.freshness import lifetimes
from freshcache.core.keys import KeyBuilder
from freshcache.errors import SerializationError, StoreError
from freshcache.memory import MemoryStore
from freshcache.metrics import CacheStats, Metrics, StatsRecorder

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
Reviver = Callable[[Any], Any] | None
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _namespace(key: str) -> str:
    return key.partition(":")[0]


def _stale_seconds(stale_ttl: TTL) -> float:
    if stale_ttl == 0:
        return 0.0
    seconds = ttl_seconds(stale_ttl, name="stale_ttl")
    if seconds is None:
        raise ValueError("stale_ttl must be a number of seconds (0: no stale window)")
    return seconds


class AsyncCache:
    """Cache-aside over an in-process tier (no URL) or Redis (a ``redis://`` URL).

    Keys given to the methods are relative (``"user:1"``); every key stored
    starts with ``prefix:version:``. Build keys from values with
    :meth:`key`, which escapes them so that different inputs never share a
    key. ``get`` returns ``MISS`` on a miss; a cached ``None`` is a hit.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "fc",
        version: str = "v1",
        ttl: TTL = 3600,
        stale_ttl: TTL = 0,
        l1: L1 | None = None,
        serializer: Literal["json", "msgpack", "pickle"] = "json",
        secret: bytes | str | None = None,
        compress_threshold: int | None = 4096,
        max_value_bytes: int = 1 << 20,
        timeout: float = 0.05,
        max_connections: int = 16,
        strict: bool = False,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._keys = KeyBuilder(prefix, version)
        self._head = self._keys.head
        self._ttl = ttl_seconds(ttl)
        self._stale_ttl = _stale_seconds(stale_ttl)
        self._codec = Codec(
            serializer,
            secret=secret,
            compress_threshold=compress_threshold,
            max_value_bytes=max_value_bytes,
        )
        self._strict = strict
        self._metrics: Metrics = StatsRecorder() if metrics is None else metrics
        self._clock = clock
        # The wall clock, without a Python frame on the real one (hot path).
        self._now = time.time if type(clock) is SystemClock else clock.time
        self._local: MemoryStore | None = None
        self._remote: AsyncRedisStore | None = None
        if url is None or url == "memory://":
            tier = l1 or L1()
            self._local = MemoryStore(
                max_entries=tier.max_entries,
                max_bytes=tier.max_bytes,
                clock=clock,
                on_evict=self._on_local_evict,
            )
        elif url.startswith(_REDIS_SCHEMES):
            if l1 is not None:
                raise ValueError(
                    "an L1 tier over Redis needs coherent invalidation, which is "
                    "not built yet; use Cache() for in-process or a URL for Redis"
                )
            self._remote = AsyncRedisStore(
                url,
                codec=self._codec,
                metrics=self._metrics,
                clock=clock,
                timeout=timeout,
                max_connections=max_connections,
            )
        else:
            raise ValueError(f"unsupported cache URL scheme: {url.split(':', 1)[0]!r}")

    # -- keys -------------------------------------------------------------

    def key(self, namespace: str, *parts: object, **named: object) -> str:
        """A readable, injective relative key.

        ``key("user", 1, "profile")`` is ``"user:1:profile"``.
        """
        return self._keys.key(namespace, *parts, **named)[len(self._head) :]

    def _full(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise TypeError(f"a cache key is a non-empty str, not {key!r}")
        if "{" in key or "}" in key:
            raise ValueError(
                "raw keys may not contain '{' or '}' (Redis Cluster hash tags); "
                "build keys from values with cache.key(...)"
            )
        return self._head + key

    # -- reads ------------------------------------------------------------

    async def get(self, key: str, default: Any = MISS, *, returns: Any = None) -> Any:
        """The fresh cached value for ``key``, or ``default`` (``MISS``)."""
        full = self._full(key)
        entry = await self._lookup(full, _namespace(key), make_reviver(returns))
        return default if entry is MISS else entry.value

    async def get_many(
        self, keys: Iterable[str], *, returns: Any = None
    ) -> dict[str, Any]:
        """The fresh cached values among ``keys``, as a dict of hits."""
        keys = list(dict.fromkeys(keys))
        fulls = [self._full(k) for k in keys]
        found: dict[str, Any] = {}
        now = self._now()
        remaining: list[tuple[str, str]] = []
        for key, full in zip(keys, fulls, strict=True):
            entry = self._local.get(full) if self._local is not None else MISS
            if entry is not MISS and now < entry.fresh_until:
                self._metrics.hit("memory", _namespace(key))
                found[key] = entry.value
            else:
                remaining.append((key, full))
        if remaining and self._remote is not None:
            reviver = make_reviver(returns)
            try:
                entries = await self._remote.get_many([full for _, full in remaining])
            except StoreError:
                entries = [MISS] * len(remaining)
            still: list[tuple[str, str]] = []
            for (key, full), entry in zip(remaining, entries, strict=True):
                entry = await self._usable(full, entry, reviver, now)
                if entry is MISS:
                    self._metrics.miss("redis", _namespace(key))
                    still.append((key, full))
                else:
                    self._metrics.hit("redis", _namespace(key))
                    found[key] = entry.value
            remaining = still
        for key, _ in remaining:
            self._metrics.miss("all", _namespace(key))
        return found

    async def _lookup(
        self,
        full: str,
        namespace: str,
        reviver: Reviver,
        *,
        local_checked: bool = False,
    ) -> Entry | Miss:
        """A fresh entry from the first tier that has one, or ``MISS``.

        ``local_checked``: the caller already found no fresh entry in L1.
        """
        entry: Entry | Miss
        if self._local is not None:
            entry = MISS if local_checked else cast(Entry, self._local.get(full))
            if entry is not MISS and self._now() < entry.fresh_until:
                self._metrics.hit("memory", namespace)
                return entry
            self._metrics.miss("memory", namespace)
        if self._remote is not None:
            try:
                entry = await self._remote.get(full)
            except StoreError:
                entry = MISS
            entry = await self._usable(full, entry, reviver, self._now())
            if entry is not MISS:
                self._metrics.hit("redis", namespace)
                return entry
            self._metrics.miss("redis", namespace)
        self._metrics.miss("all", namespace)
        return MISS

    async def _usable(
        self, full: str, entry: Entry | Miss, reviver: Reviver, now: float
    ) -> Entry | Miss:
        """A fresh Redis entry, revived to the caller's type; else ``MISS``.

        Data that no longer fits the type (a dataclass that gained a field) is
        a miss, counted as ``decode:revive`` and removed.
        """
        if entry is MISS or now >= entry.fresh_until:
            return MISS
        if reviver is None:
            return entry
        try:
            return entry._replace(value=reviver(entry.value))
        except RevivalError:
            self._metrics.error("decode:revive")
            if self._remote is not None:
                await self._remote.discard(full)
            return MISS

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        returns: Any = None,
    ) -> Any:
        """Cache-aside: the cached value, or ``loader()``'s result, stored."""
        full = self._full(key)
        namespace = _namespace(key)
        entry = await self._lookup(full, namespace, make_reviver(returns))
        if entry is not MISS:
            return entry.value
        return await self._load(full, namespace, loader, ttl, stale_ttl)

    async def _load(
        self,
        full: str,
        namespace: str,
        loader: Callable[[], Any],
        ttl: TTL | Unset,
        stale_ttl: TTL | Unset,
    ) -> Any:
        started = self._clock.monotonic()
        try:
            value = await ainvoke(loader)
        except BaseException:
            self._metrics.load(
                namespace, self._clock.monotonic() - started, failed=True
            )
            raise
        delta = self._clock.monotonic() - started
        self._metrics.load(namespace, delta, failed=False)
        await self._store(full, value, ttl, stale_ttl, delta)
        return value

    # -- writes -----------------------------------------------------------

    def _lifetimes(
        self, ttl: TTL | Unset, stale_ttl: TTL | Unset
    ) -> tuple[float | None, float]:
        soft = self._ttl if ttl is UNSET else ttl_seconds(ttl)
        stale = self._stale_ttl if stale_ttl is UNSET else _stale_seconds(stale_ttl)
        return soft, stale

    def _encode(
        self,
        full: str,
        value: Any,
        ttl: TTL | Unset,
        stale_ttl: TTL | Unset,
        delta: float,
    ) -> tuple[Entry, bytes, float | None] | None:
        """The entry, its envelope bytes and its hard TTL; None if not cacheable."""
        soft, stale = self._lifetimes(ttl, stale_ttl)
        now = self._now()
        fresh_until, hard = lifetimes(now, soft, stale)
        entry = Entry(value, now, fresh_until, delta)
        try:
            return entry, self._codec.encode(full, entry), hard
        except ValueTooLargeError:
            self._metrics.error("oversize")
            if self._strict:
                raise
        except SerializationError as exc:
            self._metrics.error("serialize")
            log.warning(
                "freshcache: not caching a value of type %s: %s",
                type(value).__name__,
                exc,
            )
            if self._strict:
                raise
        return None

    async def _store(
        self,
        full: str,
        value: Any,
        ttl: TTL | Unset,
        stale_ttl: TTL | Unset,
        delta: float,
    ) -> bool:
        encoded = self._encode(full, value, ttl, stale_ttl, delta)
        if encoded is None:
            return False
        entry, data, hard = encoded
        if self._local is not None:
            self._local.set(full, entry, ttl=hard, size=len(data))
        if self._remote is not None:
            try:
                await self._remote.set(full, data, hard)
            except StoreError:
                return False
        return True

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> bool:
        """Store ``value``; False when it was not cached (unserializable, too
        large, or the server unreachable). ``ttl=None``: no expiry."""
        return await self._store(self._full(key), value, ttl, stale_ttl, 0.0)

    async def set_many(
        self,
        values: Mapping[str, Any],
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> bool:
        """Store several values (one pipeline on Redis); False if any was not cached."""
        stored = True
        batch: list[tuple[str, bytes, float | None]] = []
        for key, value in values.items():
            full = self._full(key)
            encoded = self._encode(full, value, ttl, stale_ttl, 0.0)
            if encoded is None:
                stored = False
                continue
            entry, data, hard = encoded
            if self._local is not None:
                self._local.set(full, entry, ttl=hard, size=len(data))
            batch.append((full, data, hard))
        if batch and self._remote is not None:
            try:
                await self._remote.set_many(batch)
            except StoreError:
                return False
        return stored

    async def invalidate(self, *keys: str) -> None:
        """Remove ``keys`` from every tier.

        Raises ``StoreError`` when Redis cannot be reached: an invalidation
        is never silently dropped.
        """
        fulls = [self._full(k) for k in keys]
        if self._local is not None:
            self._local.delete_many(fulls)
        if self._remote is not None:
            await self._remote.delete(fulls)

    async def delete(self, key: str) -> bool:
        """Remove one key from every tier; True if a tier held it."""
        full = self._full(key)
        removed = self._local.delete(full) if self._local is not None else False
        if self._remote is not None:
            removed = await self._remote.delete([full]) > 0 or removed
        return removed

    async def clear(self) -> None:
        """Remove every key under this cache's ``prefix:version:`` (never FLUSHDB)."""
        if self._local is not None:
            self._local.clear()
        if self._remote is not None:
            await self._remote.clear(self._head + "*")

    # -- decorator ---------------------------------------------------------

    def cached(
        self,
        template: str | None = None,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """Decorate a function whose result is cached under ``template``.

        ``template`` names the key, e.g. ``"user:{user_id}"``; it is compiled
        once, here. Without one, the key is the function's qualified name and
        all its arguments. The decorated function gains ``.key(...)`` and
        ``.invalidate(...)``.
        """
        self._lifetimes(ttl, stale_ttl)  # reject bad TTLs at decoration time

        def decorate(func: Callable[P, Awaitable[R]]) -> AsyncCachedFunction[P, R]:
            return wrap(self, func, template, ttl=ttl, stale_ttl=stale_ttl)

        return decorate

    # -- health and lifecycle ---------------------------------------------

    def stats(self) -> CacheStats:
        """Hits and misses per tier and namespace, loads, evictions, errors, latency."""
        return self._metrics.snapshot()

    def _on_local_evict(self, cause: str) -> None:
        self._metrics.eviction("memory", cause)

    async def aclose(self) -> None:
        if self._remote is not None:
            await self._remote.aclose()

    async def __aenter__(self) -> AsyncCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        tier = "redis" if self._remote is not None else "memory"
        return f"<{type(self).__name__} {tier} {self._head!r}>"
