"""Is an entry fresh or stale, should it refresh early, and TTL jitter.

Pure functions of time and an injected random source.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from freshcache._core.entry import NO_SOFT_EXPIRY, Entry


class Lifetime(NamedTuple):
    """How long a loaded value lives: ``soft`` TTL (None: never stale), the
    ``stale`` window after it, and ``negative``: the TTL for a loader result
    of ``None`` ("not found"), when set."""

    soft: float | None
    stale: float = 0.0
    negative: float | None = None


def lifetimes(
    now: float, ttl: float | None, stale_ttl: float
) -> tuple[float, float | None]:
    """Return ``(fresh_until, hard_ttl)`` for a value written now.

    ``ttl`` is the soft TTL (``None``: never stale); the stale window is added
    on top of it to give the store's hard expiry.
    """
    if ttl is None:
        return NO_SOFT_EXPIRY, None
    return now + ttl, ttl + stale_ttl


class RandomSource(Protocol):
    """Where randomness comes from (``random.Random`` fits); injected for tests."""

    def random(self) -> float: ...


def refresh_early(
    entry: Entry, now: float, rng: RandomSource, beta: float = 1.0
) -> bool:
    """XFetch (Vattani et al., VLDB 2015): recompute a fresh entry early when
    ``now - delta * beta * ln(random()) >= fresh_until``.

    ``delta`` is how long the value took to compute, so slow values start
    refreshing earlier; ``beta`` > 1 favours earlier refreshes, 0 disables
    them. The chance grows as expiry nears, so concurrent readers rarely
    pick the same moment.
    """
    if beta <= 0 or entry.delta <= 0 or math.isinf(entry.fresh_until):
        return False
    draw = 1.0 - rng.random()  # (0, 1]: log is defined
    return now - entry.delta * beta * math.log(draw) >= entry.fresh_until


EARLY_ODDS = 1e-3  # below this chance per read, a fast path skips the draw


def early_refresh_from(entry: Entry, beta: float = 1.0) -> float:
    """When ``refresh_early`` starts to fire with a chance of at least
    ``EARLY_ODDS`` per read: ``fresh_until - delta * beta * ln(1 / EARLY_ODDS)``.

    A hit path compares the time with this instead of drawing a random
    number on every read; from it on, reads roll the dice as usual.
    """
    if beta <= 0 or entry.delta <= 0 or math.isinf(entry.fresh_until):
        return entry.fresh_until
    return entry.fresh_until - entry.delta * beta * math.log(1 / EARLY_ODDS)


def jitter_ttl(ttl: float, jitter: float, rng: RandomSource) -> float:
    """``ttl`` shortened by up to ``jitter`` (a fraction, 0 to 1), so that keys
    written together do not expire together; never longer than ``ttl``."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter is a fraction in [0, 1)")
    return ttl * (1.0 - jitter * rng.random())
