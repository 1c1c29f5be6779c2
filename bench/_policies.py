"""The policies the hit-rate simulator replays a trace through.

Each is ``run(keys, capacity) -> hits``: one request per key, a miss stores
the key (capacity counted in entries, no TTL). freshcache runs through its
real ``MemoryStore`` (lock, hit counter and all), the peers through their
public API, one ``get`` per request and a ``set`` on a miss.
"""

from __future__ import annotations

import heapq
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from freshcache._core.sentinels import MISS
from freshcache._inproc.store import MemoryStore

Run = Callable[["array[int]", int], int]


def freshcache(policy: str) -> Run:
    def run(keys: array[int], capacity: int) -> int:
        store = MemoryStore(max_entries=capacity, max_bytes=None, policy=policy)
        get, put = store.get, store.set
        hits = 0
        for key in keys:
            if get(key) is MISS:  # type: ignore[arg-type]  # int keys: the dict does not mind
                put(key, True, ttl=None)  # type: ignore[arg-type]
            else:
                hits += 1
        return hits

    return run


def lru(keys: array[int], capacity: int) -> int:
    """The reference LRU (an ``OrderedDict``): 32.83 % on arc-oltp at 1,000."""
    cache: OrderedDict[int, None] = OrderedDict()
    touch, pop = cache.move_to_end, cache.popitem
    hits = 0
    for key in keys:
        if key in cache:
            touch(key)
            hits += 1
        else:
            cache[key] = None
            if len(cache) > capacity:
                pop(last=False)
    return hits


def mapping(factory: Callable[[int], Any]) -> Run:
    """A peer with a ``get(key)`` that counts as an access, and ``c[key] = v``."""

    def run(keys: array[int], capacity: int) -> int:
        cache = factory(capacity)
        get = cache.get
        hits = 0
        for key in keys:
            if get(key) is None:
                cache[key] = True
            else:
                hits += 1
        return hits

    return run


def theine(keys: array[int], capacity: int) -> int:
    """theine 2 (W-TinyLFU in Rust). ``nolock=True``: its write buffer is
    drained on every ``set``; reads reach the policy in batches of 16."""
    from theine import Cache

    cache: Any = Cache(capacity, nolock=True)
    get, put = cache.get, cache.set
    hits = 0
    for key in keys:
        if get(key)[1]:
            hits += 1
        else:
            put(key, True)
    cache.close()
    return hits


def belady(keys: array[int], capacity: int) -> int:
    """Belady's MIN (offline optimal): evict the key used furthest ahead."""
    n = len(keys)
    next_use = array("q", bytes(8 * n))
    seen: dict[int, int] = {}
    for i in range(n - 1, -1, -1):  # one backward pass
        key = keys[i]
        next_use[i] = seen.get(key, n)
        seen[key] = i
    cached: dict[int, int] = {}  # key -> its next use
    heap: list[tuple[int, int]] = []  # (-next use, key); stale tuples skipped
    hits = 0
    for i in range(n):
        key = keys[i]
        nxt = next_use[i]
        if key in cached:
            hits += 1
        elif len(cached) >= capacity:
            while True:
                far, victim = heapq.heappop(heap)
                if cached.get(victim) == -far:
                    del cached[victim]
                    break
        cached[key] = nxt
        heapq.heappush(heap, (-nxt, key))
    return hits


def all_policies() -> dict[str, Run]:
    """Name -> run, in table order (the first is freshcache's default)."""
    import cachebox
    import cachetools

    return {
        "freshcache S3-FIFO (default)": freshcache("s3fifo"),
        "freshcache SIEVE": freshcache("sieve"),
        "LRU": lru,
        "cachetools LRU": mapping(cachetools.LRUCache),
        "cachetools LFU": mapping(cachetools.LFUCache),
        "cachebox LRU": mapping(cachebox.LRUCache),
        "cachebox LFU": mapping(cachebox.LFUCache),
        "theine W-TinyLFU": theine,
        "Belady MIN": belady,
    }
