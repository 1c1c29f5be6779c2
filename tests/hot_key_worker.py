"""Spawn target of tests/test_hot_key_expiry.py: one process keeps calling
``get_or_load`` on a hot key across its soft expiry, from several threads."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import redis

from freshcache import L1, Cache
from tests.stampede_worker import warm_up

BARRIER_TIMEOUT = 60.0
KEY = "hot"
REFRESH_TTL = 600  # what the refresh stores: it cannot expire during the test


@dataclass
class ExpiryResult:
    """What one process saw while it kept reading the hot key."""

    index: int
    calls: int = 0
    values: dict[str, int] = field(default_factory=dict)  # value -> times served
    went_back: int = 0  # reads of value-1 after a read of value-2, per thread
    found_no_value: int = 0  # final misses: a caller that would wait on a load
    loads: int = 0  # loader calls this process made (as the refresher)
    counts: dict[str, int] = field(default_factory=dict)
    failure: str | None = None


def expiry_main(
    index: int, url: str, prefix: str, counter: str, threads: int, l1: bool,
    barrier: Any, seen_new: Any, stop: Any, results: Any,
) -> None:  # fmt: skip  # pragma: no cover - runs in a child process
    try:
        result = _run(index, url, prefix, counter, threads, l1, barrier, seen_new, stop)
    except BaseException:
        barrier.abort()
        result = ExpiryResult(index, failure=traceback.format_exc())
    results.put(result)


def _run(
    index: int, url: str, prefix: str, counter: str, threads: int, l1: bool,
    barrier: Any, seen_new: Any, stop: Any,
) -> ExpiryResult:  # fmt: skip
    client = redis.Redis.from_url(url)
    result = ExpiryResult(index)
    lock = threading.Lock()

    def loader() -> str:
        return f"value-{client.incr(counter)}"

    try:
        with Cache(
            url, prefix=prefix, l1=L1() if l1 else None, timeout=1.0,
            stale_ttl=600, xfetch_beta=0.0,  # the refresh runs past the soft expiry
        ) as cache:  # fmt: skip
            warm_up(cache)
            cache.get(KEY)  # learns the namespace version, once the bus is up
            misses = cache.stats().lookups.misses
            barrier.wait(BARRIER_TIMEOUT)

            def reader() -> None:
                calls, values, went_back, newest = 0, {}, 0, 1
                while not stop.is_set():
                    value = cache.get_or_load(KEY, loader, ttl=REFRESH_TTL)
                    calls += 1
                    values[value] = values.get(value, 0) + 1
                    n = int(str(value).rpartition("-")[2])
                    if n < newest:
                        went_back += 1
                    elif n > newest:
                        newest = n
                        seen_new.set()
                    time.sleep(0.001)
                with lock:
                    result.calls += calls
                    result.went_back += went_back
                    for value, times in values.items():
                        result.values[value] = result.values.get(value, 0) + times

            workers = [threading.Thread(target=reader) for _ in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            stats = cache.stats()
            result.found_no_value = stats.lookups.misses - misses
            result.loads = stats.loads
            result.counts = dict(stats.counts)
    finally:
        client.close()
    return result
