"""A huge value planted under a cache key costs one refused read, and goes.

Reads send at most ``max_value_bytes`` + 1 bytes (GETRANGE, and a length
check inside the lease script), so a 50 MB value under a hot key is refused
without being transferred and then removed. Before, every async read of it
timed out (the size check came after the whole value was read), it was never
removed, and six concurrent reads opened the breaker for every key.
"""

from __future__ import annotations

import pytest
import redis

from freshcache import MISS, AsyncCache
from freshcache._concurrency import AsyncWorker
from tests._async.waiting import WAIT

pytestmark = pytest.mark.redis

HUGE = b"x" * (50 * 1024 * 1024)


async def test_a_planted_huge_value_is_refused_and_removed(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        async with AsyncCache(redis_url, prefix=key_prefix) as cache:  # 50 ms
            assert await cache.set("other", "fine") is True
            client.set(f"{key_prefix}:v1:hot", HUGE)
            results: list[object] = []

            async def read() -> None:
                results.append(await cache.get_or_load("hot", lambda: "loaded"))

            readers = [AsyncWorker(read, name=f"reader-{i}") for i in range(6)]
            for reader in readers:
                reader.start()
            for reader in readers:
                await reader.join(WAIT)
            assert results == ["loaded"] * 6
            assert client.strlen(f"{key_prefix}:v1:hot") < 1000  # gone, or refilled
            errors = cache.stats().errors
            assert 1 <= errors.get("decode:oversize", 0) <= 6, errors
            assert errors.get("circuit_open", 0) == 0
            assert errors.get("transient", 0) == 0
            assert await cache.get("other") == "fine"  # Redis still serves

            # The lease script's second look refuses it too.
            client.set(f"{key_prefix}:v1:hot2", HUGE)
            store = cache.engine.l2
            assert store is not None
            token = await store.acquire_or_get(f"{key_prefix}:v1:hot2", 1.0)
            assert isinstance(token, str)  # the lease: the key was removed first
            assert client.exists(f"{key_prefix}:v1:hot2") == 0
            assert await cache.get("hot2") is MISS
    finally:
        client.close()
