"""Configuration objects shared by the sync and async caches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class L1:
    """The in-process tier.

    With no server (``Cache()``), this is the only tier. ``max_bytes`` bounds
    the encoded size of what it holds. Values are returned by reference, as
    ``functools.lru_cache`` does: treat cached objects as read-only.
    """

    max_entries: int = 10_000
    max_bytes: int | None = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError("L1.max_entries must be at least 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError("L1.max_bytes must be at least 1 or None")
