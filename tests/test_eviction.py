"""The default eviction policy (adaptive S3-FIFO) inside MemoryStore."""

from __future__ import annotations

import math
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import Any

import pytest

from freshcache._core.sentinels import MISS
from freshcache._inproc.eviction import S3Fifo
from freshcache._inproc.store import MemoryStore
from freshcache.testing import FakeClock


def replay(store: MemoryStore, keys: Iterable[str]) -> int:
    hits = 0
    for key in keys:
        if store.get(key) is MISS:
            store.set(key, key, ttl=None)
        else:
            hits += 1
    return hits


def lru_hits(keys: Iterable[str], capacity: int) -> int:
    cache: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in keys:
        if key in cache:
            cache.move_to_end(key)
            hits += 1
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def scan_workload() -> list[str]:
    """40 hot keys read over and over, each round followed by a scan of 60
    keys never seen again: LRU lets every scan flush the hot keys."""
    keys: list[str] = []
    for round_ in range(50):
        keys += [f"hot{i}" for i in range(40)]
        keys += [f"scan{round_}:{i}" for i in range(60)]
    return keys


def policy(store: MemoryStore) -> S3Fifo:
    p = store._policy
    assert isinstance(p, S3Fifo)
    return p


def test_default_beats_lru_on_a_scan() -> None:
    keys = scan_workload()
    lru = lru_hits(keys, 50)
    ours = replay(MemoryStore(max_entries=50), keys)
    assert lru == 0  # each scan pushes the hot keys out before they return
    assert ours >= 0.9 * 40 * 49  # hot keys hit in every round but the first


def test_one_hit_wonders_stay_out_of_main() -> None:
    store = MemoryStore(max_entries=10)
    for i in range(100):
        store.set(f"k{i}", i, ttl=None)
    assert len(store) == 10
    assert all(not node.main for node in policy(store).nodes())
    assert len(policy(store).ghosts()) == 17  # bounded: 1.75 x max_entries
    store._check_invariants()


def test_ghost_hit_goes_to_main_and_grows_small() -> None:
    store = MemoryStore(max_entries=10)
    for i in range(11):
        store.set(f"k{i}", i, ttl=None)  # k0 leaves small: a ghost
    assert policy(store).ghosts() == ["k0"]
    share = policy(store).small_share
    store.set("k0", 0, ttl=None)
    assert store._map["k0"].main
    assert policy(store).small_share > share  # small was too short for k0
    assert "k0" not in policy(store).ghosts()
    store._check_invariants()


def test_ghost_from_main_comes_back_with_a_hit() -> None:
    # k0 is promoted to main, then main lets it go unread (a ghost from
    # main): when it comes back, small shrinks and k0 gets a second pass.
    store = MemoryStore(max_entries=10)
    store.set("k0", 0, ttl=None)
    store.get("k0")
    i = 0
    while "k0" in store._map:  # keys hit once in small: all move to main
        i += 1
        store.set(f"k{i}", i, ttl=None)
        store.get(f"k{i}")
    assert policy(store)._ghosts["k0"] is True  # it left main
    share = policy(store).small_share
    store.set("k0", 0, ttl=None)
    node = store._map["k0"]
    assert node.main
    assert node.hits == 1  # the request that brought it back
    assert policy(store).small_share < share
    store._check_invariants()


def test_deleted_key_leaves_no_ghost() -> None:
    store = MemoryStore(max_entries=10)
    for i in range(11):
        store.set(f"k{i}", i, ttl=None)
    assert policy(store).ghosts() == ["k0"]
    share = policy(store).small_share
    assert store.delete("k0") is False  # not resident, but its ghost goes
    assert policy(store).ghosts() == []
    store.set("k0", 0, ttl=None)  # a fresh key again: small, nothing learnt
    assert not store._map["k0"].main
    assert policy(store).small_share == share
    store._check_invariants()


def test_deleted_and_expired_entries_leave_no_ghost() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=4, clock=clock)
    store.set("a", 1, ttl=None)
    store.set("b", 1, ttl=1)
    store.delete("a")
    store.delete_where(lambda v: True)
    store.set("c", 1, ttl=1)
    clock.advance(1)
    assert store.get("c") is MISS
    assert policy(store).ghosts() == []
    store._check_invariants()


def test_expired_entries_go_before_any_live_one() -> None:
    # An expired entry deep in main, hit many times, still goes first, and
    # all expired entries go at once; no live entry is evicted.
    clock = FakeClock()
    evicted: list[str] = []
    store = MemoryStore(max_entries=6, clock=clock, on_evict=evicted.append)
    for i in range(7):  # k0 is promoted to main (it was hit in small)
        store.set(f"k{i}", i, ttl=5 if i in (0, 3) else None)
        store.get("k0")
    assert store._map["k0"].main
    for _ in range(10):
        store.get("k0")
    assert evicted == ["entries"]  # k1, when k6 came
    clock.advance(5)
    store.set("new", 1, ttl=None)
    assert evicted == ["entries", "expired", "expired"]
    assert store.get("k0") is MISS
    assert store.get("k3") is MISS
    assert len(store) == 5
    store._check_invariants()


def test_byte_bound_with_ghosts() -> None:
    store = MemoryStore(max_entries=100, max_bytes=100)
    for i in range(50):
        store.set(f"k{i}", i, ttl=None, size=30)
        assert store.total_bytes <= 100
    assert len(store) == 3
    assert len(policy(store).ghosts()) <= 100
    store._check_invariants()


# -- against a reference model --


class S3FifoModel:
    """A slow, obvious adaptive S3-FIFO over Python lists (oldest first)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.small: list[str] = []
        self.main: list[str] = []
        self.hits: dict[str, int] = {}
        self.data: dict[str, tuple[Any, float, int]] = {}  # value, expires, size
        self.ghosts: OrderedDict[str, bool] = OrderedDict()  # key -> left main
        self.share = S3Fifo.SMALL
        self.evictions: Counter[str] = Counter()

    def _remove(self, key: str) -> None:
        (self.main if key in self.main else self.small).remove(key)
        del self.data[key]
        del self.hits[key]

    def _evict(self, key: str, from_main: bool) -> None:
        self._remove(key)
        self.ghosts[key] = from_main
        if len(self.ghosts) > int(self.max_entries * S3Fifo.GHOSTS):
            self.ghosts.popitem(last=False)

    def get(self, key: str, now: float) -> Any:
        if key not in self.data:
            return MISS
        value, exp, _ = self.data[key]
        if now >= exp:
            self._remove(key)
            self.evictions["expired"] += 1
            return MISS
        self.hits[key] += 1
        return value

    def delete(self, key: str, now: float) -> bool:
        if key not in self.data:
            self.ghosts.pop(key, None)
            return False
        live = now < self.data[key][1]
        self._remove(key)
        if not live:
            self.evictions["expired"] += 1
        return live

    def _insert(self, key: str) -> None:
        self.hits[key] = 0
        if key not in self.ghosts:
            self.small.append(key)
            return
        from_small = sum(not m for m in self.ghosts.values())
        from_main = len(self.ghosts) - from_small
        count = len(self.small) + len(self.main) + 1
        if self.ghosts.pop(key):
            step = max(1.0, from_small / from_main) / count
            self.share = max(S3Fifo.SMALL_MIN, self.share - step)
            self.hits[key] = 1  # main let it go too early: a second pass
        else:
            step = S3Fifo.GROW * max(1.0, from_main / from_small) / count
            self.share = min(S3Fifo.SMALL_MAX, self.share + step)
        self.main.append(key)

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
            self.hits[key] += 1
        else:
            self._insert(key)
        self.data[key] = (value, exp, size)
        while True:
            if len(self.data) > self.max_entries:
                cause = "entries"
            elif sum(s for _, _, s in self.data.values()) > self.max_bytes:
                cause = "bytes"
            else:
                return
            dead = [k for k in self.data if now >= self.data[k][1]]
            if dead:  # every expired entry goes before any live one
                for k in dead:
                    self._remove(k)
                self.evictions["expired"] += len(dead)
                continue
            self._evict_one(key)
            self.evictions[cause] += 1

    def _evict_one(self, protect: str) -> None:
        while True:
            small = [k for k in self.small[:2] if k != protect][:1]
            main = [k for k in self.main[:2] if k != protect][:1]
            total = len(self.small) + len(self.main)
            if small and (not main or len(self.small) >= self.share * total):
                k = small[0]
                if self.hits[k] < S3Fifo.PROMOTE:
                    self._evict(k, False)
                    return
                self.small.remove(k)
                self.main.append(k)
                self.hits[k] = 0
            else:
                k = main[0]
                if self.hits[k] <= 0:
                    self._evict(k, True)
                    return
                self.main.remove(k)
                self.main.append(k)
                self.hits[k] = min(self.hits[k], S3Fifo.MAX_HITS) - 1


@pytest.mark.parametrize("seed", range(20))
def test_matches_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    max_entries, max_bytes = rng.choice([(1, 50), (3, 40), (8, 100), (20, 1000)])
    store = MemoryStore(max_entries=max_entries, max_bytes=max_bytes, clock=clock)
    model = S3FifoModel(max_entries, max_bytes)
    keys = [f"k{i}" for i in range(max_entries * 3 + 2)]
    hot = keys[: max(1, max_entries // 2)]
    for step in range(2000):
        key = rng.choice(hot if rng.random() < 0.5 else keys)
        now = clock.monotonic()
        op = rng.random()
        if op < 0.45:
            assert store.get(key) == model.get(key, now), step
        elif op < 0.87:
            ttl = rng.choice([None, None, None, 0.5, 2.0, 10.0])
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
    assert policy(store).ghosts() == list(model.ghosts)
    assert policy(store).small_share == pytest.approx(model.share)
