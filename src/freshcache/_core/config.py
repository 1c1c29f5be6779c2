"""Configuration objects shared by the sync and async caches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class L1:
    """The in-process tier.

    With no server (``Cache()``), this is the only tier. Over Redis, its
    entries live at most ``ttl`` seconds (and never past the value's own
    freshness), and 1 s while the invalidation bus is down. ``max_bytes``
    bounds the encoded size of what it holds.

    By default a hit returns the cached object itself, as
    ``functools.lru_cache`` does (fast; treat cached objects as read-only:
    a caller's mutation would be seen by the next caller). ``copy=True``
    keeps the encoded bytes instead and decodes a fresh copy on every hit.
    """

    max_entries: int = 10_000
    max_bytes: int | None = 64 * 1024 * 1024
    ttl: float | None = 30.0
    copy: bool = False

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError("L1.max_entries must be at least 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError("L1.max_bytes must be at least 1 or None")
        if self.ttl is not None and not self.ttl > 0:
            raise ValueError("L1.ttl must be a positive number of seconds or None")
