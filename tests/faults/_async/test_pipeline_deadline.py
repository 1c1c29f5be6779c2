"""A pipeline has one deadline for all its replies, not one per reply.

redis.asyncio reads each reply of a pipeline under its own
``socket_timeout``. Through a proxy that sends Redis's bytes one every 2 ms,
one reply of a cached value (about 50 bytes) takes about 0.1 s, under the
0.2 s deadline; the store's ``get_many`` of 10 keys (one pipeline) then took
10 of them, 1.06 s, and still counted as a success. Now the whole pipeline
gives up at its deadline (the cache's read then fails open: no hits), and
the connection it used is dropped, so the next call reads its own replies,
not the rest of these.
"""

from __future__ import annotations

import time

import pytest

from freshcache import MISS, AsyncCache
from freshcache.errors import TransientStoreError
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

TIMEOUT = 0.2  # the cache's per-call deadline
TRICKLE = 0.002  # seconds per byte: one reply takes about half the deadline
KEYS = 10
BOUND = 0.6  # the whole get_many: three deadlines (10 replies took about 1 s)


async def test_a_pipeline_of_slow_replies_costs_one_deadline(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    values = {f"row:{i}": i for i in range(KEYS)}
    full = [f"pl:v1:{key}" for key in values]  # namespace version 0
    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        async with AsyncCache(proxy.url, prefix="pl", timeout=TIMEOUT) as cache:
            assert await cache.set_many(values) is True
            # The store's own get_many: the cache's also reads each key's
            # namespace version first (one call each, while the bus, slowed
            # down too, cannot confirm the versions it knows).
            store = cache.engine.l2
            assert store is not None
            assert MISS not in await store.get_many(full)
            proxy.trickle = TRICKLE
            assert await cache.get("row:0") == 0  # one reply fits in the deadline
            started = time.monotonic()
            with pytest.raises(TransientStoreError):  # the cache reads misses
                await store.get_many(full)
            took = time.monotonic() - started
            assert took < BOUND, f"get_many of {KEYS} keys took {took:.2f} s"
            assert cache.stats().errors.get("transient", 0) >= 1
            proxy.trickle = 0.0
            hits = await store.get_many(full)  # no reply of before left behind
            assert [hit[0].value for hit in hits if hit is not MISS] == list(
                values.values()
            )
            assert await cache.get("row:1") == 1
