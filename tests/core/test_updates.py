"""What add, incr and touch decide to write (pure: no Redis, no clock)."""

from __future__ import annotations

import math

import pytest

from freshcache._core.entry import Entry
from freshcache._core.freshness import Lifetime
from freshcache._core.sentinels import MISS
from freshcache._core.updates import Change, added, incremented, remaining, touched

NOW = 1000.0


def test_remaining_keeps_the_expiry_and_the_stale_window() -> None:
    entry = Entry(1, NOW - 5, fresh_until=NOW + 10, stale_until=NOW + 40)
    assert remaining(entry, NOW) == Lifetime(10.0, 30.0)
    assert remaining(Entry(1, NOW), NOW) == Lifetime(None)  # no expiry
    assert remaining(Entry(1, NOW, fresh_until=NOW + 2), NOW) == Lifetime(2.0, 0.0)
    nearly = remaining(Entry(1, NOW, fresh_until=NOW), NOW)
    assert nearly.soft is not None
    assert 0 < nearly.soft <= 0.001  # never "no expiry", never zero


def test_added_stores_only_where_nothing_fresh_is() -> None:
    change = Change("v", Lifetime(5))
    assert added(MISS, change) is change
    assert added(Entry(None, NOW), change) is None  # a cached None is there


def test_incremented_adds_and_keeps_lifetime_and_tags() -> None:
    entry = Entry(41, NOW, fresh_until=NOW + 10, tags=("t",))
    change = incremented(entry, 1, NOW + 4)
    assert change == Change(42, Lifetime(6.0, 0.0), ("t",))
    assert incremented(Entry(2**70, NOW), -1, NOW).value == 2**70 - 1


@pytest.mark.parametrize("value", [None, True, 1.0, "1", [1]])
def test_incremented_refuses_what_is_not_an_int(value: object) -> None:
    with pytest.raises(TypeError):
        incremented(Entry(value, NOW), 1, NOW)


def test_incremented_refuses_a_miss_and_a_bad_delta() -> None:
    with pytest.raises(KeyError):
        incremented(MISS, 1, NOW)
    for delta in (True, 1.5, "1"):
        with pytest.raises(TypeError):
            incremented(Entry(1, NOW), delta, NOW)  # type: ignore[arg-type]


def test_touched_keeps_value_and_tags() -> None:
    entry = Entry([1], NOW, fresh_until=NOW + 1, tags=("a", "b"))
    assert touched(entry, Lifetime(math.pi)) == Change(
        [1], Lifetime(math.pi), ("a", "b")
    )
    assert touched(MISS, Lifetime(1)) is None
