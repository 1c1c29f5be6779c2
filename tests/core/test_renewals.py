"""When held leases are renewed, and for how long (pure logic)."""

from __future__ import annotations

import contextlib

from freshcache._core.renewals import SPAN, Renewals


def renewals() -> Renewals:
    return Renewals(contextlib.nullcontext())


def test_a_short_lived_lease_needs_no_renewal() -> None:
    held = renewals()
    assert Renewals.expiry(0.2) == 0.2
    assert held.hold("k", "t", 0.2, taken=0.0) is False
    assert held.wait(0.0) is None  # nothing held


def test_a_long_lived_lease_is_written_short_and_renewed_until_its_life_ends() -> None:
    held = renewals()
    assert Renewals.expiry(5.0) == SPAN
    assert held.hold("k", "t", 1.0, taken=0.0) is True  # start a renewer
    assert held.hold("j", "u", 1.0, taken=0.0) is False  # one is running
    assert held.wait(0.0) == SPAN / 2
    assert held.due(0.1) == []  # more than half of its expiry is left
    assert held.due(0.3) == [("k", "t", SPAN), ("j", "u", SPAN)]
    held.renewed([("k", "t", SPAN), ("j", "u", SPAN)], [True, False], sent=0.3)
    # j was gone (filled, released or revoked): forgotten
    assert held.due(0.6) == [("k", "t", 0.4)]  # the rest of its life only
    held.renewed([("k", "t", 0.4)], [True], sent=0.6)
    assert held.due(0.9) == []  # its expiry is its life's end: no more
    assert held.wait(0.9) is None  # the renewer ends...
    assert held.hold("k", "v", 1.0, taken=1.0) is True  # ...and another starts


def test_a_dropped_lease_is_not_renewed_and_a_stale_token_is_ignored() -> None:
    held = renewals()
    held.hold("k", "t", 2.0, taken=0.0)
    held.drop("k", "someone else's")
    assert [key for key, _, _ in held.due(0.3)] == ["k"]
    held.renewed([("k", "old", SPAN)], [False], sent=0.3)  # not the lease held
    held.drop("k", "t")
    assert held.due(0.3) == []
    assert held.wait(0.3) is None
