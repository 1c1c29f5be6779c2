"""A full Redis under ``maxmemory-policy noeviction`` refuses cache writes.

Redis checks ``maxmemory`` at a script's first write, and not again once the
script has written. freshcache's scripts used to start with a DEL (of the
lease), so their SET then ran past the limit: 100 sets of 50 KB took a
server over its 3 MB limit to 9.5 MB. Every script now writes data first. A
refused write is skipped (``set`` returns False, the loader's value is
returned but not stored) and counted as a ``capacity`` error, loudly; it
does not open the circuit breaker (Redis answered, and still serves
reads). Write-behind raises: a write it cannot queue is never reported as
done.
"""

from __future__ import annotations

import pytest
import redis
import redis.exceptions

from freshcache import AsyncCache, CapacityStoreError
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

VALUE = "x" * 50_000


def _over_the_limit(url: str) -> int:
    """Fill 2 MB, then set ``maxmemory`` to 1 MB (a limit lowered, or memory
    grown by fragmentation): Redis is over it. Its used memory then."""
    client = redis.Redis.from_url(url)
    try:
        for i in range(40):
            client.set(f"filler:{i}", VALUE)
        client.config_set("maxmemory", 1024 * 1024)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("one:more", "x")
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


async def test_writes_to_a_full_redis_are_refused_and_change_nothing(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server("--maxmemory-policy", "noeviction") as server:
        async with AsyncCache(
            server.url, prefix="oom", timeout=1.0, compress_threshold=None
        ) as cache:
            assert await cache.set("kept", "old") is True
            full = _over_the_limit(server.url)
            for i in range(100):
                assert await cache.set(f"big:{i}", VALUE) is False
            assert await cache.set("kept", "new") is False
            assert await cache.get_or_load("loaded", lambda: VALUE) == VALUE
            client = redis.Redis.from_url(server.url)
            try:
                used = int(client.info("memory")["used_memory"])
                assert used - full < 500_000, f"grew from {full} to {used} bytes"
                assert client.keys("oom:*big*") == []
                assert client.keys("oom:*loaded*") == []
            finally:
                client.close()
            assert await cache.get("kept") == "old"  # reads are still served
            assert cache.stats().errors.get("capacity", 0) >= 100
            assert cache.stats().errors.get("circuit_open", 0) == 0
            wb = cache.write_behind(name="q")  # write-behind raises instead
            with pytest.raises(CapacityStoreError):
                await wb.put("user:1", {"name": "ada"})
            await wb.aclose(flush=False)
