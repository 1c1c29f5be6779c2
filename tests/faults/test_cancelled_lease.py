"""A caller cancelled while its lease acquisition is in flight gives the
lease back (async only: cancellation is an asyncio fault).

Through a proxy that delays Redis's replies by 100 ms (commands still run at
once), a ``get_or_load`` takes the key's lease; the moment Redis holds it,
and before the reply has come back, the caller is cancelled (``wait_for``, a
client that went away). Before, nobody released that lease: every reader of
the key, in every process, waited ``lease_ttl`` (5 s; the cancelled cache
had seen no load, so its lease lasted that long). Now the store releases
it in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis

from freshcache import AsyncCache
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

WAIT = 10.0  # seconds any step may take before the test fails
pytestmark = pytest.mark.redis

DELAY = 0.1  # seconds added to every reply: the window to cancel in
BOUND = 1.0  # a reader's worst wait, against 5 s before


async def test_a_cancelled_acquisition_gives_its_lease_back(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        raw = redis.Redis.from_url(server.url)
        async with (
            AsyncCache(proxy.url, prefix="faults", timeout=1.0) as slow,
            AsyncCache(server.url, prefix="faults", timeout=1.0) as reader,
        ):
            await slow.get("warm:up")  # its connections are open
            proxy.delay = DELAY

            async def load() -> str:
                return "row"

            for i in range(5):
                key = f"user:{i}"
                call = asyncio.ensure_future(slow.get_or_load(key, load))
                lease = f"{{faults:v1:{key}}}:lease"
                deadline = time.monotonic() + WAIT
                while not raw.exists(lease):  # Redis took it; the reply is late
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.001)
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
                started = time.monotonic()
                assert await reader.get_or_load(key, load) == "row"
                waited = time.monotonic() - started
                assert waited < BOUND, f"{key}: a reader waited {waited:.2f} s"
            # Most cancellations hit the reply's wait (a late one hits the
            # loader, whose failure path releases the lease as before).
            assert slow.stats().counts.get("lease_unsure_release", 0) >= 1
