"""Readers that keep a cache busy during a fault: a few keys that expire
every 100 ms, read in a loop, so misses and lease acquisitions keep coming.
Each read's start and duration is kept, and every error."""

from __future__ import annotations

import time

from freshcache import AsyncCache
from freshcache._concurrency import AsyncFlag, asleep


class Readers:
    def __init__(self, cache: AsyncCache, *, keys: int, load: float) -> None:
        self.cache = cache
        self.keys = keys
        self.load = load  # seconds per load
        self.stop = AsyncFlag()
        self.reads: list[tuple[float, float]] = []  # (started, seconds)
        self.errors: list[BaseException] = []

    async def read(self) -> None:
        async def load() -> str:
            await asleep(self.load)
            return "row"

        i = 0
        while not self.stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                value = await self.cache.get_or_load(
                    f"k:{i % self.keys}", load, ttl=0.1
                )
                assert value == "row"
            except BaseException as exc:
                self.errors.append(exc)
            self.reads.append((started, time.monotonic() - started))

    def worst(self, since: float, until: float = float("inf")) -> float:
        """The longest read that started in [since, until)."""
        return max(took for at, took in self.reads if since <= at < until)
