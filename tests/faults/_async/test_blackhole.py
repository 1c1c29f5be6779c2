"""A link that goes dead without a reset: every byte dropped, both ways.

Through a proxy that swallows everything (connections stay open, nothing
arrives), reads fall back to the loader at one deadline each and never
raise, the breaker opens, and invalidations are queued. Once the link is
back, reads reach Redis again within about one probe interval (the breaker
stays open 1 s), and the queued invalidation lands.
"""

from __future__ import annotations

import time

import pytest
import redis

from freshcache import MISS, AsyncCache
from freshcache._concurrency import asleep
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

TIMEOUT = 0.05  # the cache's per-call deadline (its default)
LOAD = 0.01  # seconds per load
BOUND = 0.5  # one read, loader included: ten deadlines of slack
BACK = 3.0  # from the link's return to a read served by Redis (probe: 1 s)
LANDED = 5.0  # from the link's return to the queued invalidation landing


async def test_reads_and_invalidations_survive_a_blackhole(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis

    async def load() -> str:
        await asleep(LOAD)
        return "loaded"

    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(proxy.url, prefix="bh", timeout=TIMEOUT) as cache:
            assert await cache.set("gone", "old") is True
            assert await cache.set("kept", "cached") is True
            proxy.blackhole = True
            worst = 0.0
            for i in range(30):
                started = time.monotonic()
                assert await cache.get("kept") is MISS
                assert await cache.get_or_load(f"new:{i}", load) == "loaded"
                worst = max(worst, time.monotonic() - started)
            assert worst < BOUND, f"a get and a get_or_load took {worst:.2f} s"
            errors = cache.stats().errors
            assert errors.get("circuit_open", 0) > 0, errors
            assert await cache.invalidate("gone") is False  # queued
            assert cache.stats().pending_invalidations == 1
            assert raw.exists("bh:v1:gone") == 1  # the proxy let nothing through

            proxy.blackhole = False
            lifted = time.monotonic()
            while await cache.get("kept") != "cached":
                assert time.monotonic() - lifted < BACK, "reads never reached Redis"
                await asleep(0.01)
            back = time.monotonic() - lifted
            while raw.exists("bh:v1:gone"):
                assert time.monotonic() - lifted < LANDED, "the invalidation is lost"
                await asleep(0.01)
            assert cache.stats().pending_invalidations == 0
            assert await cache.get("gone") is MISS
            print(
                f"\n[blackhole] worst read {worst:.3f} s, "
                f"Redis again after {back:.2f} s"
            )
        raw.close()
