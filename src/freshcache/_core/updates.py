"""Read-modify-write decisions: ``add``, ``incr`` and ``touch``.

The engine reads a key, asks one of these what to write, and writes it only
if the key still holds what it read (a compare-and-set in Redis, retried when
another write came between): so an ``add`` never overwrites, and concurrent
``incr`` calls never lose an increment, across every process. What to write
is decided here, from the fresh entry read (or ``MISS``) and the time.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from freshcache._core.entry import Entry
from freshcache._core.freshness import Lifetime
from freshcache._core.sentinels import Miss

MAX_SWAPS = 100
"""Compare-and-set attempts before a read-modify-write gives up (raises): a
key rewritten between every read and write a hundred times in a row."""


class Change(NamedTuple):
    """What a read-modify-write stores: ``value`` for ``lifetime`` with
    ``tags``; ``remove`` instead deletes the key."""

    value: Any = None
    lifetime: Lifetime = Lifetime(None)
    tags: tuple[str, ...] = ()
    remove: bool = False


def remaining(entry: Entry, now: float) -> Lifetime:
    """The lifetime an entry has left: the same soft expiry and stale window
    end, counted from ``now`` (a rewrite that keeps its expiry)."""
    if math.isinf(entry.fresh_until):
        return Lifetime(None)
    soft = max(entry.fresh_until - now, 0.001)
    stale = entry.stale_until - entry.fresh_until
    return Lifetime(soft, stale if math.isfinite(stale) and stale > 0 else 0.0)


def added(current: Entry | Miss, change: Change) -> Change | None:
    """``add``: store only where no fresh value is."""
    return change if not isinstance(current, Entry) else None


def incremented(current: Entry | Miss, delta: int, now: float) -> Change:
    """``incr``: the value plus ``delta``, with the expiry and tags it had.

    Raises ``KeyError`` when no fresh value is cached, ``TypeError`` when the
    value is not an ``int`` (a ``bool`` is not a counter)."""
    if not isinstance(current, Entry):
        raise KeyError("no fresh value is cached under the key")
    value = current.value
    if type(value) is bool or not isinstance(value, int):
        raise TypeError(f"cannot increment a cached {type(value).__name__}")
    if type(delta) is bool or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    return Change(value + delta, remaining(current, now), current.tags)


def touched(current: Entry | Miss, lifetime: Lifetime) -> Change | None:
    """``touch``: the same value and tags under a new lifetime; nothing when
    no fresh value is cached."""
    if not isinstance(current, Entry):
        return None
    return Change(current.value, lifetime, current.tags)
