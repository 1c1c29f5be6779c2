"""Every call has one deadline, however the reply trickles in.

Through a proxy that sends Redis's replies one byte every 20 ms, a read of a
2 KB value can never finish in time. Each chunk arrives well within the
50 ms ``socket_timeout``, so redis-py's sync client, which applies it per
read from the socket, took 20 to 40 s for one GET. Now the call gives up at
its deadline and the read falls back to the loader.
"""

from __future__ import annotations

import time

import pytest
import redis

from freshcache import MISS, AsyncCache
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

TIMEOUT = 0.05  # the cache's per-call deadline (its default)
BOUND = 0.5  # the whole read, loader included: ten deadlines of slack


async def test_a_trickling_reply_costs_one_deadline(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        async with AsyncCache(proxy.url, prefix="t", timeout=TIMEOUT) as cache:
            assert await cache.set("k", "x" * 2000) is True
            assert await cache.get("k") == "x" * 2000  # fine while the link is
            proxy.trickle = 0.02
            started = time.monotonic()
            assert await cache.get("k") is MISS
            took = time.monotonic() - started
            assert took < BOUND, f"one get took {took:.2f} s"
            started = time.monotonic()
            assert await cache.get_or_load("k", lambda: "loaded") == "loaded"
            took = time.monotonic() - started
            assert took < BOUND, f"one get_or_load took {took:.2f} s"
            assert cache.stats().errors.get("transient", 0) >= 1
            proxy.trickle = 0.0
            raw = redis.Redis.from_url(server.url)
            assert raw.exists("t:v1:k") == 1  # nothing was lost meanwhile
            raw.close()
