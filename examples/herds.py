"""Thundering herds: python examples/herds.py [REDIS_URL].

A slow "report" is read by 200 threads at once: single flight builds it once.
Past its TTL, stale-while-revalidate serves the old report while one rebuild
runs; early refresh (XFetch) rebuilds a hot key before it expires.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from freshcache import Cache

builds: list[float] = []


def build_report() -> dict[str, int]:
    builds.append(time.monotonic())
    time.sleep(0.05)  # a slow query
    return {"rows": len(builds)}


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.005)


def main(url: str | None) -> None:
    run = uuid.uuid4().hex[:8]  # a fresh keyspace per run
    # timeout=1.0: generous, for a shared demo machine (the default is 50 ms)
    with Cache(url, prefix=f"herds-{run}", timeout=1.0) as cache:
        # 1. Single flight: 200 concurrent misses, one build.
        start = threading.Barrier(200)

        def read() -> dict[str, int]:
            start.wait()
            return cache.get_or_load("report:single", build_report, ttl=60)

        with ThreadPoolExecutor(200) as pool:
            results = list(pool.map(lambda _: read(), range(200)))
        assert len(builds) == 1
        assert all(r == {"rows": 1} for r in results)
        print(f"single flight: 200 callers, {len(builds)} build")

        # 2. Stale-while-revalidate: past the TTL, the old value at once.
        builds.clear()
        cache.get_or_load("report:swr", build_report, ttl=0.2, stale_ttl=60)
        time.sleep(0.25)  # past the soft TTL
        began = time.monotonic()
        stale = cache.get_or_load("report:swr", build_report, ttl=0.2, stale_ttl=60)
        waited = time.monotonic() - began
        assert stale == {"rows": 1}
        wait_for(lambda: len(builds) == 2)
        print(f"stale-while-revalidate: stale value in {waited * 1000:.1f} ms,")
        print("  one background rebuild")

        # 3. Early refresh (XFetch, on by default): a hot key is rebuilt
        # before it expires, by one reader, in the background.
        builds.clear()
        cache.get_or_load("report:hot", build_report, ttl=1.0)
        expires = builds[0] + 1.0
        while len(builds) == 1 and time.monotonic() < expires + 1.0:
            cache.get_or_load("report:hot", build_report, ttl=1.0)  # hot
            time.sleep(0.001)
        assert len(builds) > 1, "never rebuilt"
        if builds[1] < expires:
            print(f"early refresh: rebuilt {expires - builds[1]:.2f} s before expiry")
        else:  # only on a machine too busy to read it often near the end
            print("early refresh: not drawn in time; the expiry's one load rebuilt it")
        cache.clear()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
