"""The queue of invalidations waiting for Redis: coalesced, bounded, race-safe."""

from __future__ import annotations

import pytest

from freshcache._inproc.invalidation_queue import PendingInvalidations


def test_the_first_add_asks_for_a_retry_loop_and_later_ones_do_not() -> None:
    pending = PendingInvalidations()
    assert pending.add(keys=["a"]) is True
    assert pending.add(keys=["b"]) is False
    assert len(pending) == 2


def test_entries_are_coalesced() -> None:
    pending = PendingInvalidations()
    pending.add(keys=["a", "a"], tags=["t"])
    pending.add(keys=["a"], tags=["t"], namespaces=["search"])
    pending.add(namespaces=["search"])
    batch = pending.peek()
    assert batch is not None
    assert (batch.keys, batch.tags, batch.namespaces) == (("a",), ("t",), ("search",))


def test_done_keeps_what_was_queued_again_during_the_retry() -> None:
    pending = PendingInvalidations()
    pending.add(keys=["a", "b"])
    batch = pending.peek()
    assert batch is not None
    pending.add(keys=["b"])  # a newer commit's invalidation, while retrying
    pending.done(batch)
    again = pending.peek()
    assert again is not None
    assert again.keys == ("b",)


def test_the_loop_ends_on_an_empty_queue_and_the_next_add_starts_one() -> None:
    pending = PendingInvalidations()
    pending.add(keys=["a"])
    batch = pending.peek()
    assert batch is not None
    pending.done(batch)
    assert not pending.nonempty
    assert pending.peek() is None  # the loop ends here...
    assert pending.add(keys=["c"]) is True  # ...so a new one is asked for


def test_an_overflow_collapses_into_one_flush() -> None:
    pending = PendingInvalidations(limit=3)
    pending.add(keys=["a", "b", "c"])
    pending.add(keys=["d"])
    assert pending.overflows == 1
    batch = pending.peek()
    assert batch is not None
    assert batch.flush
    assert batch.keys == ()
    assert pending.covers("anything", ())
    pending.done(batch)
    assert len(pending) == 0


def test_covers_keys_tags_and_everything_under_a_bump() -> None:
    pending = PendingInvalidations()
    assert not pending.covers("a", ["t"])
    pending.add(keys=["a"], tags=["t"])
    assert pending.covers("a", ())
    assert pending.covers("b", ["u", "t"])
    assert not pending.covers("b", ["u"])
    pending.add(namespaces=["search"])
    assert pending.covers("b", ["u"])  # a pending bump: nothing is trusted


def test_unresolved_keys_cover_everything() -> None:
    pending = PendingInvalidations()
    pending.add(unresolved=[("fc:v1:user:1", "user")])
    assert pending.covers("fc:v1:team:2", ())


def test_abandon_reports_what_is_lost() -> None:
    pending = PendingInvalidations()
    pending.add(keys=["a"], tags=["t"])
    assert pending.abandon() == 2
    assert not pending.nonempty
    assert pending.add(keys=["a"]) is True


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        PendingInvalidations(limit=0)
