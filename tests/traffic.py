"""Traffic for the failover and resharding tests: threads that repeat a step
until told to stop, and the check made once everything is quiet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from freshcache import MISS, Cache

QUIET_TIMEOUT = 30.0  # seconds for the queued invalidations to land


def loop(stop: threading.Event, body: Callable[[], None]) -> threading.Thread:
    """A daemon thread that runs ``body`` until ``stop`` is set."""

    def run() -> None:
        while not stop.is_set():
            body()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def settle(writer: Cache) -> int:
    """Wait for ``writer``'s queued invalidations to land: how many remain."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while writer.stats().pending_invalidations and time.monotonic() < deadline:
        time.sleep(0.1)
    return writer.stats().pending_invalidations


def stale_reads(
    caches: Mapping[str, Cache], keys: Sequence[str], db: Mapping[str, Any]
) -> list[tuple[str, str, Any, Any]]:
    """``(cache, key, seen, in the database)`` for each cached value that is
    not the database's."""
    return [
        (name, key, seen, db[key])
        for key in keys
        for name, cache in caches.items()
        if (seen := cache.get(key)) is not MISS and seen != db[key]
    ]
