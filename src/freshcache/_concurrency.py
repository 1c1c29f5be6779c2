"""The few primitives that truly differ between asyncio and threads, side by side.

Everything else in ``_async/`` is converted to ``_sync/`` by
``scripts/unasync.py``; these pairs are written by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
import time
from collections.abc import Callable, Coroutine
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


class AsyncWorker:
    """A background loop on a tracked task (never lost to garbage collection)."""

    def __init__(
        self, target: Callable[[], Coroutine[Any, Any, None]], name: str
    ) -> None:
        self._target = target
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._target(), name=self._name
            )

    async def join(self, wait: float) -> None:
        """Wait for the loop to notice it should stop; cancel it after ``wait``."""
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Worker:
    """The thread twin of ``AsyncWorker``: a daemon thread."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._target, name=self._name, daemon=True
            )
            self._thread.start()

    def join(self, wait: float) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)


class AsyncFlag:
    """A stop flag a loop can wait on."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, wait: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._event.wait()
        return self._event.is_set()


class Flag:
    """The thread twin of ``AsyncFlag``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, wait: float) -> bool:
        return self._event.wait(wait)
