"""Sentinels and small shared types."""

from __future__ import annotations

import enum
import math
from datetime import timedelta
from typing import Final, Literal, TypeAlias


class _Miss(enum.Enum):
    MISS = "MISS"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISS"

    __str__ = __repr__


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"

    __str__ = __repr__


MISS: Final = _Miss.MISS
"""Returned on a cache miss. A cached ``None`` is a hit, never a miss."""
Miss: TypeAlias = Literal[_Miss.MISS]

UNSET: Final = _Unset.UNSET
"""An omitted option: use the cache's default."""
Unset: TypeAlias = Literal[_Unset.UNSET]

TTL: TypeAlias = int | float | timedelta | None
"""Seconds (int or float) or a timedelta; ``None`` means no expiry."""

MAX_TTL_SECONDS: Final = 10 * 365 * 24 * 3600.0


def ttl_seconds(ttl: TTL, *, name: str = "ttl") -> float | None:
    """Validate a TTL and return it in seconds (``None``: no expiry).

    Zero, negative, NaN, infinite and absurdly large TTLs are rejected with
    ``ValueError``; booleans are rejected with ``TypeError``.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float | timedelta):
        raise TypeError(f"{name} must be int, float, timedelta or None, not {ttl!r}")
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {ttl!r}")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(f"{name} is longer than ten years: {ttl!r}")
    return seconds
