"""The few primitives that truly differ between asyncio and threads, side by side.

Everything else in ``_async/`` is converted to ``_sync/`` by
``scripts/unasync.py``; these pairs are written by hand.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import time
from collections.abc import Callable
from typing import Any


async def ainvoke(loader: Callable[[], Any]) -> Any:
    """Call a loader that may be a plain function or return an awaitable."""
    result = loader()
    if inspect.isawaitable(result):
        result = await result
    return result


def invoke(loader: Callable[[], Any]) -> Any:
    """Call a plain loader (the sync twin of ``ainvoke``)."""
    result = loader()
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # do not leak a "never awaited" warning
        raise TypeError("the sync Cache got an awaitable from a loader; use AsyncCache")
    return result


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def acheck_function(func: Callable[..., Any], where: str) -> None:
    """The async cache decorates ``async def`` functions only."""
    if not inspect.iscoroutinefunction(func):
        raise TypeError(
            f"{where} needs an async def function; use Cache for plain ones"
        )


def check_function(func: Callable[..., Any], where: str) -> None:
    """The sync cache decorates plain functions only."""
    if inspect.iscoroutinefunction(func):
        raise TypeError(f"{where} needs a plain function; use AsyncCache for async def")


class AsyncSlots:
    """At most ``size`` concurrent holders; waiting for a slot is bounded."""

    def __init__(self, size: int) -> None:
        self._semaphore = asyncio.Semaphore(size)

    async def acquire(self, wait: float) -> bool:
        """Take a slot, waiting at most ``wait`` seconds; False if none came."""
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free slot: no suspension
            return True
        try:
            async with asyncio.timeout(wait):
                await self._semaphore.acquire()
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        self._semaphore.release()


class Slots:
    """The thread twin of ``AsyncSlots``: a C-level queue of tokens (cheap)."""

    def __init__(self, size: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(size):
            self._tokens.put(None)

    def acquire(self, wait: float) -> bool:
        try:
            self._tokens.get(timeout=wait)
        except queue.Empty:
            return False
        return True

    def release(self) -> None:
        self._tokens.put(None)
