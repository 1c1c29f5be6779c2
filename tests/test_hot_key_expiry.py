"""A hot key past its soft expiry under continuous load (the issue's
requirement, target P5): no caller waits on the loader, and exactly one
refresh runs, across two processes.

Two spawned processes keep calling ``get_or_load`` on one key from several
threads each, from before its soft expiry until both have been served the
refreshed value. The loader counts its calls in Redis (every process sees
them); each process counts the callers that found no value (final misses:
those would have waited on a load). No timing is asserted.

Why exactly one refresh holds, and is not luck: a process refreshes at most
once at a time (its ``_refreshing`` set); across processes the refresh takes
the fill lease, and a process that finds it taken skips. The remaining race,
a reader that saw the old entry just before another process's refresh
filled and released the lease, is closed by the refresher re-reading the
entry after it takes the lease: a fill stores and releases in one Lua call,
so a refresh that already happened is visible then, and the second one skips
(``refresh_skipped:refreshed``). XFetch is off (``xfetch_beta=0``) so the
refresh happens past the soft expiry, as the requirement says; the refresh
stores a long TTL so that the refreshed value cannot expire in turn during
the test; deadlines are 1 s, so a slow shared machine cannot turn a Redis
read into a fallback load.
"""

from __future__ import annotations

import multiprocessing
import queue
import time

import pytest
import redis

from freshcache import Cache
from tests import hot_key_worker
from tests.hot_key_worker import KEY, ExpiryResult

PROCESSES = 2
THREADS = 8  # callers per process
SOFT_TTL = 1.0  # the first fill's freshness
HANG = 90.0  # seconds; only a broken run waits this long (not a timing check)

ctx = multiprocessing.get_context("spawn")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("l1", [False, True], ids=["redis", "l1+redis"])
def test_a_hot_key_past_its_soft_expiry_refreshes_once_and_nobody_waits(
    redis_url: str, key_prefix: str, redis_cleanup: None, l1: bool
) -> None:
    counter = f"{key_prefix}:loader-calls"
    client = redis.Redis.from_url(redis_url)
    barrier = ctx.Barrier(PROCESSES + 1)
    seen_new = [ctx.Event() for _ in range(PROCESSES)]
    stop = ctx.Event()
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=hot_key_worker.expiry_main,
            args=(
                i,
                redis_url,
                key_prefix,
                counter,
                THREADS,
                l1,
                barrier,
                seen_new[i],
                stop,
                results,
            ),
            name=f"hot-key-{i}",
        )
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    collected: dict[int, ExpiryResult] = {}
    try:
        with Cache(redis_url, prefix=key_prefix, timeout=1.0, stale_ttl=600) as cache:
            first = cache.get_or_load(
                KEY, lambda: f"value-{client.incr(counter)}", ttl=SOFT_TTL
            )
            assert first == "value-1"
        barrier.wait(HANG)  # both processes start reading while it is fresh
        for event in seen_new:  # until both were served the refreshed value
            assert event.wait(HANG), "a process never saw the refreshed value"
        stop.set()
        started = time.monotonic()
        while len(collected) < PROCESSES:
            try:
                result: ExpiryResult = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                assert not dead, f"workers died: {dead}"
                assert time.monotonic() - started < HANG, "no report"
                continue
            collected[result.index] = result
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=15)
            if process.is_alive():  # pragma: no cover - a stuck worker
                process.kill()
                process.join()
        results.close()
    calls = int(client.get(counter) or 0)
    client.close()
    failures = [r.failure for r in collected.values() if r.failure]
    assert not failures, "\n".join(f for f in failures if f)

    summary = {
        i: {
            "calls": r.calls, "values": r.values, "no value": r.found_no_value,
            "loads": r.loads,
        } | {k: v for k, v in r.counts.items() if k.startswith(("refresh", "swr"))}
        for i, r in sorted(collected.items())
    }  # fmt: skip
    assert calls == 2, f"{calls - 1} refreshes, not 1: {summary}"  # fill + 1 refresh
    assert sum(r.loads for r in collected.values()) == 1, summary
    assert all(r.found_no_value == 0 for r in collected.values()), summary
    assert all(set(r.values) <= {"value-1", "value-2"} for r in collected.values())
    assert all(r.went_back == 0 for r in collected.values()), summary
    assert sum(r.values.get("value-1", 0) for r in collected.values()) > 0
    print(summary)
