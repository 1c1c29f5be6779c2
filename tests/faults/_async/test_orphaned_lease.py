"""An orphaned fill lease delays its key's readers by about one load.

A lease is orphaned when its holder stops loading without releasing it: its
process was killed or froze, or its caller hung. Readers of the key in every
process wait for that holder's fill until the lease expires and one of them
takes it over. Before, a lease lasted ``lease_ttl`` (5 s) whatever the
loads took: every reader of the key waited 5 s. Now it lasts a few times
the holder's recent loads of the namespace (``_core/loadtimes.py``).
"""

from __future__ import annotations

import time

import pytest

from freshcache import AsyncCache
from freshcache._concurrency import AsyncFlag, asleep
from tests._async.waiting import WAIT, run_in_background, wait_for_count

pytestmark = pytest.mark.redis

LOAD = 0.01  # seconds each ordinary load takes
BOUND = 1.0  # a reader's worst wait: far under lease_ttl, far over 4 loads


async def test_a_hung_holder_delays_readers_by_about_one_load(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as holder,
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as reader,
    ):
        assert holder.engine.leases is not None
        assert holder.engine.leases.ttl == 5.0  # the default lease_ttl

        async def ordinary() -> str:
            await asleep(LOAD)
            return "row"

        for i in range(5):  # the holder learns what a load of "user" takes
            assert await holder.get_or_load(f"user:{i}", ordinary) == "row"
        hung, release = AsyncFlag(), AsyncFlag()

        async def hangs() -> str:
            hung.set()
            await release.wait(WAIT)  # a frozen process, a stuck driver ...
            return "late"

        stuck = await run_in_background(lambda: holder.get_or_load("user:9", hangs))
        assert await hung.wait(WAIT)  # it holds user:9's lease, and loads forever
        started = time.monotonic()
        assert await reader.get_or_load("user:9", ordinary) == "row"
        waited = time.monotonic() - started
        assert waited < BOUND, f"the reader waited {waited:.2f} s for a hung holder"
        assert reader.stats().counts.get("lease_busy", 0) == 1  # it did wait
        release.set()
        await stuck.join(WAIT)
        await wait_for_count(holder, "fill_skipped:lease_lost", 1)
        assert await reader.get("user:9") == "row"  # the late load stored nothing
