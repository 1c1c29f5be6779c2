"""Spawn targets for tests/test_stampede.py (cross-process single flight).

Each target runs in a fresh interpreter (multiprocessing "spawn"), builds its
own ``Cache`` and counts loader calls in Redis, where every process sees them.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from freshcache import L1, Cache

BARRIER_TIMEOUT = 60.0  # seconds; only a broken run ever waits this long


@dataclass
class StampedeResult:
    """What one stampede process saw."""

    index: int
    results: list[Any] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    loads: int = 0  # loader calls this process made
    failure: str | None = None


def warm_up(cache: Cache) -> None:
    """Connect, and wait until the bus is subscribed: a (re)subscribe detaches
    the loads in flight, which would split the flight (and a fill notice sent
    before the subscription would be lost)."""
    cache.get("warm:up")
    deadline = time.monotonic() + 10.0
    while not cache.stats().counts.get("bus_connect"):
        if time.monotonic() > deadline:
            raise TimeoutError("the invalidation bus did not connect within 10 s")
        time.sleep(0.01)


def stampede_main(
    index: int,
    url: str,
    prefix: str,
    counter: str,
    callers: int,
    barrier: Any,
    results: Any,
) -> None:  # pragma: no cover - runs in a child process
    """``callers`` threads call ``get_or_load("hot")`` at once, once every
    process is ready; the loader INCRs ``counter`` and sleeps 50 ms."""
    try:
        results.put(_stampede(index, url, prefix, counter, callers, barrier))
    except BaseException:
        barrier.abort()
        results.put(StampedeResult(index, failure=traceback.format_exc()))


def _stampede(
    index: int, url: str, prefix: str, counter: str, callers: int, barrier: Any
) -> StampedeResult:
    client = redis.Redis.from_url(url)
    # Every thread is started before the processes meet: the last thread to
    # arrive waits for the other processes, then all threads go at once.
    start = threading.Barrier(callers, action=lambda: barrier.wait(BARRIER_TIMEOUT))

    def loader() -> str:
        calls = client.incr(counter)
        time.sleep(0.05)
        return f"value-{calls}"

    def call(_: int) -> Any:
        start.wait(BARRIER_TIMEOUT)
        return cache.get_or_load("hot", loader)

    try:
        with Cache(url, prefix=prefix, l1=L1(), timeout=1.0) as cache:
            warm_up(cache)
            with ThreadPoolExecutor(max_workers=callers) as pool:
                got = list(pool.map(call, range(callers)))
            stats = cache.stats()
            return StampedeResult(index, got, dict(stats.counts), stats.loads)
    finally:
        client.close()


def holder_main(
    url: str, prefix: str, counter: str, lease_ttl: float, inside: Any
) -> None:  # pragma: no cover - runs in a child process, and is killed
    """Take the lease on "hot" and hang in the loader (60 s) until killed;
    ``inside`` is set once the loader runs, so the lease is held."""
    client = redis.Redis.from_url(url)

    def loader() -> str:
        client.incr(counter)
        inside.set()
        time.sleep(60)
        return "from-the-holder"

    with Cache(url, prefix=prefix, l1=L1(), timeout=1.0, lease_ttl=lease_ttl) as cache:
        warm_up(cache)
        cache.get_or_load("hot", loader)
