"""The bus's link goes dead without a reset: the listener gives it up.

A blackholed link raises nothing: a pub/sub read with a timeout just finds
no message, forever. Before, a listener on such a link never noticed (not
within 15 s), so it never resubscribed. Now it pings on its own connection
after a second of quiet and gives the connection up after 5 s without a
byte; it resubscribes once the link is back. Meanwhile L1 serves nothing
older than its staleness bound: the pings that prove it current stop
coming back, so reads go to Redis (here out of reach too: the loader).
"""

from __future__ import annotations

import time

import pytest

from freshcache import L1, AsyncCache
from freshcache._concurrency import asleep
from tests._async.waiting import wait_for_count, wait_until_listening
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

STALENESS = 0.1  # L1's max_staleness
SLACK = 0.2  # for a loaded machine, on top of the staleness bound
NOTICED = 7.0  # the bus gives up after 5 s without a byte; two of slack


async def test_the_bus_leaves_a_blackholed_link(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    truth = {"version": 1}

    def load() -> int:
        return truth["version"]

    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        async with (
            AsyncCache(
                proxy.url, prefix="bb", l1=L1(max_staleness=STALENESS)
            ) as reader,
            AsyncCache(server.url, prefix="bb") as writer,
        ):
            assert await reader.get_or_load("row", load) == 1
            await wait_until_listening(reader)
            for _ in range(2):  # into L1 (a fill before the bus was up is not)
                assert await reader.get_or_load("row", load) == 1
            assert reader.stats().l1.hits >= 1  # L1 holds it

            proxy.blackhole = True
            cut = time.monotonic()
            truth["version"] = 2
            assert await writer.invalidate("row") is True  # never reaches reader
            stale: list[float] = []
            while not reader.stats().errors.get("bus_disconnect", 0):
                assert time.monotonic() - cut < NOTICED, "the bus never noticed"
                started = time.monotonic()
                if await reader.get_or_load("row", load) == 1:
                    stale.append(started - cut)
                await asleep(0.01)
            noticed = time.monotonic() - cut
            assert [at for at in stale if at > STALENESS + SLACK] == []
            assert reader.stats().counts.get("bus_connect", 0) == 1

            proxy.blackhole = False
            lifted = time.monotonic()
            await wait_for_count(reader, "bus_connect", 2)  # resubscribed
            back = time.monotonic() - lifted
            engine = reader.engine
            while engine.mono() - engine.bus.watermark >= engine.bound:
                # A read probes Redis and closes the breaker: pings go again.
                assert await reader.get_or_load("row", load) == 2
                assert time.monotonic() - lifted < NOTICED, "never current again"
                await asleep(0.01)
            assert await reader.get_or_load("row", load) == 2
            print(
                f"\n[bus blackhole] noticed after {noticed:.2f} s, resubscribed "
                f"{back:.2f} s after the link came back; stale reads until "
                f"{max(stale, default=0.0):.3f} s"
            )
