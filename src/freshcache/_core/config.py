"""Configuration objects shared by the sync and async caches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from freshcache._core.sentinels import MAX_TTL_SECONDS, check_number

# The environment variable read when a cache is built without ``enabled=``.
ENABLED_VARIABLE: Final = "FRESHCACHE_ENABLED"
_ON: Final = frozenset({"1", "true", "yes", "on"})
_OFF: Final = frozenset({"0", "false", "no", "off"})


def resolve_enabled(enabled: bool | None, variable: str | None) -> bool:
    """Whether a cache is on: ``enabled`` when given, else the environment
    variable's value ``variable`` (None: not set), else on.

    The variable takes ``1/true/yes/on`` and ``0/false/no/off`` in any case,
    with surrounding spaces; set but empty counts as not set. Any other value
    raises ``ValueError``: a typo must not leave the cache on unnoticed.
    """
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True, False or None, not {enabled!r}")
        return enabled
    word = "" if variable is None else variable.strip().lower()
    if not word or word in _ON:
        return True
    if word in _OFF:
        return False
    raise ValueError(
        f"{ENABLED_VARIABLE}={variable!r} is neither on (1, true, yes, on) "
        "nor off (0, false, no, off)"
    )


@dataclass(frozen=True, slots=True)
class L1:
    """The in-process tier.

    With no server (``Cache()``), this is the only tier. Over Redis, its
    entries live at most ``ttl`` seconds (and never past the value's own
    freshness). ``max_bytes`` bounds the encoded size of what it holds.

    ``max_staleness`` (seconds, default 0.1) is the bound over Redis: an L1
    hit is served only while this process knows it has applied every
    invalidation that returned (in any process) more than ``max_staleness``
    ago; otherwise the read goes to Redis. The process learns it from pings
    it sends itself over the invalidation bus (docs/coherence.md). ``None``
    turns the bound off: L1 then serves until the bus delivers the
    invalidation, however late that is.

    ``serve_stale_when_down`` (seconds, default 0: off) lets L1 keep serving
    while the bus connection is down (refused or dropped), at most that long
    past the bound, counted as ``l1_stale_when_down``: a bounded degraded
    mode that spares the database the whole read load during a Redis outage.
    A Redis that hangs with its connections open is not "down" to the bus:
    L1 then refuses as usual once the bound has passed.

    By default a hit returns the cached object itself, as
    ``functools.lru_cache`` does (fast; treat cached objects as read-only:
    a caller's mutation would be seen by the next caller). ``copy=True``
    keeps the encoded bytes instead and decodes a fresh copy on every hit.
    """

    max_entries: int = 10_000
    max_bytes: int | None = 64 * 1024 * 1024
    ttl: float | None = 30.0
    copy: bool = False
    max_staleness: float | None = 0.1
    serve_stale_when_down: float = 0.0

    def __post_init__(self) -> None:
        check_number(self.max_entries, "L1.max_entries", low=1, integer=True)
        if self.max_bytes is not None:
            check_number(self.max_bytes, "L1.max_bytes", low=1, integer=True)
        if self.ttl is not None:
            check_number(self.ttl, "L1.ttl", low_open=True, high=MAX_TTL_SECONDS)
        if not isinstance(self.copy, bool):
            raise TypeError(
                f"L1.copy must be True or False, not {type(self.copy).__name__}"
            )
        if self.max_staleness is not None:
            check_number(self.max_staleness, "L1.max_staleness", low=0.005, high=60)
        check_number(self.serve_stale_when_down, "L1.serve_stale_when_down", high=3600)
