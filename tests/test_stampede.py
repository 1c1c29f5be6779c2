"""Cross-process single flight (C4): a stampede on one cold key across
processes makes one loader call; a lease holder killed mid-load lets exactly
one waiter take over after the lease TTL, and leaves no lock without a TTL.

The loaders count their calls in Redis, which every process sees. Worker
processes are spawned (tests/stampede_worker.py), as real deployments are.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from freshcache import L1, MISS, Cache
from freshcache._core.layout import lease_key
from tests import stampede_worker
from tests.stampede_worker import StampedeResult, warm_up

PROCESSES = 2
CALLERS = 250  # threads per process
WAITERS = 20
LEASE_TTL = 1.0
ISSUE_BOUND = 0.3  # "the others finish within lease TTL + 300 ms"...
SCHEDULING_SLACK = 1.2  # ...plus room for a loaded CI host (never flaky)
REPORT_TIMEOUT = 90.0

ctx = multiprocessing.get_context("spawn")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url)
    yield made
    made.close()


def keys_under(client: redis.Redis, prefix: str) -> list[bytes]:
    """Every key of the test: data keys (``prefix...``) and the keys whose
    name begins with a hash tag (``{prefix...}:lease``)."""
    found = set(client.scan_iter(match=f"{prefix}*", count=1000))
    found |= set(client.scan_iter(match=f"{{{prefix}*", count=1000))
    return sorted(found)


def test_two_processes_of_250_callers_make_one_loader_call(
    redis_url: str, key_prefix: str, redis_cleanup: None, client: redis.Redis
) -> None:
    counter = f"{key_prefix}:loader-calls"
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=stampede_worker.stampede_main,
            args=(i, redis_url, key_prefix, counter, CALLERS, barrier, results),
            name=f"stampede-{i}",
        )
        for i in range(PROCESSES)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    collected: dict[int, StampedeResult] = {}
    try:
        while len(collected) < PROCESSES:
            try:
                result: StampedeResult = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                assert not dead, f"stampede workers died: {dead}"
                assert time.monotonic() - started < REPORT_TIMEOUT, "no report"
                continue
            collected[result.index] = result
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():  # pragma: no cover - a stuck worker
                process.kill()
                process.join()
        results.close()
    elapsed = time.monotonic() - started
    failures = [r.failure for r in collected.values() if r.failure]
    assert not failures, "\n".join(f for f in failures if f)

    calls = int(client.get(counter) or 0)
    counts = {
        i: {"loads": r.loads, "values": dict(Counter(r.results))}
        | {k: v for k, v in r.counts.items() if k.startswith("lease")}
        for i, r in sorted(collected.items())
    }
    everything = [value for r in collected.values() for value in r.results]
    assert calls == 1, f"{calls} loader calls for one key; per process {counts}"
    assert everything == ["value-1"] * (PROCESSES * CALLERS), counts
    print(f"{PROCESSES}x{CALLERS} callers, one load, {elapsed:.2f} s; {counts}")


def test_killing_the_lease_holder_lets_one_waiter_take_over(
    redis_url: str, key_prefix: str, redis_cleanup: None, client: redis.Redis
) -> None:
    counter = f"{key_prefix}:loader-calls"
    inside = ctx.Event()
    holder = ctx.Process(
        target=stampede_worker.holder_main,
        args=(redis_url, key_prefix, counter, LEASE_TTL, inside),
        name="lease-holder",
    )
    finished: list[float] = []
    got: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def loader() -> str:
        calls = client.incr(counter)
        return f"value-{calls}"

    with Cache(
        redis_url, prefix=key_prefix, l1=L1(), timeout=1.0, lease_ttl=LEASE_TTL
    ) as cache:
        warm_up(cache)

        def call() -> None:
            try:
                value = cache.get_or_load("hot", loader, ttl=60)
            except BaseException as exc:  # reported below
                with lock:
                    errors.append(exc)
                return
            with lock:
                got.append(value)
                finished.append(time.monotonic())

        holder.start()
        try:
            assert inside.wait(60), "the holder never reached its loader"
            assert holder.is_alive()
            threads = [threading.Thread(target=call) for _ in range(WAITERS)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while not cache.stats().counts.get("lease_busy"):
                assert time.monotonic() < deadline, "no waiter found the lease busy"
                time.sleep(0.005)
            killed = time.monotonic()
            assert holder.pid is not None
            os.kill(holder.pid, signal.SIGKILL)
            for thread in threads:
                thread.join(timeout=30)
            assert not any(thread.is_alive() for thread in threads), "waiters hang"
        finally:
            if holder.is_alive():
                holder.kill()
            holder.join(timeout=10)
        full = cache.engine.head + "hot"  # namespace "hot" never bumped: version 0
        counts = dict(cache.stats().counts)

    assert not errors, errors
    elapsed = max(finished) - killed
    lease_counts = {k: v for k, v in counts.items() if k.startswith("lease")}
    assert got == ["value-2"] * WAITERS, lease_counts
    assert int(client.get(counter) or 0) == 2  # the holder's call, one takeover
    assert counts.get("lease_takeover") == 1, lease_counts
    assert not counts.get("lease_wait_timeout"), lease_counts
    assert elapsed < LEASE_TTL + ISSUE_BOUND + SCHEDULING_SLACK, elapsed
    print(f"all {WAITERS} waiters served {elapsed * 1000:.0f} ms after the kill")

    assert not client.exists(lease_key(full)), "the lease outlived the fill"
    left = [k for k in keys_under(client, key_prefix) if k != counter.encode()]
    assert left, "the takeover's fill was not stored"
    no_ttl = [k for k in left if client.pttl(k) == -1]
    assert not no_ttl, f"keys without a TTL: {no_ttl}"


# -- the window between the miss and the lease, made deterministic ------------------
#
# A caller reads a miss, then takes the lease in a second round trip. If another
# process's fill lands in between, the fill has already released the lease, so
# the SET NX succeeds and the caller loads again. The two tests below hold that
# window open (by pausing the caller's Redis GET after a miss) instead of
# waiting for the stampede above to hit it by chance.


@pytest.fixture
def two_caches(redis_url: str, key_prefix: str, redis_cleanup: None) -> Iterator[
    tuple[Cache, Cache]
]:  # fmt: skip
    """Two caches sharing Redis and the bus: two processes, as far as C4 goes."""
    with (
        Cache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as first,
        Cache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as second,
    ):
        warm_up(first)
        warm_up(second)
        yield first, second


class PausedMiss:
    """Wraps a cache's Redis GET: once ``armed``, a miss is reported to the
    caller only after ``resume`` is set (``read`` says the miss was read)."""

    def __init__(self, cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = threading.Event()
        self.read = threading.Event()
        self.resume = threading.Event()
        store = cache.engine.l2
        assert store is not None
        original = store.get

        def get(full: str) -> Any:
            hit = original(full)
            if hit is MISS and self.armed.is_set() and not self.read.is_set():
                self.read.set()
                assert self.resume.wait(10), "never resumed"
            return hit

        monkeypatch.setattr(store, "get", get)


def test_a_miss_read_just_before_another_fill_does_not_load_again(
    two_caches: tuple[Cache, Cache],
    client: redis.Redis,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_caches
    counter = f"{key_prefix}:loader-calls"
    paused = PausedMiss(second, monkeypatch)
    got: list[Any] = []

    def loader() -> str:
        return f"value-{client.incr(counter)}"

    paused.armed.set()
    reader = threading.Thread(
        target=lambda: got.append(second.get_or_load("hot", loader))
    )
    reader.start()
    assert paused.read.wait(10)  # the second cache has read its miss...
    assert first.get_or_load("hot", loader) == "value-1"  # ...the first fills...
    paused.resume.set()  # ...then the second takes the (now free) lease
    reader.join(10)

    calls = int(client.get(counter) or 0)
    assert (calls, got) == (1, ["value-1"]), second.stats().counts
