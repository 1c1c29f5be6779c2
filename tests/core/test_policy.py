"""The circuit breaker, driven by an explicit clock."""

from __future__ import annotations

import pytest

from freshcache._core.policy import Breaker, BreakerState


def test_closed_until_the_failure_streak() -> None:
    breaker = Breaker(failures=3, open_seconds=1.0)
    assert breaker.failure(0.0) is False
    assert breaker.failure(0.0) is False
    assert breaker.allow(0.0)
    assert breaker.failure(0.0) is True
    assert breaker.state(0.5) is BreakerState.OPEN
    assert not breaker.allow(0.5)


def test_a_success_resets_the_streak() -> None:
    breaker = Breaker(failures=2)
    breaker.failure(0.0)
    breaker.success()
    assert breaker.failure(0.0) is False
    assert breaker.state(0.0) is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_through() -> None:
    breaker = Breaker(failures=1, open_seconds=1.0)
    breaker.failure(10.0)
    assert breaker.state(11.0) is BreakerState.HALF_OPEN
    assert breaker.allow(11.0)
    assert not breaker.allow(11.0)
    breaker.success()
    assert breaker.state(11.0) is BreakerState.CLOSED
    assert breaker.allow(11.0)


def test_every_end_of_a_probe_moves_the_breaker() -> None:
    """A probe that ends without a verdict (cancelled, no connection) lets
    the next call probe; one whose end is never reported is lost after
    ``open_seconds``. Before, either one left the breaker open for good."""
    breaker = Breaker(failures=1, open_seconds=1.0)
    breaker.failure(10.0)
    assert breaker.allow(11.0)  # the probe, then cancelled:
    breaker.abandon()
    assert breaker.allow(11.1)  # the next call probes at once
    assert not breaker.allow(11.2)
    assert not breaker.allow(12.0)  # that probe never reports back ...
    assert breaker.allow(12.1)  # ... and is lost after open_seconds
    breaker.success()
    assert breaker.state(12.2) is BreakerState.CLOSED
    breaker.abandon()  # no effect on a closed breaker
    assert breaker.state(12.2) is BreakerState.CLOSED


def test_a_failed_probe_reopens() -> None:
    breaker = Breaker(failures=5, open_seconds=1.0)
    for _ in range(5):
        breaker.failure(0.0)
    assert breaker.allow(1.0)
    assert breaker.failure(1.0) is True
    assert breaker.state(1.5) is BreakerState.OPEN
    assert breaker.allow(2.0)


@pytest.mark.parametrize(("failures", "seconds"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_settings(failures: int, seconds: float) -> None:
    with pytest.raises(ValueError):
        Breaker(failures=failures, open_seconds=seconds)


def test_healthy_tracks_whether_any_failure_is_on_record() -> None:
    breaker = Breaker(failures=3)
    assert breaker.healthy
    breaker.failure(0.0)
    assert not breaker.healthy  # callers must consult allow() now
    breaker.success()
    assert breaker.healthy
