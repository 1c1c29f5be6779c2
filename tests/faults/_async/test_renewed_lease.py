"""A fill lease is renewed while its holder's process holds it, and only then.

A lease lives a few times the recent loads of its namespace, and
``lease_ttl`` (5 s) in a process that has timed no load yet: a new worker,
or one whose readers were all served by other processes' fills. Before,
that was also how long a lease outlived a holder that died: its key's
readers, in every process, waited 5 s (the async reads after a 3 s Redis
pause took up to 4.7 s, beside a CPU hog). Now a lease is written with an
expiry of half a second and renewed by its holder's process: a killed
holder's lease is gone within half a second, and a live holder keeps it
through a load longer than that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from freshcache import AsyncCache
from freshcache._concurrency import asleep
from tests._async.waiting import WAIT, run_in_background

pytestmark = pytest.mark.redis

BOUND = 1.0  # a reader's worst wait for a dead holder (lease_ttl is 5 s)
SLOW = 1.5  # seconds a live holder's load takes: three unrenewed expiries

HOLDER = """
import sys, time
from freshcache import Cache
cache = Cache(sys.argv[1], prefix=sys.argv[2])
def hangs():
    print("loading", flush=True)
    time.sleep(60)
    return "never"
cache.get_or_load("user:9", hangs)
"""


def _kill_a_holder(url: str, prefix: str) -> None:
    """A process takes user:9's lease, loads for a second (renewing it past
    its first expiry), and is killed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, prefix],
        stdout=subprocess.PIPE, text=True, env=env,
    ) as holder:  # fmt: skip
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "loading\n"  # it holds the lease
            time.sleep(1.0)
            os.kill(holder.pid, signal.SIGKILL)
        finally:
            holder.kill()
            holder.wait(WAIT)


async def test_a_killed_holders_lease_is_gone_within_half_a_second(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    _kill_a_holder(redis_url, key_prefix)
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as reader:

        async def load() -> str:
            return "row"

        started = time.monotonic()
        assert await reader.get_or_load("user:9", load) == "row"
        waited = time.monotonic() - started
        counts = reader.stats().counts
        assert counts.get("lease_busy", 0) == 1  # the dead holder's lease was there
        assert counts.get("lease_takeover", 0) == 1
    assert waited < BOUND, f"the reader waited {waited:.2f} s for a dead holder"


async def test_a_live_holder_keeps_its_lease_through_a_long_load(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as holder,
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as reader,
    ):
        loads: list[str] = []

        async def slow() -> str:
            loads.append("holder")
            await asleep(SLOW)
            return "slow row"

        async def fast() -> str:
            loads.append("reader")
            return "reader's row"

        loading = await run_in_background(lambda: holder.get_or_load("user:9", slow))
        while not loads:
            await asleep(0.01)
        assert await reader.get_or_load("user:9", fast) == "slow row"
        await loading.join(WAIT)
        assert loads == ["holder"]  # the reader waited for the fill
        assert reader.stats().counts.get("lease_takeover", 0) == 0
        assert holder.stats().counts.get("fill_skipped:lease_lost", 0) == 0
