"""The default eviction policy (adaptive S3-FIFO) inside MemoryStore."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from freshcache._eviction import S3Fifo
from freshcache._types import MISS
from freshcache.clock import FakeClock
from freshcache.memory import MemoryStore


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
    assert len(policy(store).ghosts()) == 10  # bounded by max_entries
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
