"""The cache facade: cache-aside over the in-process tier or Redis."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, overload

from freshcache._async.decorator import AsyncCachedFunction, wrap
from freshcache._async.engine.disabled import AsyncDisabledEngine
from freshcache._async.engine.events import AsyncEvents
from freshcache._async.engine.live import (
    AsyncStatsPublisher,
    inspect_redis,
    local_view,
)
from freshcache._async.engine.tiers import AsyncEngine, bypass_reason
from freshcache._async.live import AsyncLive
from freshcache._async.writebehind.producer import (
    AsyncWriteBehind,
    Prepared,
    WriteBehindHost,
)
from freshcache._async.writethrough import AsyncWriteThrough, writes
from freshcache._concurrency import AsyncLoader, AsyncLoopOwner, ainvoke
from freshcache._core.clock import SYSTEM_CLOCK, Clock, ServerTime, SystemClock
from freshcache._core.codec.envelope import Codec
from freshcache._core.codec.revival import make_reviver
from freshcache._core.config import ENABLED_VARIABLE, L1, resolve_enabled
from freshcache._core.events import Origin
from freshcache._core.freshness import Lifetime
from freshcache._core.keys import KeyBuilder, check_raw_key, escape
from freshcache._core.layout import bus_channel, versioned
from freshcache._core.logs import redact_key
from freshcache._core.sentinels import (
    MAX_CONNECTIONS,
    MAX_TIMEOUT,
    MISS,
    TTL,
    UNSET,
    Miss,
    Unset,
    check_number,
    stale_seconds,
    ttl_seconds,
)
from freshcache._core.tagging import TagSource, check_tag
from freshcache._core.templates import KeyTemplate
from freshcache._core.updates import Change, added, incremented, touched
from freshcache._inproc.live import KeyInfo, L1View
from freshcache._inproc.store import MemoryStore
from freshcache.errors import StoreError
from freshcache.metrics import CacheStats, Metrics, StatsRecorder, Tier
from freshcache.tracing import (
    Attribute,
    AttributeValue,
    InvalidationOutcome,
    SpanName,
    Tracing,
)

if TYPE_CHECKING:
    from freshcache._async.redis.connect import Client
    from freshcache._async.redis.store import AsyncRedisStore

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
D = TypeVar("D")
_REDIS_SCHEMES: Final = (
    "redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://",
    "rediss+cluster://",
)  # fmt: skip


def _scheme(url: str) -> str:
    """A URL's scheme for a message, never the rest (it may hold a password)."""
    scheme, found, _ = url.partition("://")
    if found and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return repr(scheme)
    return (
        "none (expected redis://, rediss://, unix://, redis+sentinel:// or "
        "redis+cluster://)"
    )


_ABSENT: Final = L1View(False)


def _namespace(key: str) -> str:
    return key.partition(":")[0]


class AsyncCache:
    """Cache-aside over an in-process tier, Redis, or both.

    ``AsyncCache()`` (or ``"memory://"``) is the embedded default: one
    in-process tier, no server. A ``redis://`` URL adds the shared tier;
    ``l1=L1(...)`` puts an in-process tier in front of it, kept coherent
    across processes by leases, generations and a pub/sub bus.

    Keys given to the methods are relative (``"user:1"``); every key stored
    starts with ``prefix:version:``. Build keys from values with
    :meth:`key`, which escapes them so that different inputs never share a
    key. ``get`` returns ``MISS`` on a miss; a cached ``None`` is a hit.

    ``enabled=False`` (or ``FRESHCACHE_ENABLED=0``, read when ``enabled`` is
    not given) disables the cache, with the same API: every read loads,
    every write stores nothing, and nothing connects to Redis (see
    ``enabled``).

    ``private_namespaces={"session", "token"}``: keys of these namespaces
    (their parts can be secrets: a session id, a token) appear in
    freshcache's log records and exception messages only as
    ``namespace:<redacted:hash>`` (``redact``; ``docs/logging.md``).
    ``publish_stats=N`` (seconds, above 0 and at most 3600; off by
    default) publishes this process's
    ``stats()`` to Redis every N seconds for the live view across processes
    (``live``, ``freshcache stats``); the embedded cache does not publish.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Client | None = None,
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
        lease_ttl: float = 5.0,
        xfetch_beta: float = 1.0,
        ttl_jitter: float = 0.0,
        strict: bool = False,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        clock: Clock = SYSTEM_CLOCK,
        enabled: bool | None = None,
        private_namespaces: Iterable[str] = (),
        publish_stats: float | None = None,
    ) -> None:
        self._enabled = resolve_enabled(enabled, os.environ.get(ENABLED_VARIABLE))
        self._private = _private(private_namespaces)
        self._keys = KeyBuilder(prefix, version)
        self._head = self._keys.head
        if client is not None and url is not None:
            raise ValueError("give a URL or a client, not both")
        if isinstance(client, str):
            raise TypeError("client= takes a client or a pool; a URL comes first")
        self._ttl = ttl_seconds(ttl)
        self._stale_ttl = stale_seconds(stale_ttl)
        check_number(xfetch_beta, "xfetch_beta")
        check_number(ttl_jitter, "ttl_jitter", high=1, high_open=True)
        check_number(timeout, "timeout", low_open=True, high=MAX_TIMEOUT)
        check_number(
            max_connections,
            "max_connections",
            low=1,
            high=MAX_CONNECTIONS,
            integer=True,
        )
        if publish_stats is not None:
            check_number(publish_stats, "publish_stats", low_open=True, high=3600)
        lease = ttl_seconds(lease_ttl, name="lease_ttl")
        if lease is None:
            raise ValueError("lease_ttl must be a number of seconds")
        codec = Codec(
            serializer,
            secret=secret,
            compress_threshold=compress_threshold,
            max_value_bytes=max_value_bytes,
        )
        self._codec = codec
        self._metrics: Metrics = StatsRecorder() if metrics is None else metrics
        self._clock = clock
        # The wall clock, without a Python frame on the real one (hot path).
        self._now = time.time if type(clock) is SystemClock else clock.time
        local: MemoryStore | None = None
        remote: AsyncRedisStore | None = None
        embedded = client is None and (url is None or url == "memory://")
        if url is not None and not embedded and not url.startswith(_REDIS_SCHEMES):
            raise ValueError(f"unsupported cache URL scheme: {_scheme(url)}")
        # What belongs to one event loop (connections, tasks) or one process.
        owner = AsyncLoopOwner()
        on = self._enabled  # off: no tier is built, so nothing can connect
        if on and (embedded or l1 is not None):
            tier = l1 or L1()
            local = MemoryStore(
                max_entries=tier.max_entries,
                max_bytes=tier.max_bytes,
                clock=clock,
                on_evict=self._on_local_evict,
            )
        if on and not embedded:
            from freshcache._async.redis.store import AsyncRedisStore  # needs redis

            remote = AsyncRedisStore(
                url or client,  # type: ignore[arg-type]  # one of them is set
                head=self._head,
                codec=codec,
                metrics=self._metrics,
                clock=clock,
                timeout=timeout,
                max_connections=max_connections,
                owner=owner,
            )
            if type(clock) is SystemClock:
                self._now = _server_now(remote.server_time)
        self._engine = (AsyncEngine if on else AsyncDisabledEngine)(
            head=self._head,
            prefix=prefix,
            origin=Origin(),
            l1=local,
            l1_ttl=None if l1 is None else l1.ttl,
            l1_copy=l1 is not None and l1.copy,
            l2=remote,
            codec=codec,
            metrics=self._metrics,
            clock=clock,
            now=self._now,
            lease_ttl=lease,
            strict=strict,
            beta=xfetch_beta,
            jitter=ttl_jitter,
            max_staleness=(L1() if l1 is None else l1).max_staleness,
            stale_when_down=0.0 if l1 is None else l1.serve_stale_when_down,
            owner=owner,
            tracing=tracing,
        )
        engine = self._engine
        if publish_stats is not None and remote is not None:
            engine.publisher = AsyncStatsPublisher(
                remote, prefix=prefix, head=self._head, period=publish_stats,
                name=engine.process_name, stats=self.stats,
                extra=engine.live_state, peek=self._peek_published, now=self._now,
                metrics=self._metrics, owner=owner,
            )  # fmt: skip
        self._live = AsyncLive(
            engine, prefix=prefix, inspect=self.inspect, queue=self._queue
        )

    @property
    def enabled(self) -> bool:
        """False when the cache is disabled: by ``enabled=False`` or, when
        ``enabled`` is not given, by ``FRESHCACHE_ENABLED`` (``0``, ``false``,
        ``no``, ``off``; ``1``, ``true``, ``yes``, ``on`` or unset: enabled;
        any other value raises ``ValueError`` at construction).

        Disabled, the API is the same: ``get`` returns the default,
        ``get_many`` no hits, ``get_or_load`` and ``cached`` functions call
        the loader on every call (no single flight); ``set``/``set_many``
        store nothing and return False; invalidations, ``bump`` and ``clear``
        change nothing and report success; ``events.publish`` runs this
        process's handlers only. Every lookup is counted in
        ``stats().lookups.bypasses["disabled"]`` and every loader call in
        ``loads``. ``write_behind`` raises (its queue holds writes on their
        way to the database). A disabled process does not invalidate other
        processes' caches: never run one beside enabled processes that share
        its keys.
        """
        return self._enabled

    # -- keys -------------------------------------------------------------

    def key(self, namespace: str, *parts: object, **named: object) -> str:
        """A readable, injective relative key.

        ``key("user", 1, "profile")`` is ``"user:1:profile"``.
        """
        return self._keys.key(namespace, *parts, **named)[len(self._head) :]

    def redact(self, key: str) -> str:
        """``key`` (as given to this cache, or a full key) as freshcache's
        log records and exception messages show it: itself, or, in a
        namespace of ``private_namespaces``, ``namespace:<redacted:hash>``
        (an 8-hex-digit hash: records about one key can be matched up)."""
        return redact_key(key, self._private, self._head)

    def _base(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise TypeError(f"a cache key is a non-empty str, not {key!r}")
        check_raw_key(key)  # no bookkeeping, no other namespace version
        return self._head + key

    async def _resolve(self, key: str, *, hard: bool = False) -> tuple[str, str]:
        """The full key under its namespace's current version, and the namespace.

        Raises ``StoreError`` when the version is unknown and Redis is out of
        reach: reads then bypass the cache, writes are skipped, invalidations
        (``hard``: read on the invalidation path) are queued.
        """
        base = self._base(key)
        namespace = _namespace(key)
        version = await self._engine.versions.get(namespace, hard=hard)
        return versioned(self._head, namespace, version, base), namespace

    # -- reads ------------------------------------------------------------

    @overload
    async def get(
        self, key: str, default: Any = ..., *, returns: None = ...
    ) -> Any: ...
    @overload
    async def get(self, key: str, *, returns: type[T]) -> T | Miss: ...
    @overload
    async def get(self, key: str, default: D, *, returns: type[T]) -> T | D: ...
    async def get(self, key: str, default: Any = MISS, *, returns: Any = None) -> Any:
        """The fresh cached value for ``key``, or ``default`` (``MISS``).

        ``returns`` (a type: a dataclass, a pydantic model, ``list[User]``)
        turns the cached data back into it, and types the result for type
        checkers."""
        try:
            full, namespace = await self._resolve(key)
        except StoreError as exc:
            self._metrics.bypass(Tier.CACHE, _namespace(key), bypass_reason(exc))
            return default
        entry, _ = await self._engine.lookup(
            full, namespace, make_reviver(returns), local_checked=False
        )
        return default if entry is MISS else entry.value

    async def get_many(
        self, keys: Iterable[str], *, returns: Any = None
    ) -> dict[str, Any]:
        """The fresh cached values among ``keys``, as a dict of hits."""
        wanted: dict[str, tuple[str, str]] = {}
        for key in dict.fromkeys(keys):
            try:
                wanted[key] = await self._resolve(key)
            except StoreError as exc:
                self._metrics.bypass(Tier.CACHE, _namespace(key), bypass_reason(exc))
        entries = await self._engine.lookup_many(
            list(wanted.values()), make_reviver(returns)
        )
        return {
            key: entry.value
            for key, entry in zip(wanted, entries, strict=True)
            if entry is not MISS
        }

    # unasync: skip-begin (the sync twin takes plain loaders: no overloads)
    @overload
    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: TTL | Unset = ...,
        stale_ttl: TTL | Unset = ...,
        tags: Iterable[str | TagSource] = ...,
        negative_ttl: TTL = ...,
        returns: Any = ...,
    ) -> T: ...
    @overload
    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], T],
        *,
        ttl: TTL | Unset = ...,
        stale_ttl: TTL | Unset = ...,
        tags: Iterable[str | TagSource] = ...,
        negative_ttl: TTL = ...,
        returns: Any = ...,
    ) -> T: ...
    # unasync: skip-end
    async def get_or_load(
        self,
        key: str,
        loader: AsyncLoader[T],
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        tags: Iterable[str | TagSource] = (),
        negative_ttl: TTL = None,
        returns: Any = None,
    ) -> T:
        """Cache-aside: the cached value, or ``loader()``'s result, stored.

        ``tags`` are strings, or callables that get the loaded value and
        return tags (``lambda team: [f"user:{m}" for m in team["members"]]``).
        ``negative_ttl``: cache a ``None`` result ("not found") this long
        instead, so a missing row does not stampede the database either.
        """
        lifetime = self._lifetimes(ttl, stale_ttl, negative_ttl)
        tag_list = _tag_sources(tags)
        try:
            full, namespace = await self._resolve(key)
        except StoreError as exc:
            self._metrics.bypass(Tier.CACHE, _namespace(key), bypass_reason(exc))
            loaded: T = await ainvoke(loader)
            return loaded
        value: T = await self._engine.serve(
            full, namespace, loader, lifetime, tag_list, make_reviver(returns),
            local_checked=False,
        )  # fmt: skip
        return value

    # -- writes -----------------------------------------------------------

    def _lifetimes(
        self, ttl: TTL | Unset, stale_ttl: TTL | Unset, negative_ttl: TTL = None
    ) -> Lifetime:
        soft = self._ttl if ttl is UNSET else ttl_seconds(ttl)
        stale = self._stale_ttl if stale_ttl is UNSET else stale_seconds(stale_ttl)
        negative = ttl_seconds(negative_ttl, name="negative_ttl")
        return Lifetime(soft, stale, negative)

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store ``value`` in every tier; False when it was not cached
        (unserializable, too large, or the server unreachable).

        ``ttl=None``: no expiry. A fill that was loading this key when the
        write landed will not overwrite it (its lease is revoked).
        """
        lifetime = self._lifetimes(ttl, stale_ttl)
        tag_list = tuple(check_tag(t) for t in tags)
        try:
            full, _ = await self._resolve(key)
        except StoreError:
            return False
        return await self._engine.put([(full, value, tag_list)], lifetime)

    async def set_many(
        self,
        values: Mapping[str, Any],
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
    ) -> bool:
        """Store several values (one pipeline on Redis); False if any was not cached."""
        lifetime = self._lifetimes(ttl, stale_ttl)
        try:
            items = [((await self._resolve(k))[0], v, ()) for k, v in values.items()]
        except StoreError:
            return False
        return await self._engine.put(items, lifetime)

    async def add(
        self,
        key: str,
        value: Any,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store ``value`` only if no fresh value is cached under ``key``:
        True if stored. Atomic in Redis (a compare-and-set): of concurrent
        ``add`` calls in any processes, one stores, and ``add`` never
        overwrites a value another write stored meanwhile. False too when
        the value is not cacheable or Redis cannot be reached (``StoreError``
        is not raised: the caller did not get its value stored, as when
        another ``add`` won)."""
        change = Change(
            value,
            self._lifetimes(ttl, stale_ttl),
            tuple(check_tag(t) for t in tags),
        )
        try:
            full, _ = await self._resolve(key)
            return await self._engine.update(
                full, lambda current: added(current, change)
            )
        except StoreError:
            return False

    async def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the ``int`` cached under ``key`` and return the
        sum, keeping the value's expiry and tags. Atomic in Redis: concurrent
        ``incr`` calls in any processes never lose one. Raises ``KeyError``
        when no fresh value is cached, ``TypeError`` when the value is not
        an ``int``, and ``StoreError`` when Redis cannot be reached (unlike
        a read, it has no value to fall back on)."""
        now = self._now
        result: list[int] = []

        def decide(current: Any) -> Change:
            try:
                change = incremented(current, delta, now())
            except KeyError:
                raise KeyError(self.redact(key)) from None
            result[:] = [change.value]
            return change

        full, _ = await self._resolve(key)
        await self._engine.update(full, decide)
        return result[0]

    async def touch(
        self, key: str, *, ttl: TTL | Unset = UNSET, stale_ttl: TTL | Unset = UNSET
    ) -> bool:
        """Give the fresh value cached under ``key`` a new lifetime from now
        (``ttl=None``: no expiry; unset: the cache's default), keeping its
        value and tags. False when none is cached or Redis cannot be
        reached."""
        lifetime = self._lifetimes(ttl, stale_ttl)
        try:
            full, _ = await self._resolve(key)
            return await self._engine.update(
                full, lambda current: touched(current, lifetime)
            )
        except StoreError:
            return False

    async def _writebehind_entry(
        self, key: str, value: Any, ttl: TTL | Unset, stale_ttl: TTL | Unset
    ) -> Prepared:
        """For write-behind: where and what ``set`` would store (envelope
        None: not cacheable). Raises ``StoreError`` when the key's namespace
        version cannot be read."""
        lifetime = self._lifetimes(ttl, stale_ttl)
        full, namespace = await self._resolve(key)
        encoded = self._engine.entries.encode(full, value, lifetime, 0.0, ())
        data, hard = (None, None) if encoded is None else encoded[1:]
        return Prepared(full, data, hard, self._head, namespace, self._base(key))

    def _writebehind_notice(self, fulls: list[str]) -> tuple[str, bytes]:
        """For write-behind: the bus channel and message its script publishes
        so that every other process drops ``fulls`` from its L1."""
        return bus_channel(self._keys.prefix), self._engine.notice(fulls)

    async def invalidate(self, *keys: str) -> bool:
        """Remove ``keys`` from every tier in every process.

        When it returns, no read in this process returns the old value, and
        no L1 anywhere serves it past the staleness bound. True when Redis
        took it; False when Redis could not, within the invalidation budget
        (its own deadline and retries, apart from reads'): it is then queued
        and retried until it lands (``stats().pending_invalidations``), and
        meanwhile this process serves none of the keys. It does not raise
        for Redis: the commit before it stands either way.
        """
        with self._engine.tracing.span(
            SpanName.INVALIDATE, self._invalidation_attributes(keys)
        ) as span:
            fulls = await self._fulls_or_queue(keys)
            landed = (
                fulls is not None
                and await self._engine.invalidator.invalidate(fulls) is not None
            )
            span.set_attribute(Attribute.INVALIDATION_OUTCOME, _outcome(landed))
            return landed

    def _invalidation_attributes(
        self, keys: tuple[str, ...] | list[str]
    ) -> dict[str, AttributeValue]:
        """A span's attributes for invalidating ``keys``: how many, their
        namespace when they share one (never the keys)."""
        attributes = self._engine.store_attributes()
        attributes[Attribute.INVALIDATION_KEYS] = len(keys)
        namespaces = {_namespace(k) for k in keys if isinstance(k, str)}
        if len(namespaces) == 1:
            attributes[Attribute.NAMESPACE] = namespaces.pop()
        return attributes

    async def _fulls_or_queue(self, keys: Iterable[str]) -> list[str] | None:
        """The full keys; None when a namespace version is unknown and Redis
        cannot tell (the invalidation is queued, resolved when it runs)."""
        keys = list(keys)
        try:
            return [(await self._resolve(k, hard=True))[0] for k in keys]
        except StoreError as exc:
            unresolved = [(self._base(k), _namespace(k)) for k in keys]
            self._engine.invalidator.queue_unresolved(unresolved, exc)
            return None

    async def delete(self, key: str) -> bool:
        """Remove one key from every tier (as ``invalidate``); True if Redis
        or L1 held it (when Redis cannot tell: if L1 did)."""
        with self._engine.tracing.span(
            SpanName.INVALIDATE, self._invalidation_attributes([key])
        ) as span:
            fulls = await self._fulls_or_queue([key])
            if fulls is None:
                span.set_attribute(
                    Attribute.INVALIDATION_OUTCOME, InvalidationOutcome.QUEUED
                )
                return False
            local = self._engine.l1
            held = local is not None and local.get(fulls[0]) is not MISS
            removed = await self._engine.invalidator.invalidate(fulls)
            span.set_attribute(
                Attribute.INVALIDATION_OUTCOME, _outcome(removed is not None)
            )
            return bool(removed) or held

    async def invalidate_tags(self, *tags: str) -> bool:
        """Remove every key stored with any of ``tags``, in every tier and
        process; True when Redis took it, False when it is queued (as
        ``invalidate``)."""
        checked = [check_tag(t) for t in tags]
        attributes = self._engine.store_attributes()
        attributes[Attribute.INVALIDATION_TAGS] = len(checked)
        with self._engine.tracing.span(SpanName.INVALIDATE_TAGS, attributes) as span:
            landed = await self._engine.invalidator.invalidate_tags(checked)
            span.set_attribute(Attribute.INVALIDATION_OUTCOME, _outcome(landed))
            return landed

    async def bump(self, namespace: str) -> int:
        """Start a new version of ``namespace``: its keys are orphaned in O(1)
        (they expire by TTL). Returns the new version. Raises ``StoreError``
        when Redis cannot take it within the invalidation budget (there is
        no version to return): it is queued and retried all the same."""
        escaped = escape(namespace)
        attributes = self._engine.store_attributes()
        attributes[Attribute.NAMESPACE] = escaped
        with self._engine.tracing.span(SpanName.BUMP, attributes) as span:
            try:
                version = await self._engine.invalidator.bump(escaped)
            except StoreError:
                span.set_attribute(
                    Attribute.INVALIDATION_OUTCOME, InvalidationOutcome.QUEUED
                )
                raise
            span.set_attribute(
                Attribute.INVALIDATION_OUTCOME, InvalidationOutcome.LANDED
            )
            return version

    def write_through(
        self,
        *keys: str,
        tags: Iterable[str] = (),
        reload: Callable[[], Any] | None = None,
        ttl: TTL | Unset = UNSET,
        reload_tags: Iterable[str | TagSource] = (),
    ) -> AsyncWriteThrough:
        """A context manager around a transaction: after it commits, ``keys``
        and ``tags`` are invalidated and, with ``reload``, the key is refilled
        by re-reading the source under a lease (see ``AsyncWriteThrough``)."""
        for key in keys:  # bad keys fail here, before the transaction
            self._base(key)
        return AsyncWriteThrough(
            self, keys, tags=tags, reload=reload, ttl=ttl, reload_tags=reload_tags,
            metrics=self._metrics,
        )  # fmt: skip

    def writes(
        self, *readers: AsyncCachedFunction[..., Any], tags: Iterable[str] = ()
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a function that performs and commits a write: after it
        returns, ``readers`` (``cached`` functions) are refreshed for its
        arguments of the same names (see ``writethrough.writes``)."""
        return writes(self, readers, tags, metrics=self._metrics)

    def write_behind(
        self,
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
    ) -> AsyncWriteBehind:
        """A write-behind queue named ``name`` over this cache's Redis: ``put``
        stores the value here and queues the database write in one step; a
        ``WriteBehindWorker`` applies the queue (see ``AsyncWriteBehind``).

        Raises ``ValueError`` on a disabled cache: the queue is where
        writes wait for the database, not a cache, and disabling the cache
        must not drop them."""
        if not self._enabled:
            raise ValueError(
                "write_behind on a disabled cache (enabled=False or "
                f"{ENABLED_VARIABLE}): its queue holds writes on their way to "
                "the database, so it cannot be disabled with the cache; "
                "write to the database directly instead"
            )
        l2 = self._engine.l2
        host = WriteBehindHost(
            endpoint=None if l2 is None else l2.endpoint,
            owner=self._engine.owner,
            prefix=self._keys.prefix,
            metrics=self._metrics,
            entry=self._writebehind_entry,
            notice=self._writebehind_notice,
            written=self._engine.written,
            tracing=self._engine.tracing,
        )
        return AsyncWriteBehind(
            host, name=name, partitions=partitions, max_backlog=max_backlog,
            ttl=ttl, stale_ttl=stale_ttl, allow_eviction=allow_eviction,
            replicas=replicas, replica_timeout=replica_timeout, timeout=timeout,
            recheck=recheck,
        )  # fmt: skip

    @property
    def engine(self) -> AsyncEngine:
        """The engine behind this cache: its tiers, bus, leases, versions and
        invalidations. Its interface is freshcache's own (the decorator,
        write-through and write-behind use it) and may change between
        releases; read it for diagnostics and tests, prefer the methods here."""
        return self._engine

    @property
    def events(self) -> AsyncEvents:
        """Application events fanned out to every process (``on``, ``publish``)."""
        return self._engine.events

    async def clear(self) -> None:
        """Remove every cached value under this cache's ``prefix:version:``,
        in every tier and process, and revoke every fill in flight (SCAN and
        UNLINK; never FLUSHDB). Namespace versions, the tag epoch and
        write-behind queues stay."""
        await self._engine.clear(self._head)

    # -- decorator ---------------------------------------------------------

    def cached(
        self,
        template: str | None = None,
        *,
        ttl: TTL | Unset = UNSET,
        stale_ttl: TTL | Unset = UNSET,
        tags: Iterable[str | TagSource] = (),
        negative_ttl: TTL = None,
        namespace: str | None = None,
        private: bool = False,
    ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """Decorate a function whose result is cached under ``template``.

        ``template`` names the key, e.g. ``"user:{user_id}"``; it is compiled
        once, here. Without one, the key is ``namespace`` (default: the
        function's module and qualified name) and all its arguments, ``self``
        included; a lambda, a function defined inside another, a
        ``functools.partial`` or another callable object has no unique name
        and is refused (``UnstableKeyError``) unless given a template or a
        ``namespace``. ``tags`` are templates rendered from the arguments
        (``"team:{team_id}"``) or callables given the result. The decorated
        function gains ``.key(...)`` and ``.invalidate(...)``.
        ``private=True`` adds the function's namespace to this cache's
        ``private_namespaces`` (its keys are redacted: ``redact``).
        """
        lifetime = self._lifetimes(ttl, stale_ttl, negative_ttl)  # checked here
        tag_list = _tag_sources(tags, templates=True)

        def decorate(func: Callable[P, Awaitable[R]]) -> AsyncCachedFunction[P, R]:
            if private:
                compiled = KeyTemplate.compile(
                    template, func, head=self._head, namespace=namespace
                )
                self._private = self._private | {compiled.namespace}
            return wrap(
                self._engine, func, template, lifetime=lifetime, tags=tag_list,
                invalidate_key=self.invalidate, namespace=namespace,
            )  # fmt: skip

        return decorate

    # -- health and lifecycle ---------------------------------------------

    async def inspect(self, key: str, *, with_value: bool = False) -> KeyInfo:
        """What is stored for ``key`` (a diagnostic; ``freshcache inspect``):
        in Redis, the envelope's header (created, fresh until, stale until,
        recompute time, codec, size), its tags, the namespace version, the
        fill lease's holder and age, a pending write-behind mark; and this
        process's L1 entry. Never the value unless ``with_value`` (then
        ``value``, else ``MISS``). Bytes this cache cannot decode are
        reported in ``undecodable``, never raised; Redis out of reach is
        reported in ``error``. Counts no lookup (``stats()`` is unchanged)."""
        base = self._base(key)
        namespace = _namespace(key)
        engine = self._engine
        info = KeyInfo(
            key, base, namespace, l1=self._peek_local(base), read_at=self._now()
        )
        if engine.l2 is None:
            return info
        try:
            version = await engine.versions.get(namespace)
            full = versioned(self._head, namespace, version, base)
            info = dataclasses.replace(
                info, full_key=full, namespace_version=version,
                l1=self._peek_local(full),
            )  # fmt: skip
            return await inspect_redis(
                engine.l2, self._codec, info, now=self._now(),
                with_value=with_value,
            )  # fmt: skip
        except StoreError as exc:
            return dataclasses.replace(info, error=f"{type(exc).__name__}: {exc}")

    def _peek_local(self, full: str) -> L1View | None:
        """This process's L1 entry for ``full``; None: it has no L1."""
        return local_view(self._engine.l1, full, self._now())

    def _peek_published(self, full: str) -> L1View:
        return self._peek_local(full) or _ABSENT

    @property
    def live(self) -> AsyncLive:
        """The live view of every process sharing this cache's prefix: their
        published stats, the keys in Redis, a key in every L1 (``AsyncLive``;
        processes publish with ``publish_stats=``)."""
        return self._live

    def _queue(self, name: str, partitions: int) -> AsyncWriteBehind:
        return self.write_behind(name=name, partitions=partitions)

    def stats(self) -> CacheStats:
        """What this cache did since it was made (or forked): every lookup
        once as a hit, miss or bypass, per tier and namespace; loads,
        evictions, errors, counted events, latency histograms, gauges, and
        the invalidations waiting to be retried (``CacheStats``)."""
        engine = self._engine
        return dataclasses.replace(
            self._metrics.snapshot(),
            pending_invalidations=len(engine.pending),
            oldest_pending_seconds=engine.invalidator.retry.oldest_age(),
        )

    def _on_local_evict(self, cause: str) -> None:
        self._metrics.eviction(Tier.L1, cause)

    def after_fork(self) -> None:
        """In a child process just forked by something Python's ``os.fork``
        did not run (a C extension calling ``fork()`` itself): what
        ``os.fork()`` children get without asking. L1 empties, locks, the bus
        identity and stats are new, and the first call opens connections and
        a subscription of the child's own."""
        self._engine.owner.forked()

    async def aclose(self) -> None:
        """Close: background work ends, connections close, L1 is emptied, and
        every later call raises ``CacheClosedError``, until the cache is
        entered again (``async with cache:``), which reopens it."""
        await self._engine.aclose()

    async def __aenter__(self) -> AsyncCache:
        """Open the cache for the block (reopen it if it was closed: an app
        whose lifespan runs ``async with cache:`` can start twice)."""
        self._engine.reopen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        tiers = [
            t for t, s in (("L1", self._engine.l1), ("redis", self._engine.l2)) if s
        ]
        shown = "+".join(tiers) if self._enabled else "disabled"
        return f"<{type(self).__name__} {shown} {self._head!r}>"


def _outcome(landed: bool) -> InvalidationOutcome:
    return InvalidationOutcome.LANDED if landed else InvalidationOutcome.QUEUED


def _private(namespaces: Iterable[str]) -> frozenset[str]:
    """``private_namespaces``, as they appear in keys (escaped)."""
    if isinstance(namespaces, str):
        raise TypeError("private_namespaces is a collection of namespaces, not one str")
    found = set()
    for namespace in namespaces:
        if not isinstance(namespace, str) or not namespace:
            raise TypeError(
                "a private namespace is a non-empty str, not "
                + type(namespace).__name__
            )
        found.add(escape(namespace))
    return frozenset(found)


def _tag_sources(
    tags: Iterable[str | TagSource], *, templates: bool = False
) -> tuple[str | TagSource, ...]:
    """Validate tags: strings (templates for the decorator) or result callables."""
    if isinstance(tags, str):
        raise TypeError("tags is a list of tags, not one str")
    return tuple(
        t if callable(t) or (templates and isinstance(t, str)) else check_tag(t)
        for t in tags
    )


def _server_now(server: ServerTime) -> Callable[[], float]:
    """The time on the Redis server's clock, as this process estimates it:
    freshness written by one process is judged on the same clock by every
    other, whatever their own clocks say. An injected clock (a test's
    ``FakeClock``) is used as it is."""
    wall = time.time

    def now() -> float:
        return wall() + server.offset

    return now
