"""Sentinels and small shared types."""

from __future__ import annotations

import enum
import math
from datetime import timedelta
from typing import Any, Final, Literal, TypeAlias


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
MAX_TIMEOUT: Final = 3600.0
"""The longest deadline, wait or pause (seconds) an option may ask for."""
MAX_CONNECTIONS: Final = 1 << 16
"""The most connections a pool may be sized to."""


def ttl_seconds(ttl: TTL, *, name: str = "ttl") -> float | None:
    """Validate a TTL and return it in seconds (``None``: no expiry).

    Zero, negative, NaN, infinite and absurdly large TTLs, and booleans
    (``True`` is not one second), are rejected with ``ValueError``; other
    types (a str) with ``TypeError``.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise ValueError(f"{name} must be a number of seconds, not a bool ({ttl!r})")
    if not isinstance(ttl, int | float | timedelta):
        raise TypeError(
            f"{name} must be int, float, timedelta or None, not {type(ttl).__name__}"
        )
    try:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    except OverflowError:  # an int past float's range
        raise ValueError(f"{name} is longer than ten years") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {ttl!r}")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(f"{name} is longer than ten years: {ttl!r}")
    return seconds


def stale_seconds(stale_ttl: TTL) -> float:
    """Validate a stale window and return it in seconds (0: none)."""
    if not isinstance(stale_ttl, bool) and stale_ttl in (0, timedelta(0)):
        return 0.0
    seconds = ttl_seconds(stale_ttl, name="stale_ttl")
    if seconds is None:
        raise ValueError("stale_ttl must be a number of seconds (0: no stale window)")
    return seconds


def check_number(
    value: object,
    name: str,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """``value`` when it is a number in ``[low, high]`` (``low_open`` /
    ``high_open``: that end excluded); ``integer``: an ``int`` too.

    A bool, NaN, a value out of range and (for ``integer``) a float raise
    ``ValueError``; a value that is no number at all (a str, None) raises
    ``TypeError``. Infinity is refused everywhere (no size or time here
    means "forever"; ``None`` does, where it is allowed).
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not a bool ({value!r})")
    if integer and isinstance(value, float):
        raise ValueError(f"{name} must be an int, not a float ({value!r})")
    if not isinstance(value, int | float):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        number = math.inf
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(
            f"{name} must be in {left}{low:g}, {high:g}{right}, not {value!r}"
        )
    return value
