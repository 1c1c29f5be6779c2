"""How long a fill lease lasts: a few times the namespace's recent loads."""

from __future__ import annotations

from freshcache._core.loadtimes import FACTOR, FLOOR, KEPT, NAMESPACES, LoadTimes


def test_the_cap_until_a_load_was_seen() -> None:
    times = LoadTimes(5.0)
    assert times.lease_ttl("user") == 5.0
    times.record("user", 0.0)  # a fake clock: loads that took no time
    assert times.lease_ttl("user") == 5.0


def test_a_few_times_the_slowest_recent_load_within_floor_and_cap() -> None:
    times = LoadTimes(5.0)
    times.record("user", 0.1)
    times.record("user", 0.02)
    assert times.lease_ttl("user") == FACTOR * 0.1
    times.record("fast", 0.0001)
    assert times.lease_ttl("fast") == FLOOR
    times.record("slow", 30.0)
    assert times.lease_ttl("slow") == 5.0


def test_old_loads_are_forgotten() -> None:
    times = LoadTimes(5.0)
    times.record("user", 1.0)
    for _ in range(KEPT):
        times.record("user", 0.1)
    assert times.lease_ttl("user") == FACTOR * 0.1


def test_a_namespace_not_seen_borrows_from_the_others() -> None:
    times = LoadTimes(5.0)
    times.record("user", 0.1)
    assert 0 < times.lease_ttl("team") <= FACTOR * 0.1


def test_namespaces_remembered_are_bounded() -> None:
    times = LoadTimes(5.0)
    for i in range(NAMESPACES + 10):
        times.record(f"ns{i}", 0.1)
    assert len(times._recent) == NAMESPACES
    assert "ns0" not in times._recent  # the oldest went first
