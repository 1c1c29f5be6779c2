"""Waiting helpers shared by the coherence and race tests (never a fixed sleep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from freshcache import AsyncCache
from freshcache._concurrency import AsyncFlag, AsyncWorker

WAIT = 10.0  # seconds any step may take before the test fails


async def wait_for_count(cache: AsyncCache, name: str, at_least: int) -> None:
    """Until ``cache.stats().counts[name] >= at_least``."""
    flag = AsyncFlag()
    for _ in range(int(WAIT / 0.01)):
        if cache.stats().counts.get(name, 0) >= at_least:
            return
        await flag.wait(0.01)
    raise AssertionError(f"{name} never reached {at_least}: {cache.stats().counts}")


async def wait_until_listening(cache: AsyncCache) -> None:
    """Until the bus is subscribed and its first ping came back: from then on
    L1 may serve (the staleness bound's watermark)."""
    await wait_for_count(cache, "bus_connect", 1)
    await wait_until_current(cache)


async def wait_until_current(cache: AsyncCache) -> None:
    """Until this process's L1 may serve (its watermark is within the bound)."""
    engine = cache.engine
    flag = AsyncFlag()
    for _ in range(int(WAIT / 0.01)):
        if engine.mono() - engine.bus.watermark < engine.bound:
            return
        await flag.wait(0.01)
    raise AssertionError("the watermark never came within the bound")


async def wait_until(check: Any) -> None:
    """Until ``await check()`` is true."""
    flag = AsyncFlag()
    for _ in range(int(WAIT / 0.01)):
        if await check():
            return
        await flag.wait(0.01)
    raise AssertionError("condition never held")


async def run_in_background(work: Callable[[], Any]) -> AsyncWorker:
    """Start ``await work()`` on a task (a thread in the sync twin)."""

    async def target() -> None:
        await work()

    worker = AsyncWorker(target, name="test-background")
    worker.start()
    return worker
