"""The bus's ping bookkeeping (``_core/pings.py``): in-order pings give no
gap; a ping back while an older one is missing (lost, overtaken, never
sent) is a gap, once; unknown pings are ignored."""

from __future__ import annotations

import pytest

from freshcache._core.pings import Back, Pings


def test_in_order_pings_are_no_gap() -> None:
    pings = Pings()
    for n in range(1, 50):
        pings.sent(n, float(n))
        assert pings.back(n) == Back(float(n), gap=False)


def test_pings_in_flight_are_no_gap() -> None:
    pings = Pings()
    pings.sent(1, 1.0)
    pings.sent(2, 2.0)  # sent before 1 came back: still in order
    assert pings.back(1) == Back(1.0, gap=False)
    assert pings.back(2) == Back(2.0, gap=False)


def test_a_missing_ping_makes_the_next_one_back_a_gap() -> None:
    pings = Pings()
    for n in (1, 2, 3):
        pings.sent(n, float(n))
    assert pings.back(1).gap is False
    assert pings.back(3) == Back(3.0, gap=True)  # 2 never came
    assert pings.back(2) == Back(None, gap=False)  # too late: forgotten
    pings.sent(4, 4.0)
    assert pings.back(4) == Back(4.0, gap=False)  # reported once


def test_an_overtaken_ping_is_a_gap() -> None:
    pings = Pings()
    pings.sent(1, 1.0)
    pings.sent(2, 2.0)
    assert pings.back(2).gap is True
    assert pings.back(1).sent is None


def test_unknown_pings_are_ignored_and_clear_forgets() -> None:
    pings = Pings()
    assert pings.back(7) == Back(None, gap=False)
    pings.sent(1, 1.0)
    pings.clear()
    pings.sent(2, 2.0)
    assert pings.back(2) == Back(2.0, gap=False)


def test_at_most_kept_pings_are_awaited() -> None:
    pings = Pings(kept=3)
    for n in range(1, 6):
        pings.sent(n, float(n))
    assert pings.back(1).sent is None  # dropped, the oldest
    assert pings.back(2).sent is None
    assert pings.back(5) == Back(5.0, gap=True)  # 3 and 4 missing
    with pytest.raises(ValueError):
        Pings(kept=0)
