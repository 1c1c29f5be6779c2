"""TTL validation and freshness classification."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pytest

from freshcache._core.entry import NO_SOFT_EXPIRY, Entry
from freshcache._core.freshness import (
    EARLY_ODDS,
    early_refresh_from,
    jitter_ttl,
    lifetimes,
    refresh_early,
)
from freshcache._core.sentinels import MAX_TTL_SECONDS, MISS, UNSET, ttl_seconds
from freshcache._core.staleness import Local, local_verdict


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
    "ttl",
    [0, -1, 0.0, -0.0, math.nan, math.inf, timedelta(0), MAX_TTL_SECONDS * 2,
     True, False, 10**400],  # a bool is no number of seconds: ValueError too
)  # fmt: skip
def test_bad_ttl_values(ttl: Any) -> None:
    with pytest.raises(ValueError):
        ttl_seconds(ttl)


@pytest.mark.parametrize("ttl", ["10", [1], object()])
def test_bad_ttl_types(ttl: Any) -> None:
    with pytest.raises(TypeError):
        ttl_seconds(ttl)


def test_lifetimes_add_the_stale_window_to_the_hard_ttl() -> None:
    assert lifetimes(100.0, 10.0, 5.0) == (110.0, 15.0)
    assert lifetimes(100.0, None, 5.0) == (NO_SOFT_EXPIRY, None)


def simulate_windows(
    *, rate: float, delta: float, ttl: float, beta: float, windows: int, seed: int
) -> tuple[float, float, float]:
    """Readers arrive at ``rate`` per second on one key; each asks
    ``refresh_early``; the first yes starts one refresh (single flight and the
    lease merge the others), which lands ``delta`` later. Returns the mean
    number of early refreshes per expiry window, the share of windows whose
    refresh landed before expiry, and the mean lead time before expiry."""
    rng = random.Random(seed)
    refreshes = landed_in_time = 0
    lead = 0.0
    for _ in range(windows):
        entry = Entry("v", created_at=0.0, fresh_until=ttl, delta=delta)
        t = 0.0
        while t < ttl:
            t += rng.expovariate(rate)
            if t < ttl and refresh_early(entry, t, rng, beta):
                refreshes += 1
                landed_in_time += t + delta < ttl
                lead += ttl - t
                break
    return refreshes / windows, landed_in_time / windows, lead / max(refreshes, 1)


def test_xfetch_refreshes_about_once_per_window_before_expiry() -> None:
    mean, in_time, lead = simulate_windows(
        rate=10, delta=1.0, ttl=60.0, beta=1.0, windows=1000, seed=7
    )
    assert 0.8 <= mean <= 1.5
    assert in_time >= 0.95  # the refresh lands before the entry expires
    assert 1.0 < lead < 10.0  # a few recompute times ahead, not the whole TTL


def test_xfetch_scales_with_recompute_time_and_beta() -> None:
    _, _, short = simulate_windows(
        rate=10, delta=0.5, ttl=60.0, beta=1.0, windows=500, seed=1
    )
    _, _, slow = simulate_windows(
        rate=10, delta=2.0, ttl=60.0, beta=1.0, windows=500, seed=1
    )
    _, _, eager = simulate_windows(
        rate=10, delta=0.5, ttl=60.0, beta=3.0, windows=500, seed=1
    )
    assert slow > 2 * short  # slower values start refreshing earlier
    assert eager > 2 * short  # so does a larger beta


def test_xfetch_off_cases() -> None:
    rng = random.Random(0)
    entry = Entry("v", created_at=0.0, fresh_until=10.0, delta=1.0)
    assert not any(refresh_early(entry, 9.99, rng, beta=0.0) for _ in range(1000))
    no_delta = entry._replace(delta=0.0)
    assert not any(refresh_early(no_delta, 9.99, rng) for _ in range(1000))
    forever = entry._replace(fresh_until=float("inf"))
    assert not refresh_early(forever, 1e12, rng)
    assert refresh_early(entry, 10.0, rng)  # at expiry: always


class Draws:
    """A random source that returns the values it is given."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_early_refresh_from_marks_where_the_chance_reaches_the_odds() -> None:
    entry = Entry("v", created_at=0.0, fresh_until=100.0, delta=2.0)
    start = early_refresh_from(entry, beta=1.5)
    assert start == pytest.approx(100.0 - 2.0 * 1.5 * math.log(1 / EARLY_ODDS))
    # just before it, only a draw rarer than the odds fires; a little after it
    # (the chance grows by e per delta * beta), a commoner one does too
    rarer = 1.0 - EARLY_ODDS * 0.99  # rng.random() -> draw = EARLY_ODDS * 0.99
    commoner = 1.0 - EARLY_ODDS * 1.01
    assert not refresh_early(entry, start - 1e-6, Draws(commoner), beta=1.5)
    assert refresh_early(entry, start - 1e-6, Draws(rarer), beta=1.5)
    later = start + 2.0 * 1.5 * math.log(1.02)
    assert refresh_early(entry, later, Draws(commoner), beta=1.5)


def test_early_refresh_from_is_expiry_when_xfetch_is_off() -> None:
    entry = Entry("v", created_at=0.0, fresh_until=10.0, delta=1.0)
    assert early_refresh_from(entry, beta=0.0) == 10.0
    assert early_refresh_from(entry._replace(delta=0.0)) == 10.0
    forever = entry._replace(fresh_until=float("inf"))
    assert early_refresh_from(forever) == float("inf")


def test_ttl_jitter_never_lengthens_and_spreads() -> None:
    rng = random.Random(3)
    ttls = [jitter_ttl(100.0, 0.1, rng) for _ in range(1000)]
    assert all(90.0 <= t <= 100.0 for t in ttls)
    assert max(ttls) - min(ttls) > 9.0
    assert jitter_ttl(100.0, 0.0, rng) == 100.0
    with pytest.raises(ValueError):
        jitter_ttl(100.0, 1.0, rng)


@pytest.mark.parametrize(
    ("age", "bound", "grace", "connected", "verdict"),
    [
        (0.05, 0.1, 0.0, True, Local.SERVE),
        (0.1, 0.1, 0.0, True, Local.REFUSE),  # the bound is exclusive
        (math.inf, 0.1, 0.0, True, Local.REFUSE),  # no ping back yet
        (math.inf, math.inf, 0.0, True, Local.SERVE),  # not bounded
        (1.0, 0.1, 2.0, False, Local.DEGRADED),  # bus down, within the grace
        (1.0, 0.1, 2.0, True, Local.REFUSE),  # the grace is for a down bus only
        (2.1, 0.1, 2.0, False, Local.REFUSE),  # past bound + grace
        (1.0, 0.1, 0.0, False, Local.REFUSE),  # no degraded mode by default
    ],
)
def test_local_verdict(
    age: float, bound: float, grace: float, connected: bool, verdict: Local
) -> None:
    assert local_verdict(age, bound, grace=grace, connected=connected) is verdict
