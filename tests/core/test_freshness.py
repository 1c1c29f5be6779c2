"""TTL validation and freshness classification."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from freshcache._types import MAX_TTL_SECONDS, MISS, UNSET, ttl_seconds
from freshcache.core.entry import NO_SOFT_EXPIRY, Entry
from freshcache.core.freshness import Freshness, freshness, lifetimes


def test_sentinels_are_falsy_and_distinct() -> None:
    assert not MISS
    assert not UNSET
    assert MISS is not None
    assert repr(MISS) == "MISS"


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [(None, None), (1, 1.0), (0.0001, 0.0001), (timedelta(minutes=2), 120.0)],
)
def test_ttl_forms(ttl: Any, seconds: float | None) -> None:
    assert ttl_seconds(ttl) == seconds


@pytest.mark.parametrize(
    "ttl", [0, -1, 0.0, -0.0, math.nan, math.inf, timedelta(0), MAX_TTL_SECONDS * 2]
)
def test_bad_ttl_values(ttl: Any) -> None:
    with pytest.raises(ValueError):
        ttl_seconds(ttl)


@pytest.mark.parametrize("ttl", [True, "10", [1], object()])
def test_bad_ttl_types(ttl: Any) -> None:
    with pytest.raises(TypeError):
        ttl_seconds(ttl)


def test_lifetimes_add_the_stale_window_to_the_hard_ttl() -> None:
    assert lifetimes(100.0, 10.0, 5.0) == (110.0, 15.0)
    assert lifetimes(100.0, None, 5.0) == (NO_SOFT_EXPIRY, None)


def test_freshness_boundary() -> None:
    entry = Entry("v", created_at=0.0, fresh_until=10.0)
    assert freshness(entry, 9.999) is Freshness.FRESH
    assert freshness(entry, 10.0) is Freshness.STALE
    assert freshness(Entry("v", 0.0), 1e18) is Freshness.FRESH
