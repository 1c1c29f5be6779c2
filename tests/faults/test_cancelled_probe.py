"""A cancelled half-open probe must not wedge the circuit breaker (async only:
cancellation is an asyncio fault).

Redis stops answering, the breaker opens; after ``open_seconds`` the next
call is the half-open probe, and the caller cancels it (``wait_for`` with a
short timeout). Before the fix the probe flag stayed set: once Redis was
back, no call ever reached it again, every read reported ``circuit_open``
and every invalidation stayed queued.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from freshcache import MISS, AsyncCache
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

OPEN_SECONDS = 1.0  # the breaker's default
# The cancelled probe is abandoned, so the next read probes at once; the
# breaker's other safety net (a probe never reported is lost after
# OPEN_SECONDS) would take twice this bound.
BOUND = OPEN_SECONDS / 2


async def test_a_cancelled_probe_does_not_wedge_the_breaker(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="faults", timeout=0.05) as cache:
            assert await cache.set("k", "v") is True
            server.stop()
            for _ in range(10):  # deadlines pass: the breaker opens
                assert await cache.get("k") is MISS
            assert cache.stats().errors.get("circuit_open", 0) > 0
            await asyncio.sleep(OPEN_SECONDS + 0.1)  # half-open: the next call probes
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(cache.get("k"), 0.01)  # ... cancelled
            server.cont()
            healed = time.monotonic()
            while await cache.get("k") != "v":
                assert time.monotonic() - healed < BOUND, cache.stats().errors
                await asyncio.sleep(0.01)
            assert await cache.invalidate("k") is True  # lands, not queued
