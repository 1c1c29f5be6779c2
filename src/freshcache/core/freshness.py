"""Is an entry fresh, stale-but-servable, or dead? Pure functions of time."""

from __future__ import annotations

import enum

from freshcache.core.entry import NO_SOFT_EXPIRY, Entry


class Freshness(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"  # past fresh_until, still inside the stale window


def freshness(entry: Entry, now: float) -> Freshness:
    """Classify an entry the store still holds (the store drops dead ones)."""
    return Freshness.FRESH if now < entry.fresh_until else Freshness.STALE


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
