"""More concurrent callers than Redis connections: they queue, bounded."""

from __future__ import annotations

import asyncio

from freshcache import AsyncCache
from freshcache._concurrency import AsyncSlots, Slots


async def test_tasks_wait_for_a_free_connection(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(
        redis_url, prefix=key_prefix, max_connections=2, timeout=1.0
    ) as cache:
        await cache.set("k", "v")
        results = await asyncio.gather(*(cache.get("k") for _ in range(50)))
        assert results == ["v"] * 50
        assert cache.stats().errors == {}


async def test_slot_wait_is_bounded() -> None:
    slots = AsyncSlots(1)
    assert await slots.acquire(0.01)
    assert not await slots.acquire(0.01)  # a holder that never returns
    slots.release()
    assert await slots.acquire(0.01)


def test_thread_slots_wait_is_bounded() -> None:
    slots = Slots(1)
    assert slots.acquire(0.01)
    assert not slots.acquire(0.01)
    slots.release()
    assert slots.acquire(0.01)
