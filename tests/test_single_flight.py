"""In-process single flight: concurrent misses of one key share one load.

Written twice on purpose (tasks and threads), since the concurrency itself
is what differs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from freshcache import L1, MISS, AsyncCache, Cache

CALLERS = 500


@pytest.fixture(params=["embedded", "l1+redis"])
async def acache(
    request: pytest.FixtureRequest, key_prefix: str
) -> AsyncIterator[AsyncCache]:
    if request.param == "embedded":
        made = AsyncCache(prefix=key_prefix)
    else:
        request.getfixturevalue("redis_cleanup")
        url = request.getfixturevalue("redis_url")
        made = AsyncCache(url, prefix=key_prefix, l1=L1(), timeout=1.0)
    async with made:
        await made.get("warm:up")  # subscribed first: a (re)subscribe detaches
        for _ in range(1000):  # loads in flight, which would split the flight
            if made.stats().counts.get("bus_connect") or made.engine.l2 is None:
                break
            await asyncio.sleep(0.01)
        yield made


@pytest.fixture(params=["embedded", "l1+redis"])
def cache(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[Cache]:
    if request.param == "embedded":
        made = Cache(prefix=key_prefix)
    else:
        request.getfixturevalue("redis_cleanup")
        url = request.getfixturevalue("redis_url")
        made = Cache(url, prefix=key_prefix, l1=L1(), timeout=1.0)
    with made:
        made.get("warm:up")  # subscribed first (see acache)
        for _ in range(1000):
            if made.stats().counts.get("bus_connect") or made.engine.l2 is None:
                break
            time.sleep(0.01)
        yield made


async def test_500_tasks_on_a_cold_key_make_one_loader_call(acache: AsyncCache) -> None:
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "value"

    results = await asyncio.gather(
        *(acache.get_or_load("hot", loader) for _ in range(CALLERS))
    )
    assert results == ["value"] * CALLERS
    assert calls == 1


def test_500_threads_on_a_cold_key_make_one_loader_call(cache: Cache) -> None:
    calls = 0
    lock = threading.Lock()
    start = threading.Barrier(50)

    def loader() -> str:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)
        return "value"

    def call(i: int) -> Any:
        if i < 50:
            start.wait()
        return cache.get_or_load("hot", loader)

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        results = list(pool.map(call, range(CALLERS)))
    assert results == ["value"] * CALLERS
    assert calls == 1


async def test_a_failing_loader_fails_every_waiter_and_leaves_nothing_blocked(
    acache: AsyncCache,
) -> None:
    async def failing() -> str:
        await asyncio.sleep(0.02)
        raise LookupError("row is gone")

    results = await asyncio.gather(
        *(acache.get_or_load("k", failing) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await acache.get("k") is MISS
    assert await acache.get_or_load("k", lambda: "recovered") == "recovered"


def test_a_failing_loader_fails_every_thread_and_leaves_nothing_blocked(
    cache: Cache,
) -> None:
    def failing() -> str:
        time.sleep(0.05)
        raise LookupError("row is gone")

    def call(_: int) -> Any:
        try:
            return cache.get_or_load("k", failing)
        except LookupError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20)))
    assert all(isinstance(r, LookupError) for r in results)
    assert cache.get_or_load("k", lambda: "recovered") == "recovered"


async def test_a_cancelled_waiter_does_not_cancel_the_others(
    acache: AsyncCache,
) -> None:
    release = asyncio.Event()

    async def loader() -> str:
        await release.wait()
        return "value"

    leader = asyncio.ensure_future(acache.get_or_load("k", loader))
    await asyncio.sleep(0.01)
    waiters = [asyncio.ensure_future(acache.get_or_load("k", loader)) for _ in range(3)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()
    release.set()
    assert await leader == "value"
    assert await waiters[1] == "value"
    assert await waiters[2] == "value"
    assert waiters[0].cancelled()


async def test_a_cancelled_leader_lets_a_waiter_take_over(acache: AsyncCache) -> None:
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05 if calls > 1 else 10)
        return "value"

    leader = asyncio.ensure_future(acache.get_or_load("k", loader))
    await asyncio.sleep(0.01)
    waiter = asyncio.ensure_future(acache.get_or_load("k", loader))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await waiter == "value"
    assert calls == 2


async def test_callers_after_an_invalidation_do_not_join_an_older_load(
    acache: AsyncCache,
) -> None:
    release = asyncio.Event()
    version = 1

    async def loader() -> int:
        seen = version
        await release.wait()
        return seen

    early = asyncio.ensure_future(acache.get_or_load("row", loader))
    await asyncio.sleep(0.01)
    version = 2  # the writer commits...
    await acache.invalidate("row")  # ...then invalidates
    late = asyncio.ensure_future(acache.get_or_load("row", loader))
    await asyncio.sleep(0.01)
    release.set()
    assert await early == 1  # began before the write
    assert await late == 2  # began after it: its own load
