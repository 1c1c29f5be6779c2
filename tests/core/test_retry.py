"""The retry delay of queued invalidations: exponential, capped, jittered."""

from __future__ import annotations

import pytest

from freshcache._core.retry import RETRY_CAP, RETRY_FIRST, retry_delay


def test_the_delay_doubles_from_the_first_up_to_the_cap() -> None:
    ceilings = [retry_delay(n, 0.999999) for n in range(10)]
    assert ceilings[0] == pytest.approx(RETRY_FIRST, rel=1e-5)
    assert ceilings[1] == pytest.approx(2 * RETRY_FIRST, rel=1e-5)
    assert max(ceilings) == pytest.approx(RETRY_CAP, rel=1e-5)
    assert ceilings == sorted(ceilings)


def test_jitter_keeps_at_least_half_the_delay() -> None:
    for attempt in (0, 3, 50):
        low, high = retry_delay(attempt, 0.0), retry_delay(attempt, 0.999999)
        assert low == pytest.approx(high / 2, rel=1e-5)


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert retry_delay(10**6, 0.5) <= RETRY_CAP


@pytest.mark.parametrize(("attempt", "draw"), [(-1, 0.5), (0, 1.0), (0, -0.1)])
def test_bad_inputs_are_refused(attempt: int, draw: float) -> None:
    with pytest.raises(ValueError):
        retry_delay(attempt, draw)
