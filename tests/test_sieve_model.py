"""SIEVE (``MemoryStore(policy="sieve")``) against a slow reference model."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from freshcache._core.sentinels import MISS
from freshcache._inproc.store import MemoryStore
from freshcache.testing import FakeClock


class SieveModel:
    """A slow, obvious SIEVE over a Python list (oldest first)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.order: list[str] = []
        self.data: dict[str, tuple[Any, float, int]] = {}  # value, expires, size
        self.visited: dict[str, bool] = {}
        self.hand: str | None = None  # None: start at the oldest
        self.evictions: Counter[str] = Counter()

    def _remove(self, key: str) -> None:
        i = self.order.index(key)
        if self.hand == key:
            self.hand = self.order[i + 1] if i + 1 < len(self.order) else None
        del self.order[i]
        del self.data[key]
        del self.visited[key]

    def get(self, key: str, now: float) -> Any:
        if key not in self.data:
            return MISS
        value, exp, _ = self.data[key]
        if now >= exp:
            self._remove(key)
            self.evictions["expired"] += 1
            return MISS
        self.visited[key] = True
        return value

    def delete(self, key: str, now: float) -> bool:
        if key not in self.data:
            return False
        live = now < self.data[key][1]
        self._remove(key)
        if not live:
            self.evictions["expired"] += 1
        return live

    def set(
        self, key: str, value: Any, ttl: float | None, size: int, now: float
    ) -> None:
        if size > self.max_bytes:
            if key in self.data:
                self._remove(key)
            self.evictions["too_large"] += 1
            return
        exp = math.inf if ttl is None else now + ttl
        if key in self.data:
            self.visited[key] = True
        else:
            self.order.append(key)
            self.visited[key] = False
        self.data[key] = (value, exp, size)
        while True:
            used = sum(s for _, _, s in self.data.values())
            if len(self.order) > self.max_entries:
                cause = "entries"
            elif used > self.max_bytes:
                cause = "bytes"
            else:
                return
            dead = [k for k in self.order if now >= self.data[k][1]]
            if dead:  # every expired entry goes before any live one
                for k in dead:
                    self._remove(k)
                self.evictions["expired"] += len(dead)
                continue
            i = 0 if self.hand is None else self.order.index(self.hand)
            while True:
                k = self.order[i]
                if now >= self.data[k][1]:
                    cause = "expired"
                    break
                if k != key:
                    if not self.visited[k]:
                        break
                    self.visited[k] = False
                i = (i + 1) % len(self.order)
            i = self.order.index(k)
            after = self.order[i + 1] if i + 1 < len(self.order) else None
            if after == key:  # the hand skips the entry being written
                after = self.order[i + 2] if i + 2 < len(self.order) else None
            self.hand = after
            self._remove(k)
            self.evictions[cause] += 1


@pytest.mark.parametrize("seed", range(20))
def test_matches_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    max_entries, max_bytes = rng.choice([(1, 50), (3, 40), (8, 100), (20, 1000)])
    store = MemoryStore(
        max_entries=max_entries, max_bytes=max_bytes, clock=clock, policy="sieve"
    )
    model = SieveModel(max_entries, max_bytes)
    keys = [f"k{i}" for i in range(max_entries * 2 + 2)]
    for step in range(1500):
        key = rng.choice(keys)
        now = clock.monotonic()
        op = rng.random()
        if op < 0.45:
            assert store.get(key) == model.get(key, now), step
        elif op < 0.85:
            ttl = rng.choice([None, None, 0.5, 2.0, 10.0])
            size = rng.choice([0, 1, 5, 20, 60])
            store.set(key, step, ttl=ttl, size=size)
            model.set(key, step, ttl, size, now)
        elif op < 0.95:
            assert store.delete(key) == model.delete(key, now), step
        else:
            clock.advance(rng.choice([0.1, 0.5, 1.0]))
        assert len(store) == len(model.data), step
    store._check_invariants()
    assert store.evictions == {c: model.evictions[c] for c in store.evictions}
    assert {k for k in keys if k in store._map} == set(model.data)
