"""add, incr and touch are atomic across processes, on real Redis.

Two caches on one Redis stand for two processes. Concurrent ``incr`` calls
never lose one, of concurrent ``add`` calls exactly one stores, and an
``add`` revokes the lease of a fill in flight (as ``set`` does), so a loader
that began before it cannot overwrite it. Sync callers race in threads,
async ones in one event loop (their round trips interleave).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from freshcache import L1, AsyncCache, Cache


@pytest.fixture
def caches(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> Iterator[list[Cache]]:
    made = [
        Cache(redis_url, prefix=key_prefix, timeout=1.0, l1=L1()),
        Cache(redis_url, prefix=key_prefix, timeout=1.0),
    ]
    yield made
    for cache in made:
        cache.close()


def _in_threads(work: list[object]) -> None:
    threads = [threading.Thread(target=w) for w in work]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_incr_loses_nothing(caches: list[Cache]) -> None:
    caches[0].set("n", 0, ttl=60)

    def bump(cache: Cache) -> None:
        for _ in range(50):
            cache.incr("n")

    _in_threads([lambda c=c: bump(c) for c in caches for _ in range(3)])
    assert caches[0].get("n") == caches[1].get("n") == 300
    assert caches[0].incr("n", 0) == 300


def test_concurrent_add_stores_once(caches: list[Cache]) -> None:
    won: list[int] = []

    def add(i: int) -> None:
        if caches[i % 2].add("k", i):
            won.append(i)

    _in_threads([lambda i=i: add(i) for i in range(8)])
    assert len(won) == 1
    assert caches[0].get("k") == caches[1].get("k") == won[0]


def test_add_revokes_a_fill_in_flight(caches: list[Cache]) -> None:
    loading, added = threading.Event(), threading.Event()

    def loader() -> str:
        loading.set()
        added.wait(5)
        return "loaded before the add"

    reader = threading.Thread(target=lambda: caches[0].get_or_load("k", loader))
    reader.start()
    assert loading.wait(5)
    assert caches[1].add("k", "added") is True
    added.set()
    reader.join()
    assert caches[0].get("k") == caches[1].get("k") == "added"


def test_touch_and_incr_reach_the_other_l1(caches: list[Cache]) -> None:
    caches[1].set("n", 1)
    assert caches[0].get("n") == 1  # now in caches[0]'s L1
    assert caches[1].incr("n") == 2
    for _ in range(200):  # the bus drops it from the L1 within the bound
        if caches[0].get("n") == 2:
            break
        threading.Event().wait(0.01)
    assert caches[0].get("n") == 2


async def test_async_incr_and_add_interleaved(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as one,
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0, l1=L1()) as two,
    ):
        await one.set("n", 0)

        async def bump(cache: AsyncCache) -> None:
            for _ in range(25):
                await cache.incr("n")

        await asyncio.gather(*(bump(c) for c in (one, two, one, two)))
        assert await one.get("n") == 100
        added = await asyncio.gather(
            *(c.add("k", i) for i, c in enumerate([one, two] * 4))
        )
        assert added.count(True) == 1
