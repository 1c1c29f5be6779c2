"""``python -m bench profile``: where freshcache's hit path spends its time.

Runs many hits of one freshcache decorator under cProfile and prints the
functions by own time. cProfile adds a fixed cost to every Python call, so
it over-weights paths made of many small calls: read it for the shape of the
path (which calls, how many per hit), and the ``hits`` ratios for speed.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
from typing import Any

from bench.hits import TTL, USER_ID, Counter, make_aloader, make_loader

PATHS = ("l1", "l1-async", "l2", "l2-async")


def _profile_sync(fn: Any, n: int, top: int) -> None:
    fn(USER_ID)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        fn(USER_ID)
    profiler.disable()
    _print(profiler, n, top)


async def _profile_async(fn: Any, n: int, top: int) -> None:
    await fn(USER_ID)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        await fn(USER_ID)
    profiler.disable()
    _print(profiler, n, top)


def _print(profiler: cProfile.Profile, n: int, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(f"{n:,} hits; ncalls / {n:,} = calls per hit")
    print(out.getvalue())


def run(path: str, *, n: int, top: int, redis_url: str) -> int:
    from freshcache import AsyncCache, Cache

    prefix = f"fcbenchprof{os.getpid()}"
    if path == "l1":
        cache = Cache(prefix=prefix)
        _profile_sync(
            cache.cached("user:{user_id}", ttl=TTL)(make_loader(Counter())), n, top
        )
        cache.close()
    elif path == "l2":
        cache = Cache(redis_url, prefix=prefix)
        try:
            fn = cache.cached("user:{user_id}", ttl=TTL)(make_loader(Counter()))
            _profile_sync(fn, n, top)
            cache.clear()
        finally:
            cache.close()
    else:

        async def main() -> None:
            acache = AsyncCache(
                None if path == "l1-async" else redis_url, prefix=prefix
            )
            try:
                fn = acache.cached("user:{user_id}", ttl=TTL)(make_aloader(Counter()))
                await _profile_async(fn, n, top)
                await acache.clear()
            finally:
                await acache.aclose()

        asyncio.run(main())
    return 0
