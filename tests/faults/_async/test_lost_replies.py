"""Commands that reach Redis and run, and replies that never come back.

Through a proxy that drops what Redis sends in bursts (40 ms of every
100 ms), some calls time out though Redis ran them: among them lease
acquisitions, which take leases their callers never hear of. Reads still
return the loader's value within one deadline plus the load, and never
raise. Once replies flow again, no reader waits on such a lease (each is
given back, or lasts about one load; ``lease_ttl`` is 5 s), and the values
are cached again.
"""

from __future__ import annotations

import time

import pytest
import redis

from freshcache import AsyncCache
from freshcache._concurrency import AsyncWorker, asleep
from tests.faults._async.readers import Readers
from tests.proxy import delay_proxy
from tests.servers import own_redis_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TIMEOUT = 0.05  # the cache's per-call deadline (its default)
KEYS = 10
LOAD = 0.005  # seconds per load
BOUND = 0.5  # one read while replies are lost, loader included
HEALED = 1.0  # the worst read once they flow again


async def test_lost_replies_leave_no_reader_waiting(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as server, delay_proxy(server.port) as proxy:
        async with AsyncCache(proxy.url, prefix="lr", timeout=TIMEOUT) as cache:
            readers = Readers(cache, keys=KEYS, load=LOAD)
            workers = [AsyncWorker(readers.read, name=f"read-{n}") for n in range(8)]
            for worker in workers:
                worker.start()
            await asleep(0.5)
            lossy = time.monotonic()
            while time.monotonic() - lossy < 3.0:
                proxy.drop_replies = True
                await asleep(0.04)
                proxy.drop_replies = False
                await asleep(0.06)
            healed = time.monotonic()
            await asleep(3.0)
            readers.stop.set()
            for worker in workers:
                await worker.join(10.0)
            assert readers.errors == []
            during = readers.worst(lossy, healed)
            after = readers.worst(healed)
            assert during < BOUND, f"a read took {during:.2f} s while replies were lost"
            assert after < HEALED, f"a read took {after:.2f} s after replies came back"
            assert len([r for r in readers.reads if r[0] >= healed]) > 100
            unsure = cache.stats().counts.get("lease_unsure_release", 0)
            assert unsure > 0  # some acquisitions' replies were lost
            raw = redis.Redis.from_url(server.url)
            assert raw.exists(*[f"lr:v1:k:{i}" for i in range(KEYS)]) > 0  # cached
            raw.close()
            print(
                f"\n[lost replies] worst read {during:.3f} s while lost, "
                f"{after:.3f} s after; {unsure} leases given back"
            )
