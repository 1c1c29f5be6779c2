"""The in-process (L1) store: bounded, per-entry TTL, adaptive S3-FIFO eviction.

Thread-safe and free of asyncio, so the sync and async APIs share it.

Expiry: an entry set at monotonic time ``t`` with ``ttl`` is expired from
``t + ttl`` on (``now >= expires_at``), the same boundary as
``core.freshness`` (fresh while ``now < fresh_until``).

Bounds: ``max_entries`` and ``max_bytes`` (bytes are what the caller charges
with ``size=``; the store never measures values). When a write overflows a
bound, every expired entry is reclaimed first (an expiry heap, popped only
under pressure), then the policy (``_inproc/eviction.py``) picks live victims.
A value larger than ``max_bytes`` is not stored, and
any older value of its key is dropped (a cache must not keep serving what the
caller just replaced); both count as one eviction of cause ``"too_large"``.

Eviction causes: ``"expired"``, ``"entries"`` (count bound), ``"bytes"`` (byte
bound), ``"too_large"``. ``on_evict(cause)`` is called once per eviction after
the lock is released; it is never called for ``delete`` of a live entry or for
``clear``. If it raises, the exception reaches the caller of the operation,
after the store is consistent.

Lock-free hits. ``get`` takes no lock on a hit. This is sound under the GIL
because:

1. ``dict.get`` with a ``str`` key is atomic: hashing and comparing ``str``
   run in C and never release the GIL, and every writer mutates the dict
   under the lock.
2. A node's ``key``, ``value``, ``expires_at`` and ``size`` never change once
   the node is in the dict: an overwrite publishes a new node, so a reader
   always sees a matching (value, expiry) pair.
3. A reader that got a node just before a writer removed it returns a value
   that was present and unexpired when it was looked up (the expiry check
   happens later, on a clock that never goes back), so the read linearizes
   before the removal. A read that starts after ``set``/``delete`` returned
   sees its effect.
4. The hit counter is one attribute update; racing with the policy can only
   cost it a little accuracy (a lost count), never correctness.
5. An expired hit takes the lock and removes the node only if the key still
   maps to that same node.

Free-threaded builds also keep dict and slot access atomic, but this argument
has only been checked under the GIL.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from freshcache._core.clock import SYSTEM_CLOCK, Clock, SystemClock
from freshcache._core.sentinels import MISS, Miss
from freshcache._inproc.eviction import POLICIES, Node

__all__ = ["EVICTION_CAUSES", "MemoryStore"]

_NEVER: Final = float("inf")  # expires_at of a no-TTL entry (checked by identity)

EVICTION_CAUSES: Final = ("expired", "entries", "bytes", "too_large")


class MemoryStore:
    """A thread-safe in-process store bounded by entries and by bytes.

    Values are kept by reference; ``None`` is a value like any other (a hit).
    ``get`` returns ``MISS`` for an absent or expired key. ``policy`` is
    ``"s3fifo"`` (the default) or ``"sieve"``.
    """

    __slots__ = (
        "_byte_limit",
        "_bytes",
        "_evictions",
        "_expiry",
        "_lock",
        "_map",
        "_max_entries",
        "_now",
        "_on_evict",
        "_policy",
        "_seq",
    )

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int | None = 64 * 1024 * 1024,
        clock: Clock = SYSTEM_CLOCK,
        on_evict: Callable[[str], None] | None = None,
        policy: str = "s3fifo",
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries!r}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1 or None, not {max_bytes!r}")
        if policy not in POLICIES:
            raise ValueError(
                f"policy must be one of {sorted(POLICIES)}, not {policy!r}"
            )
        self._max_entries = max_entries
        self._byte_limit: float = _NEVER if max_bytes is None else max_bytes
        # Skip a Python frame per read on the real clock.
        self._now: Callable[[], float] = (
            time.monotonic if type(clock) is SystemClock else clock.monotonic
        )
        self._on_evict = on_evict
        self._map: dict[str, Node] = {}
        self._bytes = 0
        self._evictions = dict.fromkeys(EVICTION_CAUSES, 0)
        self._lock = threading.Lock()
        self._policy = POLICIES[policy](max_entries)
        # (expires_at, stamp, key) of entries with a TTL; a tuple whose stamp
        # is not the current node's (removed or replaced) is skipped when
        # popped. Keys only: the heap keeps no removed value alive.
        self._expiry: list[tuple[float, int, str]] = []
        self._seq = itertools.count(1)  # 0: never pushed

    # -- reads (no lock on a hit; see the module docstring) --

    def get(self, key: str) -> Any | Miss:
        node = self._map.get(key)
        if node is None:
            return MISS
        exp = node.expires_at
        if exp is _NEVER or self._now() < exp:
            node.hits += 1  # the whole policy hit path
            return node.value
        return self._reclaim(key, node)

    def peek(self, key: str) -> tuple[Any, float | None] | Miss:
        """The value under ``key`` and the seconds until it expires (None:
        never), without counting a hit for the eviction policy (diagnostics:
        ``inspect``); ``MISS`` if absent or expired."""
        node = self._map.get(key)
        if node is None:
            return MISS
        exp = node.expires_at
        if exp is _NEVER:
            return node.value, None
        left = exp - self._now()
        return MISS if left <= 0 else (node.value, left)

    def get_many(self, keys: Sequence[str]) -> list[Any | Miss]:
        get = self.get
        return [get(key) for key in keys]

    def __len__(self) -> int:
        return len(self._map)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    @property
    def evictions(self) -> dict[str, int]:
        """Evictions so far by cause (a copy)."""
        with self._lock:
            return dict(self._evictions)

    # -- writes --

    def set(self, key: str, value: Any, *, ttl: float | None, size: int = 0) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: no expiry).

        ``size`` is the number of bytes charged to the byte bound. A ``ttl``
        that is not positive (or NaN) raises ``ValueError``.
        """
        if size < 0:
            raise ValueError(f"size must not be negative, not {size!r}")
        now = self._now()
        if ttl is None:
            expires_at = _NEVER
        elif ttl > 0:
            expires_at = now + ttl
        else:
            raise ValueError(f"ttl must be positive or None, not {ttl!r}")
        causes: list[str] | None = None
        with self._lock:
            old = self._map.get(key)
            if size > self._byte_limit:
                if old is not None:
                    self._unlink(old)
                self._evictions["too_large"] += 1
                causes = ["too_large"]
            else:
                node = Node(key, value, expires_at, size)
                self._map[key] = node  # publish a complete node
                if expires_at is not _NEVER:
                    self._push_expiry(node)
                if old is None:
                    self._policy.insert(node)
                    self._bytes += size
                else:
                    self._policy.replace(old, node)
                    self._bytes += size - old.size
                if len(self._map) > self._max_entries or self._bytes > self._byte_limit:
                    causes = self._evict(now, node)
        if causes and self._on_evict is not None:
            self._notify(causes)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether a live (unexpired) value was there.

        An expired entry is reclaimed as an ``"expired"`` eviction and
        reported as absent (as Redis does).
        """
        return self.delete_many((key,)) == 1

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; return how many held a live value."""
        now = self._now()
        live = expired = 0
        with self._lock:
            pop = self._map.pop
            for key in keys:
                node = pop(key, None)
                if node is None:
                    self._policy.forget(key)  # no ghost outlives a delete
                    continue
                self._policy.remove(node)
                self._bytes -= node.size
                if node.expires_at <= now:
                    expired += 1
                else:
                    live += 1
            self._evictions["expired"] += expired
        if expired and self._on_evict is not None:
            self._notify(["expired"] * expired)
        return live

    def delete_where(self, predicate: Callable[[Any], bool]) -> int:
        """Remove every entry whose value matches ``predicate``; return how many.

        O(entries), under the lock: for rare bulk invalidations (tags), not
        for the hot path. Not counted as evictions.
        """
        with self._lock:
            doomed = [node for node in self._map.values() if predicate(node.value)]
            for node in doomed:
                self._unlink(node)
        return len(doomed)

    def after_fork(self) -> None:
        """In a forked child: a new lock (the old one may be held forever by
        a thread that only the parent has), then empty."""
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Drop everything (not counted as evictions)."""
        with self._lock:
            self._map.clear()
            self._policy.clear()
            self._expiry.clear()
            self._bytes = 0

    # -- internals (the lock is held in every ``_*`` method but ``_notify``) --

    def _reclaim(self, key: str, node: Node) -> Miss:
        """Remove an entry ``get`` found expired, unless it was replaced."""
        with self._lock:
            current = self._map.get(key) is node
            if current:
                self._unlink(node)
                self._evictions["expired"] += 1
        if current and self._on_evict is not None:
            self._on_evict("expired")
        return MISS

    def _unlink(self, node: Node) -> None:
        del self._map[node.key]
        self._policy.remove(node)
        self._bytes -= node.size

    def _push_expiry(self, node: Node) -> None:
        heap = self._expiry
        if len(heap) > 2 * len(self._map) + 64:  # mostly stale: rebuild, O(1) amortized
            heap[:] = [
                (n.expires_at, n.stamp, n.key)
                for n in self._map.values()
                if n.expires_at is not _NEVER and n is not node
            ]
            heapq.heapify(heap)
        node.stamp = stamp = next(self._seq)
        heapq.heappush(heap, (node.expires_at, stamp, node.key))

    def _reclaim_expired(self, now: float, causes: list[str]) -> None:
        """Remove every expired entry (each entry is pushed once per set)."""
        heap = self._expiry
        current = self._map.get
        while heap and heap[0][0] <= now:
            _, stamp, key = heapq.heappop(heap)
            node = current(key)
            if node is not None and node.stamp == stamp:
                self._unlink(node)
                causes.append("expired")
        self._evictions["expired"] += len(causes)

    def _evict(self, now: float, protect: Node) -> list[str]:
        """Reclaim expired entries, then evict live ones until both bounds
        hold again; return the causes."""
        causes: list[str] = []
        self._reclaim_expired(now, causes)
        evictions = self._evictions
        policy = self._policy
        while True:
            n = len(self._map)
            if n > self._max_entries:
                cause = "entries"
            elif self._bytes > self._byte_limit:
                cause = "bytes"
            else:
                return causes
            # Without racing hits, SIEVE stops within n + 1 steps and S3-FIFO
            # within 3n + 1 (counts saturate at 3): the cap never binds then.
            node, expired = policy.victim(now, protect, 4 * n + 4)
            del self._map[node.key]
            self._bytes -= node.size
            if expired:  # expired since the heap was looked at
                cause = "expired"
                policy.remove(node)
            else:
                policy.evicted(node)
            evictions[cause] += 1
            causes.append(cause)

    def _notify(self, causes: list[str]) -> None:
        on_evict = self._on_evict
        assert on_evict is not None
        for cause in causes:
            on_evict(cause)

    def _check_invariants(self) -> None:
        """Assert the map, the queue and the byte count agree (for tests)."""
        with self._lock:
            nodes = self._policy.nodes()
            assert len(nodes) == len(self._map), (len(nodes), len(self._map))
            for node in nodes:
                assert self._map[node.key] is node, node.key
                assert node.next.prev is node
                assert node.prev.next is node
            assert self._bytes == sum(node.size for node in nodes)
            assert not set(self._policy.ghosts()) & set(self._map)
            assert len(nodes) <= self._max_entries
            assert self._bytes <= self._byte_limit
