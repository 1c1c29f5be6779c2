"""Helpers for testing code that uses freshcache.

``FakeClock`` is a ``Clock`` that moves only when told to: pass it as
``Cache(clock=...)`` and advance it instead of sleeping.

``freshcache.testing.contract`` holds freshcache's own cache contract as test
classes to subclass (``CacheContract``, ``AsyncCacheContract``), so that you
can run it against your configuration (docs/testing.md).

Why a package split in two: pytest is not a dependency of freshcache, and
``import freshcache.testing`` (for ``FakeClock``) must work where pytest is
not installed. The contract needs pytest (fixtures, ``pytest.raises``,
parametrize) at class-definition time, so it lives in its own module that
imports pytest, and only an explicit ``import freshcache.testing.contract``
pulls pytest in. This module imports nothing beyond the standard library.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that moves only when told to; for tests."""

    __slots__ = ("_mono", "_wall")

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._wall += seconds
        self._mono += seconds
