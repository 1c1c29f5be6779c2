"""Invalidations that could not reach Redis, waiting to be retried.

Shared by both APIs (a lock, no I/O). Entries are coalesced: a key, tag or
namespace queued twice is retried once. Each entry remembers the sequence
number of its last ``add``; ``done(batch)`` removes only what the batch
covered, so an entry queued again while a retry was in flight (after a newer
commit) stays queued.

The queue is bounded: past ``limit`` entries it collapses into one
``flush`` (delete everything under the cache's head when Redis is back), which
is never stale, only costly.

While anything is pending, ``covers(full, tags)`` tells the tiers which Redis
values this process must not serve: the keys and tags queued, and every value
while a namespace bump, a flush or an unresolved key is queued.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)
class Batch:
    """What one retry must do; ``unresolved`` holds ``(base key, namespace)``
    pairs whose namespace version was unknown when they were queued."""

    seq: int
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    unresolved: tuple[tuple[str, str], ...] = ()
    flush: bool = False


class PendingInvalidations:
    def after_fork(self) -> None:
        """In a forked child: a new lock (another thread of the parent may
        have held the old one at the fork). What is queued stays queued: the
        child must not serve what it covers either."""
        self._lock = threading.Lock()

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._lock = threading.Lock()
        self._seq = 0
        self._keys: dict[str, int] = {}
        self._tags: dict[str, int] = {}
        self._namespaces: dict[str, int] = {}
        self._unresolved: dict[tuple[str, str], int] = {}
        self._flush = 0  # the seq of the last flush queued; 0: none
        self._worker = False  # a retry loop owns the queue
        self.nonempty = False  # read without the lock on the hot path
        self.landed = 0  # batches that landed so far (a read's before/after)
        self.overflows = 0

    def __len__(self) -> int:
        return (
            len(self._keys) + len(self._tags) + len(self._namespaces)
            + len(self._unresolved) + (1 if self._flush else 0)
        )  # fmt: skip

    def add(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        namespaces: Iterable[str] = (),
        unresolved: Iterable[tuple[str, str]] = (),
    ) -> bool:
        """Queue; True if the caller must start a retry loop (none is running)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            for mapping, items in (
                (self._keys, keys),
                (self._tags, tags),
                (self._namespaces, namespaces),
            ):
                for item in items:
                    mapping[item] = seq
            for pair in unresolved:
                self._unresolved[pair] = seq
            if len(self) > self._limit:
                self.overflows += 1
                self._clear()
                self._flush = seq
            self.nonempty = len(self) > 0
            start = self.nonempty and not self._worker
            self._worker = self._worker or start
            return start

    def peek(self) -> Batch | None:
        """Everything queued, or None once empty (the retry loop then ends:
        the next ``add`` asks for a new one)."""
        with self._lock:
            if not len(self):
                self._worker = False
                return None
            return Batch(
                self._seq,
                tuple(self._keys),
                tuple(self._tags),
                tuple(self._namespaces),
                tuple(self._unresolved),
                bool(self._flush),
            )

    def done(self, batch: Batch) -> None:
        """The batch landed: drop what it covered, unless queued again since."""
        with self._lock:
            _drop_up_to(self._keys, batch.seq)
            _drop_up_to(self._tags, batch.seq)
            _drop_up_to(self._namespaces, batch.seq)
            _drop_up_to(self._unresolved, batch.seq)
            if batch.flush and self._flush <= batch.seq:
                self._flush = 0
            self.landed += 1
            self.nonempty = len(self) > 0

    def collapse(self) -> None:
        """Replace everything queued with one flush of the prefix (an entry
        Redis refuses for good: a flush removes what it would have)."""
        with self._lock:
            self._seq += 1
            self._clear()
            self._flush = self._seq
            self.nonempty = True

    def abandon(self) -> int:
        """Drop everything (the cache is closing); how many entries were lost."""
        with self._lock:
            lost = len(self)
            self._clear()
            self.nonempty = False
            self._worker = False
            return lost

    def _clear(self) -> None:
        self._keys.clear()
        self._tags.clear()
        self._namespaces.clear()
        self._unresolved.clear()
        self._flush = 0

    def watch(self) -> int | None:
        """Take before reading Redis; give to ``landed_since``."""
        return self.landed if self.nonempty else None

    def landed_since(self, watched: int | None) -> bool:
        """Did a batch land since ``watch()`` (with something pending then)?
        A value read meanwhile may predate it, and ``covers`` no longer says."""
        return watched is not None and self.landed != watched

    def covers(self, full: str, tags: Iterable[str]) -> bool:
        """Might the Redis value of ``full`` (carrying ``tags``) be one a
        pending invalidation removes?"""
        if not self.nonempty:
            return False
        with self._lock:
            if self._flush or self._namespaces or self._unresolved:
                return True
            return full in self._keys or any(t in self._tags for t in tags)


def _drop_up_to(queued: dict[Any, int], seq: int) -> None:
    for item in [item for item, added in queued.items() if added <= seq]:
        del queued[item]
