"""A cached value with the metadata that rides with it in the envelope."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TypeAlias

NO_SOFT_EXPIRY = float("inf")
NO_STALE_WINDOW = float("-inf")
ALWAYS = float("-inf")


class Entry(NamedTuple):
    """What a store keeps for one key.

    ``fresh_until`` is the wall-clock second after which the value is no
    longer fresh (``inf``: never); ``delta`` is how long the loader took to
    compute it, in seconds (used by probabilistic early refresh); ``tags``
    are the tags the value depends on (``invalidate_tags`` removes it);
    ``stale_until`` ends the stale-while-revalidate window (``-inf``: none);
    ``early_from`` is when reads start rolling XFetch's dice (set by the L1
    on fill, ``-inf`` elsewhere: every read rolls).
    """

    value: Any
    created_at: float
    fresh_until: float = NO_SOFT_EXPIRY
    delta: float = 0.0
    tags: tuple[str, ...] = ()
    stale_until: float = NO_STALE_WINDOW
    early_from: float = ALWAYS


Hit: TypeAlias = tuple[Entry, int]
"""A decoded entry and the size of its envelope in bytes."""


def px(ttl: float) -> int:
    """A TTL in whole milliseconds, sub-millisecond TTLs rounded up to 1 ms."""
    return max(1, math.ceil(ttl * 1000))
