"""MemoryStore under 8 threads with a tiny switch interval (both policies)."""

from __future__ import annotations

import math
import random
import sys
import threading
from collections import Counter
from typing import Any

import pytest

from freshcache._core.sentinels import MISS
from freshcache._inproc.store import MemoryStore
from freshcache.testing import FakeClock


class Tagged:
    """A value that knows its key, its charged size and when it must be gone."""

    __slots__ = ("deadline", "key", "size")

    def __init__(self, key: str, size: int, deadline: float | None) -> None:
        self.key = key
        self.size = size
        self.deadline = deadline  # an upper bound on the expiry; None: not known yet


def run_threads(
    seed: int, policy: str, n_threads: int = 8, n_ops: int = 10_000
) -> None:
    clock = FakeClock()
    evicted: list[str] = []
    store = MemoryStore(
        max_entries=64,
        max_bytes=3000,
        clock=clock,
        on_evict=evicted.append,
        policy=policy,
    )
    keys = [f"k{i}" for i in range(100)]
    errors: list[BaseException] = []
    stale: list[tuple[str, float, float]] = []
    start = threading.Barrier(n_threads)

    def check(key: str, value: Any, before: float) -> None:
        if value is MISS:
            return
        assert value.key == key
        # deadline >= the store's expiry, so deadline <= before means the get
        # returned a value already expired when it was called.
        if value.deadline is not None and value.deadline <= before:
            stale.append((key, value.deadline, before))

    def worker(tid: int) -> None:
        rng = random.Random(seed * 1000 + tid)
        try:
            start.wait()
            for _ in range(n_ops):
                op = rng.random()
                key = rng.choice(keys)
                if tid == 0 and op < 0.2:
                    clock.advance(rng.choice([0.001, 0.01, 0.05]))
                elif op < 0.5:
                    before = clock.monotonic()
                    check(key, store.get(key), before)
                elif op < 0.55:
                    batch = rng.sample(keys, 4)
                    before = clock.monotonic()
                    for k, v in zip(batch, store.get_many(batch), strict=True):
                        check(k, v, before)
                elif op < 0.9:
                    ttl = rng.choice([None, 0.01, 0.05, 0.2, 1.0])
                    size = rng.randint(0, 120) if rng.random() < 0.99 else 5000
                    value = Tagged(key, size, math.inf if ttl is None else None)
                    store.set(key, value, ttl=ttl, size=size)
                    if ttl is not None:
                        value.deadline = clock.monotonic() + ttl
                elif op < 0.97:
                    store.delete(key)
                elif op < 0.972:
                    store.delete_where(lambda v: v.size == 7)
                else:
                    store.delete_many(rng.sample(keys, 3))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert stale == []
    store._check_invariants()
    assert len(store) <= 64
    assert store.total_bytes <= 3000
    # Through the public API: what is present accounts for every byte.
    present = [v for v in store.get_many(keys) if v is not MISS]
    assert store.total_bytes == sum(v.size for v in present)
    assert len(store) == len(present)
    counts = store.evictions
    assert Counter(evicted) == +Counter(counts)
    assert counts["entries"] + counts["bytes"] > 0
    assert counts["expired"] > 0


@pytest.mark.parametrize("policy", ["s3fifo", "sieve"])
def test_concurrent_random_ops(policy: str) -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for seed in range(6):
            run_threads(seed, policy)
    finally:
        sys.setswitchinterval(old)
