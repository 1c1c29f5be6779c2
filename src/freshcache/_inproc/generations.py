"""Did an invalidation happen since I looked? Generation counters for the L1.

A reader takes a ``snapshot`` of a key's generation *before* it reads the
next tier (or runs the loader), and stores into L1 only through
``store_if_unchanged``. An invalidation bumps the generation and removes the
L1 entry through ``invalidate``, under the same lock, so the check and the
store are atomic with respect to it: an invalidation that arrives while a
read is in flight is never undone (no stale fill in L1: docs/coherence.md, C1).

Keys hash into a fixed array of counters (a collision only makes a reader
skip an L1 store it could have made). Tag invalidations, namespace bumps and
flushes bump one epoch that every snapshot includes: rarer events, handled
conservatively.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import NewType

Snapshot = NewType("Snapshot", tuple[int, int])


class Generations:
    __slots__ = ("_counters", "_epoch", "_lock", "_mask")

    def __init__(self, slots: int = 4096) -> None:
        if slots < 1 or slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._counters = [0] * slots
        self._mask = slots - 1
        self._epoch = 0
        self._lock = threading.Lock()

    def snapshot(self, key: str) -> Snapshot:
        return Snapshot((self._counters[hash(key) & self._mask], self._epoch))

    def store_if_unchanged(
        self, key: str, snapshot: Snapshot, store: Callable[[], None],
        *, fence: bool = False,
    ) -> bool:  # fmt: skip
        """Run ``store`` unless ``key`` was invalidated since ``snapshot``;
        ``fence``: then (stored or not, in the same step) bump the key's
        generation, so that no snapshot taken before can store after."""
        with self._lock:
            stored = self.snapshot(key) == snapshot
            if stored:
                store()
            if fence:
                self._counters[hash(key) & self._mask] += 1
            return stored

    def invalidate(self, keys: Iterable[str], remove: Callable[[], object]) -> None:
        """Bump the generations of ``keys``, then run ``remove`` (atomically)."""
        with self._lock:
            for key in keys:
                self._counters[hash(key) & self._mask] += 1
            remove()

    def after_fork(self) -> None:
        """In a forked child: a new lock (another thread of the parent may
        have held the old one at the fork, forever here), and every snapshot
        taken before the fork fails."""
        self._lock = threading.Lock()
        self._epoch += 1

    def invalidate_all(self, remove: Callable[[], object]) -> None:
        """Bump the epoch (every snapshot changes), then run ``remove``."""
        with self._lock:
            self._epoch += 1
            remove()
