"""The approaches ``python -m bench stampede`` compares, each built the way its
documentation shows, around the same loader.

Every builder returns a getter for one hot item and a closer; the getter
returns the loader's value ``{"n": <loader call number>}`` (from the cache or
from a load). Sync builders return plain callables (called from threads),
async builders coroutines (called from tasks). Each builder also gets an
``extra`` dict for counts only it can know (the seed lock's capped
recursions, calls that found no value).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

ITEM = 1  # the one hot item every approach caches
SEED_LOCK_SLEEP = 0.1  # the seed's fixed sleep...
SEED_MAX_DEPTH = 50  # ...and our cap on its recursion (5 s), so the bench ends
SEED_LOCK_EX = 10  # seconds; the seed lock's expiry


@dataclass
class Config:
    """What a builder needs: where, under which prefix, which lifetimes."""

    url: str
    prefix: str
    ttl: float  # freshness (soft TTL where the approach has one)
    stale: float  # seconds a stale value stays servable, where it can be
    extra: dict[str, int]  # counts so far (freshcache's are written on close)

    def counts(self) -> dict[str, int]:
        """The counts so far (the worker subtracts those of the warm-up)."""
        return dict(self.extra)


SyncGet = Callable[[], Any]
AsyncGet = Callable[[], Awaitable[Any]]
SyncBuilt = tuple[SyncGet, Callable[[], None], Callable[[], None]]
AsyncBuilt = tuple[
    AsyncGet, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]
]


_COUNTING = threading.Lock()


def _bump(extra: dict[str, int], name: str) -> None:
    with _COUNTING:  # 250 threads: an unlocked += loses counts
        extra[name] = extra.get(name, 0) + 1


POOL = 1000  # connections a peer may open (redis-py's default pools stop at 100)


def _blocking_client(url: str) -> Any:
    """A redis-py client whose pool waits for a free connection (up to
    ``POOL``) instead of raising past 100, as redis-py 8's default does: with
    250 threads per process the hand-written approaches would fail otherwise."""
    import redis

    return redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(
            url, max_connections=POOL, timeout=60
        )
    )


def _url_parts(url: str) -> tuple[str, int, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return (
        parsed.hostname or "127.0.0.1",
        parsed.port or 6379,
        int((parsed.path or "/0").lstrip("/") or 0),
    )


# -- sync (threads) ------------------------------------------------------------
#
# Each sync builder: (get, warm, close). ``warm`` opens a connection (and, for
# freshcache, waits until its bus is subscribed) without calling the loader.


def naive_sync(cfg: Config, loader: SyncGet) -> SyncBuilt:
    """Cache-aside as most code writes it: GET; on a miss, load and SET."""
    client = _blocking_client(cfg.url)
    key = f"{cfg.prefix}:naive:{ITEM}"
    ex = max(1, round(cfg.ttl * 1000))

    def get() -> Any:
        raw = client.get(key)
        if raw is not None:
            return json.loads(raw)
        _bump(cfg.extra, "found_no_value")
        value = loader()
        client.set(key, json.dumps(value), px=ex)
        return value

    return get, lambda: client.ping(), client.close  # type: ignore[return-value]


def seed_lock_sync(cfg: Config, loader: SyncGet) -> SyncBuilt:
    """The seed's lock, reproduced: ``SET lock NX``; the winner loads and
    SETs; every loser sleeps 100 ms and calls itself again (recursion). Our
    only change: after ``SEED_MAX_DEPTH`` tries a loser loads without the
    lock (counted as ``capped``), so that the bench terminates."""
    client = _blocking_client(cfg.url)
    key = f"{cfg.prefix}:seed:{ITEM}"
    lock = f"{key}:lock"
    px = max(1, round(cfg.ttl * 1000))

    def get(depth: int = 0) -> Any:
        raw = client.get(key)
        if raw is not None:
            return json.loads(raw)
        if depth == 0:
            _bump(cfg.extra, "found_no_value")
        if client.set(lock, "1", nx=True, ex=SEED_LOCK_EX):
            try:
                value = loader()
                client.set(key, json.dumps(value), px=px)
                return value
            finally:
                client.delete(lock)
        if depth >= SEED_MAX_DEPTH:
            _bump(cfg.extra, "capped")
            return loader()
        time.sleep(SEED_LOCK_SLEEP)
        return get(depth + 1)

    return get, lambda: client.ping(), client.close  # type: ignore[return-value]


def dogpile_sync(cfg: Config, loader: SyncGet) -> SyncBuilt:
    """dogpile.cache's Redis backend with its distributed lock, as documented:
    ``distributed_lock=True, thread_local_lock=False``; ``expiration_time`` is
    the soft TTL (one caller regenerates, the others get the old value), the
    Redis TTL is ``redis_expiration_time``."""
    import redis
    from dogpile.cache import make_region

    region = make_region(key_mangler=lambda k: f"{cfg.prefix}:dogpile:{k}")
    region.configure(
        "dogpile.cache.redis",
        expiration_time=cfg.ttl,
        arguments={
            "connection_pool": redis.BlockingConnectionPool.from_url(
                cfg.url, max_connections=POOL, timeout=60
            ),
            "redis_expiration_time": max(1, int(cfg.ttl + cfg.stale + 1)),
            "distributed_lock": True,
            "thread_local_lock": False,
        },
    )

    @region.cache_on_arguments()
    def get_item(item_id: int) -> Any:
        return loader()

    def warm() -> None:
        region.get("warm-up")  # NO_VALUE; opens a connection

    return lambda: get_item(ITEM), warm, lambda: None


def _fc_counts(cache: Any) -> dict[str, int]:
    """freshcache's own counts: final misses (callers that found no value),
    its event counts, its errors, its loads."""
    stats = cache.stats()
    counts = {"found_no_value": stats.lookups.misses, "loads_here": stats.loads}
    counts |= dict(stats.counts)
    counts |= {f"error:{name}": n for name, n in stats.errors.items()}
    return counts


def freshcache_sync(
    cfg: Config,
    loader: SyncGet,
    *,
    l1: bool,
    stale: bool,
    beta: float,
    cold: bool = False,
) -> SyncBuilt:
    """freshcache's sync ``Cache`` and its ``cached`` decorator."""
    from freshcache import L1, Cache

    cache = Cache(
        cfg.url,
        prefix=f"{cfg.prefix}.fc",
        ttl=cfg.ttl,
        stale_ttl=cfg.stale if stale else 0,
        xfetch_beta=beta,
        l1=L1() if l1 else None,
    )

    @cache.cached("item:{item_id}")
    def get_item(item_id: int) -> Any:
        return loader()

    def warm() -> None:
        cache.get("item:0")  # connects, starts the bus
        deadline = time.monotonic() + 10
        while not cache.stats().counts.get("bus_connect"):
            if time.monotonic() > deadline:
                raise TimeoutError("freshcache's bus did not connect within 10 s")
            time.sleep(0.005)
        if not cold:  # cold: as just started, or just resubscribed
            cache.get("item:0")  # learns the namespace's version (bus up)

    def close() -> None:
        cfg.extra.update(_fc_counts(cache))
        cache.close()

    cfg.counts = lambda: _fc_counts(cache)  # type: ignore[method-assign]

    return lambda: get_item(ITEM), warm, close


# -- async (tasks) -------------------------------------------------------------


def naive_async(cfg: Config, loader: AsyncGet) -> AsyncBuilt:
    import redis.asyncio as aredis

    # redis.asyncio's default pool raises past 100 connections: a blocking
    # pool as large as the callers keeps the naive approach from failing.
    client = aredis.Redis(
        connection_pool=aredis.BlockingConnectionPool.from_url(
            cfg.url, max_connections=POOL, timeout=60
        )
    )
    key = f"{cfg.prefix}:naive-async:{ITEM}"
    px = max(1, round(cfg.ttl * 1000))

    async def get() -> Any:
        raw = await client.get(key)
        if raw is not None:
            return json.loads(raw)
        _bump(cfg.extra, "found_no_value")
        value = await loader()
        await client.set(key, json.dumps(value), px=px)
        return value

    async def warm() -> None:
        await client.ping()

    return get, warm, client.aclose


def cashews_async(cfg: Config, loader: AsyncGet) -> AsyncBuilt:
    """cashews ``@cache(ttl=..., lock=True)`` on its Redis backend (defaults
    otherwise: ``protected=True`` shares concurrent calls in one process)."""
    import cashews

    cache = cashews.Cache()
    cache.setup(cfg.url)

    @cache(ttl=cfg.ttl, key=f"{cfg.prefix}:cashews:item:{{item_id}}", lock=True)
    async def get_item(item_id: int) -> Any:
        return await loader()

    async def get() -> Any:
        return await get_item(ITEM)

    async def warm() -> None:
        await cache.get(f"{cfg.prefix}:cashews:warm-up")

    return get, warm, cache.close


def aiocache_async(cfg: Config, loader: AsyncGet) -> AsyncBuilt:
    """aiocache ``cached_stampede`` on ``RedisCache`` (``lease=2``, its default)."""
    import redis.asyncio as aredis
    from aiocache import RedisCache, cached_stampede

    host, port, db = _url_parts(cfg.url)
    decorator = cached_stampede(
        ttl=cfg.ttl,
        cache=RedisCache,
        endpoint=host,
        port=port,
        db=db,
        namespace=f"{cfg.prefix}:aiocache",
        pool_max_size=POOL,
        connection_pool_class=aredis.BlockingConnectionPool,
        key_builder=lambda f, item_id: f"item:{item_id}",
    )

    async def _item(item_id: int) -> Any:
        return await loader()

    get_item = decorator(_item)

    async def get() -> Any:
        return await get_item(ITEM)

    async def warm() -> None:
        await get_item.cache.get("warm-up")

    return get, warm, get_item.cache.close


def freshcache_async(
    cfg: Config,
    loader: AsyncGet,
    *,
    l1: bool,
    stale: bool,
    beta: float,
    cold: bool = False,
) -> AsyncBuilt:
    from freshcache import L1, AsyncCache

    cache = AsyncCache(
        cfg.url,
        prefix=f"{cfg.prefix}.fc",
        ttl=cfg.ttl,
        stale_ttl=cfg.stale if stale else 0,
        xfetch_beta=beta,
        l1=L1() if l1 else None,
    )

    @cache.cached("item:{item_id}")
    async def get_item(item_id: int) -> Any:
        return await loader()

    async def get() -> Any:
        return await get_item(ITEM)

    async def warm() -> None:
        import asyncio

        await cache.get("item:0")  # connects, starts the bus
        deadline = time.monotonic() + 10
        while not cache.stats().counts.get("bus_connect"):
            if time.monotonic() > deadline:
                raise TimeoutError("freshcache's bus did not connect within 10 s")
            await asyncio.sleep(0.005)
        if not cold:  # cold: as just started, or just resubscribed
            await cache.get("item:0")  # learns the namespace's version (bus up)

    async def close() -> None:
        cfg.extra.update(_fc_counts(cache))
        await cache.aclose()

    cfg.counts = lambda: _fc_counts(cache)  # type: ignore[method-assign]

    return get, warm, close


@dataclass(frozen=True)
class Approach:
    """One row: a name, sync or async, and how to build it."""

    name: str
    mode: str  # "sync" (threads) or "async" (tasks)
    build: Callable[..., Any]
    options: tuple[tuple[str, Any], ...] = ()
    freshcache: bool = False


def approaches() -> dict[str, Approach]:
    """Every approach by id (ids are what ``--only`` takes)."""

    def fc(name: str, mode: str, **options: Any) -> Approach:
        build = freshcache_sync if mode == "sync" else freshcache_async
        return Approach(name, mode, build, tuple(options.items()), freshcache=True)

    return {
        "naive": Approach(
            "naive cache-aside (GET; miss: load, SET)", "sync", naive_sync
        ),
        "seed-lock": Approach(
            "seed lock (SET NX; losers sleep 0.1 s, recurse)", "sync", seed_lock_sync
        ),
        "dogpile": Approach(
            "dogpile.cache redis, distributed_lock=True", "sync", dogpile_sync
        ),
        "fc-sync": fc("freshcache Cache + L1", "sync", l1=True, stale=True, beta=0.0),
        "fc-sync-cold": fc(
            "freshcache Cache + L1, cold process (namespace version unknown)",
            "sync",
            l1=True,
            stale=True,
            beta=0.0,
            cold=True,
        ),
        "fc-sync-l2": fc(
            "freshcache Cache, Redis only", "sync", l1=False, stale=True, beta=0.0
        ),
        "fc-sync-xfetch": fc(
            "freshcache Cache, Redis only, XFetch only (no stale window)",
            "sync",
            l1=False,
            stale=False,
            beta=1.0,
        ),
        "naive-async": Approach(
            "naive cache-aside, redis.asyncio", "async", naive_async
        ),
        "cashews": Approach("cashews @cache(lock=True)", "async", cashews_async),
        "aiocache": Approach(
            "aiocache cached_stampede(RedisCache)", "async", aiocache_async
        ),
        "fc-async": fc(
            "freshcache AsyncCache + L1", "async", l1=True, stale=True, beta=0.0
        ),
        "fc-async-cold": fc(
            "freshcache AsyncCache + L1, cold process (namespace version unknown)",
            "async",
            l1=True,
            stale=True,
            beta=0.0,
            cold=True,
        ),
        "fc-async-l2": fc(
            "freshcache AsyncCache, Redis only", "async", l1=False, stale=True, beta=0.0
        ),
        "fc-async-xfetch": fc(
            "freshcache AsyncCache, Redis only, XFetch only (no stale window)",
            "async",
            l1=False,
            stale=False,
            beta=1.0,
        ),
    }
