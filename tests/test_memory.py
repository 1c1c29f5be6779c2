"""MemoryStore: bounds, TTL, eviction causes, deletes, the expiry heap.

Elsewhere: the default policy (S3-FIFO) in test_eviction.py, SIEVE's
reference model in test_sieve_model.py, threads in test_memory_threads.py."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import pytest

from freshcache import L1
from freshcache._core.sentinels import MISS
from freshcache._inproc.store import MemoryStore
from freshcache.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kw: Any) -> MemoryStore:
    return MemoryStore(clock=clock, **kw)


def keys_of(store: MemoryStore, candidates: str) -> str:
    """Which of the one-letter keys are present (reading marks them visited)."""
    return "".join(k for k in candidates if store.get(k) is not MISS)


# -- basics --


def test_none_is_a_hit_and_absent_is_miss(clock: FakeClock) -> None:
    store = make(clock)
    store.set("a", None, ttl=None)
    assert store.get("a") is None
    assert store.get("b") is MISS
    assert not MISS
    assert store.get_many(["a", "b", "a"]) == [None, MISS, None]


def test_values_are_stored_by_reference(clock: FakeClock) -> None:
    store = make(clock)
    value: list[int] = []
    store.set("a", value, ttl=None)
    assert store.get("a") is value


def test_ttl_boundary_is_inclusive(clock: FakeClock) -> None:
    # Expired from set time + ttl on: now >= expires_at (as core.freshness).
    store = make(clock)
    store.set("a", 1, ttl=10)
    clock.advance(9.5)
    assert store.get("a") == 1
    clock.advance(0.5)  # exactly at the expiry
    assert store.get("a") is MISS
    assert len(store) == 0
    assert store.evictions["expired"] == 1


def test_ttl_none_never_expires(clock: FakeClock) -> None:
    store = make(clock)
    store.set("a", 1, ttl=None)
    clock.advance(1e12)
    assert store.get("a") == 1


def test_overwrite_resets_ttl_and_bytes(clock: FakeClock) -> None:
    store = make(clock)
    store.set("a", 1, ttl=5, size=10)
    clock.advance(4)
    store.set("a", 2, ttl=5, size=30)
    assert store.total_bytes == 30
    assert len(store) == 1
    clock.advance(4)
    assert store.get("a") == 2
    store.set("a", 3, ttl=None, size=7)
    assert store.total_bytes == 7


def test_clear_is_not_an_eviction(clock: FakeClock) -> None:
    calls: list[str] = []
    store = make(clock, on_evict=calls.append)
    for k in "abc":
        store.set(k, k, ttl=None, size=5)
    store.clear()
    assert len(store) == 0
    assert store.total_bytes == 0
    assert store.get("a") is MISS
    assert calls == []
    assert sum(store.evictions.values()) == 0
    store.set("a", 1, ttl=None)
    assert store.get("a") == 1
    store._check_invariants()


def test_evictions_is_a_copy(clock: FakeClock) -> None:
    store = make(clock)
    store.evictions["expired"] = 99
    assert store.evictions == {"expired": 0, "entries": 0, "bytes": 0, "too_large": 0}


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": 0}, {"max_entries": -1}, {"max_bytes": 0}, {"max_bytes": -5}],
)
def test_bad_bounds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MemoryStore(**kwargs)


@pytest.mark.parametrize(("ttl", "size"), [(0, 0), (-1, 0), (math.nan, 0), (1, -1)])
def test_bad_ttl_or_size(clock: FakeClock, ttl: float, size: int) -> None:
    store = make(clock)
    with pytest.raises(ValueError):
        store.set("a", 1, ttl=ttl, size=size)
    assert len(store) == 0


def test_unbounded_bytes(clock: FakeClock) -> None:
    store = make(clock, max_bytes=None)
    store.set("a", 1, ttl=None, size=10**12)
    assert store.total_bytes == 10**12


# -- bounds and causes --


def test_entry_bound(clock: FakeClock) -> None:
    store = make(clock, max_entries=3)
    for k in "abcd":
        store.set(k, k, ttl=None)
    assert len(store) == 3
    assert keys_of(store, "abcd") == "bcd"  # FIFO when nothing was read
    assert store.evictions == {"expired": 0, "entries": 1, "bytes": 0, "too_large": 0}


def test_byte_bound(clock: FakeClock) -> None:
    store = make(clock, max_bytes=100)
    store.set("a", 1, ttl=None, size=40)
    store.set("b", 1, ttl=None, size=40)
    store.set("c", 1, ttl=None, size=20)  # exactly at the bound: kept
    assert store.total_bytes == 100
    store.set("d", 1, ttl=None, size=50)  # a and b must go
    assert keys_of(store, "abcd") == "cd"
    assert store.total_bytes == 70
    assert store.evictions["bytes"] == 2
    store._check_invariants()


def test_growing_overwrite_evicts_others_not_itself(clock: FakeClock) -> None:
    store = make(clock, max_bytes=100)
    store.set("a", 1, ttl=None, size=30)
    store.set("b", 1, ttl=None, size=30)
    store.set("b", 2, ttl=None, size=100)
    assert store.get("b") == 2
    assert store.get("a") is MISS
    assert store.total_bytes == 100


def test_too_large_value(clock: FakeClock) -> None:
    calls: list[str] = []
    store = make(clock, max_bytes=100, on_evict=calls.append)
    store.set("a", "small", ttl=None, size=10)
    store.set("big", "x", ttl=None, size=101)
    assert store.get("big") is MISS
    # A too-large overwrite drops the old value: never serve what was replaced.
    store.set("a", "huge", ttl=None, size=1000)
    assert store.get("a") is MISS
    assert len(store) == 0
    assert store.total_bytes == 0
    assert store.evictions["too_large"] == 2
    assert calls == ["too_large", "too_large"]
    store.set("edge", 1, ttl=None, size=100)  # exactly max_bytes fits
    assert store.get("edge") == 1


# -- SIEVE --


def test_sieve_keeps_hot_entry(clock: FakeClock) -> None:
    store = make(clock, max_entries=3, policy="sieve")
    for k in "abc":
        store.set(k, k, ttl=None)
    assert store.get("a") == "a"  # a is hot
    store.set("d", "d", ttl=None)  # hand clears a, evicts b (LRU would too)
    assert "a" in store.get_many(["a"])  # visits a again
    store.set("e", "e", ttl=None)  # hand is at c: c goes, a is not moved
    assert store.get("b") is MISS
    assert store.get("c") is MISS
    assert store.get("a") == "a"
    store._check_invariants()


def test_sieve_does_not_move_retained_entries(clock: FakeClock) -> None:
    store = make(clock, max_entries=3, policy="sieve")
    for k in "abc":
        store.set(k, k, ttl=None)
    store.get("a")
    # a survives the first pass and stays the oldest; the hand then evicts
    # each new one-hit entry right behind the newest (quick demotion), where
    # LRU would have dropped a two inserts later.
    for k in "defgh":
        store.set(k, k, ttl=None)
    assert keys_of(store, "abcdefgh") == "agh"
    store._check_invariants()


def test_overwrite_keeps_position_and_counts_as_hit(clock: FakeClock) -> None:
    store = make(clock, max_entries=2)
    store.set("a", 1, ttl=None)
    store.set("b", 1, ttl=None)
    store.set("a", 2, ttl=None)
    store.set("c", 1, ttl=None)
    assert store.get("a") == 2
    assert store.get("b") is MISS


def test_expired_reclaimed_before_live_even_if_visited(clock: FakeClock) -> None:
    calls: list[str] = []
    store = make(clock, max_entries=3, on_evict=calls.append)
    store.set("a", 1, ttl=None)
    store.set("b", 1, ttl=5)
    store.set("c", 1, ttl=None)
    store.get("a")
    store.get("b")  # visited, then expires
    clock.advance(5)
    store.set("d", 1, ttl=None)
    assert calls == ["expired"]
    assert len(store) == 3
    assert store.get("a") == 1
    assert store.get("c") == 1
    assert store.evictions["entries"] == 0


def test_expired_reclaimed_by_bytes_pressure(clock: FakeClock) -> None:
    store = make(clock, max_bytes=100)
    store.set("a", 1, ttl=None, size=50)
    store.set("b", 1, ttl=1, size=50)
    store.get("a")
    clock.advance(1)
    store.set("c", 1, ttl=None, size=50)
    assert store.evictions == {"expired": 1, "entries": 0, "bytes": 0, "too_large": 0}
    assert store.get("a") == 1


# -- delete --


def test_delete_leaves_no_ghost(clock: FakeClock) -> None:
    store = make(clock, max_entries=3)
    store.set("a", 1, ttl=None, size=1)
    store.set("b", 1, ttl=None, size=2)
    store.set("c", 1, ttl=None, size=4)
    assert store.delete("b") is True
    assert store.delete("b") is False
    assert len(store) == 2
    assert store.total_bytes == 5
    store.set("d", 1, ttl=None, size=8)  # room left by b: no eviction
    assert sum(store.evictions.values()) == 0
    store.set("e", 1, ttl=None, size=16)  # oldest unvisited (a) goes, not a ghost
    assert keys_of(store, "abcde") == "cde"
    assert store.total_bytes == 28
    store._check_invariants()


def test_delete_under_the_hand(clock: FakeClock) -> None:
    store = make(clock, max_entries=3, policy="sieve")
    for k in "abc":
        store.set(k, k, ttl=None)
    store.get("a")
    store.set("d", "d", ttl=None)  # b goes; the hand now rests on c
    assert store.delete("c") is True
    store.set("e", "e", ttl=None)  # no eviction needed
    store.set("f", "f", ttl=None)  # hand moved on to d
    assert keys_of(store, "acdef") == "aef"
    store._check_invariants()


def test_delete_many_and_expired_delete(clock: FakeClock) -> None:
    calls: list[str] = []
    store = make(clock, on_evict=calls.append)
    store.set("a", 1, ttl=None, size=3)
    store.set("b", 1, ttl=1, size=5)
    store.set("c", 1, ttl=None, size=7)
    clock.advance(1)
    # b is expired: reclaimed as such, and not reported as deleted (like Redis).
    assert store.delete_many(["a", "b", "zz", "a"]) == 1
    assert calls == ["expired"]
    assert store.total_bytes == 7
    store.set("d", 1, ttl=1)
    clock.advance(2)
    assert store.delete("d") is False
    assert store.delete("c") is True
    assert calls == ["expired", "expired"]
    assert len(store) == 0
    assert store.total_bytes == 0


def test_reclaim_spares_a_replaced_entry(clock: FakeClock) -> None:
    # A get that found an old expired node must not remove its replacement.
    store = make(clock)
    store.set("a", 1, ttl=1)
    old = store._map["a"]
    clock.advance(1)
    store.set("a", 2, ttl=None)
    assert store._reclaim("a", old) is MISS
    assert store.get("a") == 2
    assert store.evictions["expired"] == 0


# -- on_evict --


def test_on_evict_causes_and_lock_released(clock: FakeClock) -> None:
    calls: list[str] = []
    lock_free: list[bool] = []

    def on_evict(cause: str) -> None:
        calls.append(cause)
        got = store._lock.acquire(blocking=False)
        lock_free.append(got)
        if got:
            store._lock.release()

    store = make(clock, max_entries=3, max_bytes=10, on_evict=on_evict)
    store.set("a", 1, ttl=1)
    clock.advance(1)
    store.get("a")  # expired
    for k in "bcde":
        store.set(k, 1, ttl=None, size=1)  # e: entries (b goes)
    store.set("e", 2, ttl=None, size=9)  # bytes (c goes)
    store.set("f", 1, ttl=None, size=11)  # too large
    store.delete("e")
    store.clear()
    assert calls == ["expired", "entries", "bytes", "too_large"]
    assert all(lock_free)
    assert store.evictions == {"expired": 1, "entries": 1, "bytes": 1, "too_large": 1}


def test_delete_where_removes_matching_values_only() -> None:
    store = MemoryStore(max_entries=10)
    for i in range(6):
        store.set(f"k{i}", i, ttl=None, size=10)
    assert store.delete_where(lambda v: v % 2 == 0) == 3
    assert [store.get(f"k{i}") for i in range(6)] == [MISS, 1, MISS, 3, MISS, 5]
    assert len(store) == 3
    assert store.total_bytes == 30
    assert store.evictions["entries"] == 0
    store._check_invariants()


# -- the expiry heap --


class Payload:
    """A value that can be watched with a weak reference."""


def test_expiry_heap_keeps_no_removed_value_alive(clock: FakeClock) -> None:
    store = make(clock, max_entries=4)
    value = Payload()
    watch = weakref.ref(value)
    store.set("a", value, ttl=10)
    store.set("a", 1, ttl=10)  # replaced
    del value
    gc.collect()
    assert watch() is None
    value = Payload()
    watch = weakref.ref(value)
    store.set("b", value, ttl=10)
    store.delete("b")
    del value
    gc.collect()
    assert watch() is None


def test_a_replaced_entry_is_not_reclaimed_by_its_old_expiry(clock: FakeClock) -> None:
    store = make(clock, max_entries=3)
    store.set("a", 1, ttl=1)
    store.set("a", 2, ttl=None)  # the heap still holds a's first expiry
    store.set("b", 1, ttl=5)
    store.set("b", 2, ttl=50)
    store.set("c", 1, ttl=None)
    clock.advance(10)
    store.set("d", 1, ttl=None)  # pressure: pops both stale tuples
    assert store.evictions == {"expired": 0, "entries": 1, "bytes": 0, "too_large": 0}
    assert len(store) == 3
    assert store.get("a") == 2  # overwritten: a hit, promoted; c went instead
    assert store.get("b") == 2
    store._check_invariants()


def test_expiry_heap_stays_bounded(clock: FakeClock) -> None:
    store = make(clock, max_entries=10)
    for i in range(10_000):
        store.set(f"k{i % 3}", i, ttl=100)
    assert len(store._expiry) <= 2 * len(store) + 64 + 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"ttl": 0}, "ttl"),
        ({"max_staleness": 0}, "max_staleness"),
        ({"max_staleness": 61}, "max_staleness"),
        ({"max_staleness": float("nan")}, "max_staleness"),
        ({"serve_stale_when_down": -1}, "serve_stale_when_down"),
        ({"serve_stale_when_down": float("nan")}, "serve_stale_when_down"),
    ],
)
def test_bad_l1_options_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        L1(**options)  # type: ignore[arg-type]


def test_l1_defaults_bound_staleness_and_do_not_serve_stale_when_down() -> None:
    assert L1().max_staleness == 0.1
    assert L1().serve_stale_when_down == 0.0
    assert L1(max_staleness=None).max_staleness is None
