"""The few primitives that truly differ between asyncio and threads, side by side.

Everything else in ``_async/`` is converted to ``_sync/`` by
``scripts/unasync.py``; these pairs are written by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ClassVar, TypeAlias, TypeVar

T = TypeVar("T")

# What get_or_load takes: AsyncCache awaits a loader's awaitable result.
AsyncLoader: TypeAlias = Callable[[], T | Awaitable[T]]
Loader: TypeAlias = Callable[[], T]


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


def adeadline(seconds: float) -> asyncio.Timeout:
    """One deadline for a whole Redis call of several replies (a pipeline):
    redis.asyncio reads each reply under its own ``socket_timeout``, so an
    N-command pipeline could take N of them. On expiry the call is cancelled
    and ``TimeoutError`` raised. No reply is left half read on a pooled
    connection: redis-py's asyncio connection disconnects when a read or a
    send is interrupted by any exception, cancellation included
    (``Connection.read_response`` and ``send_packed_command``, and the
    pipeline's own reading loop, in redis-py 8.2)."""
    return asyncio.timeout(seconds)


def deadline(seconds: float) -> contextlib.nullcontext[None]:
    """The sync twin of ``adeadline``: nothing to do, since the sync
    connection's socket (``_sync/redis/deadline.py``) already gives all the
    replies to one send one deadline, and a pipeline is one send (one with
    Lua scripts first checks that they are loaded: a send of its own)."""
    return contextlib.nullcontext()


def alock() -> contextlib.AbstractContextManager[Any]:
    """A lock for state shared by an event loop's tasks: none is needed (they
    take turns at ``await`` only)."""
    return contextlib.nullcontext()


def lock() -> contextlib.AbstractContextManager[Any]:
    """The thread twin of ``alock``: a real lock."""
    return threading.Lock()


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
        self.name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._target(), name=self.name
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
        self.name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._target, name=self.name, daemon=True
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


class _LeaderGoneError(Exception):
    """The call a waiter joined was cancelled: the waiter tries again."""


class AsyncSingleFlight:
    """Concurrent misses of one key in this process share one load.

    Waiters get the leader's value or exception. A cancelled waiter leaves the
    leader alone; a cancelled leader makes its waiters start over. ``forget``
    detaches the calls in flight, so callers arriving after an invalidation
    never join a load that began before it. ``join=False``: a caller that
    cannot tell whether an invalidation it has not applied yet covers the
    call in flight starts its own, which later callers share.
    """

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[Any]] = {}

    async def run(
        self, key: str, work: Callable[[], Coroutine[Any, Any, T]], *, join: bool = True
    ) -> T:
        while join:
            call = self._calls.get(key)
            if call is None:
                break
            try:
                result: T = await asyncio.shield(call)
                return result
            except _LeaderGoneError:
                continue
        call = asyncio.get_running_loop().create_future()
        self._calls[key] = call
        try:
            value = await work()
        except asyncio.CancelledError:
            call.set_exception(_LeaderGoneError())
            raise
        except BaseException as exc:
            call.set_exception(exc)
            raise
        else:
            call.set_result(value)
            return value
        finally:
            if self._calls.get(key) is call:
                del self._calls[key]
            if call.done() and not call.cancelled():
                call.exception()  # retrieved: no "never retrieved" log

    def forget(self, keys: Iterable[str] | None = None) -> None:
        if keys is None:
            self._calls.clear()
        else:
            for key in keys:
                self._calls.pop(key, None)


class _Call:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        # Made by the first joiner, under the flight's lock: a call nobody
        # joins (every plain Redis hit, since reads share flights) costs no Event.
        self.done: threading.Event | None = None
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """The thread twin of ``AsyncSingleFlight``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def run(self, key: str, work: Callable[[], T], *, join: bool = True) -> T:
        with self._lock:
            call = self._calls.get(key) if join else None
            if call is None:
                call = self._calls[key] = _Call()
                done = None
            else:
                if call.done is None:
                    call.done = threading.Event()
                done = call.done
        if done is not None:  # a joiner
            done.wait()
            if call.error is not None:
                raise call.error
            result: T = call.value
            return result
        try:
            call.value = work()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:  # no joiner can find the call after this
                if self._calls.get(key) is call:
                    del self._calls[key]
                done = call.done
            if done is not None:
                done.set()
        value: T = call.value
        return value

    def forget(self, keys: Iterable[str] | None = None) -> None:
        with self._lock:
            if keys is None:
                self._calls.clear()
            else:
                for key in keys:
                    self._calls.pop(key, None)


class AsyncBackground:
    """Fire-and-forget work on tracked tasks, drained on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def submit(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        task = asyncio.get_running_loop().create_task(work())
        self._tasks.add(task)  # a strong reference: never lost to the GC
        task.add_done_callback(self._tasks.discard)

    async def drain(self, wait: float) -> None:
        """Let running work finish (cancel it after ``wait`` seconds)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=wait)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


class Background:
    """The thread twin of ``AsyncBackground``: a few daemon threads, started
    lazily (a hung refresh can neither hang ``close`` nor block exit)."""

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Callable[[], Any] | None] | None = None
        self._threads: list[threading.Thread] = []

    def submit(self, work: Callable[[], Any]) -> None:
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                self._threads = [
                    threading.Thread(
                        target=_run_jobs,
                        args=(self._queue,),
                        daemon=True,
                        name=f"freshcache-refresh-{i}",
                    )
                    for i in range(self._workers)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.put(work)

    def drain(self, wait: float) -> None:
        """Let submitted work finish, and give up on it after ``wait``
        seconds (a new pool starts if more work comes)."""
        with self._lock:
            jobs, threads = self._queue, self._threads
            self._queue, self._threads = None, []
        if jobs is None:
            return
        for _ in threads:
            jobs.put(None)
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _run_jobs(jobs: queue.SimpleQueue[Callable[[], Any] | None]) -> None:
    while (work := jobs.get()) is not None:
        with contextlib.suppress(Exception):  # each job counts its own errors
            work()


class AsyncLoopOwner:
    """Which event loop an ``AsyncCache``'s loop-bound parts belong to.

    Connections, tasks, futures and asyncio events belong to the loop that
    made them; used from another loop they fail ("Event loop is closed") or
    hang. ``check()`` runs first in every call that may touch them: from a
    new loop it runs the ``on_change`` resets (drop them; they are rebuilt
    there), unless the old loop is still running, which is two loops at
    once: a clear ``RuntimeError``. When a loop ends the way ``asyncio.run``
    ends one (every task cancelled), a guard task on it runs the ``on_end``
    closers, the last registered first (what was made last, and uses what
    was made before it, stops first), so its connections are closed while
    the loop can still close them, and after nothing can open new ones.

    After ``os.fork()`` (every ``os.register_at_fork`` child handler, and
    ``forked()`` for servers that fork otherwise) the ``on_fork`` steps run
    at once in the child (in-memory state only: new locks, an empty L1), and
    the resets on its next call: nothing the parent held is reused.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fresh = True  # nothing bound yet: no reset needed
        self._resets: list[Callable[[], None]] = []
        self._closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._fork_steps: list[Callable[[], None]] = []
        _owners.add(self)

    def on_change(self, reset: Callable[[], None]) -> None:
        self._resets.append(reset)

    def on_end(self, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._closers.append(close)

    def on_fork(self, step: Callable[[], None]) -> None:
        self._fork_steps.append(step)

    def check(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            self._moved()

    def _moved(self) -> None:
        loop = asyncio.get_running_loop()
        old = self._loop
        if old is not None and old.is_running():
            raise RuntimeError(
                "freshcache: this AsyncCache is in use by another event loop that "
                "is still running; a cache serves one loop at a time (make one "
                "cache per loop)"
            )
        if not self._fresh:
            for reset in self._resets:
                reset()
        self._loop, self._fresh = loop, False
        guard = loop.create_task(self._guard(loop), name="freshcache-loop-guard")
        _guards.add(guard)
        guard.add_done_callback(_guards.discard)

    async def _guard(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until cancelled; the loop is ending then (``asyncio.run``
        cancels every task at its end): close what belongs to it."""
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            if self._loop is loop:
                # Still bound meanwhile: a call from another task that is
                # ending too must not rebuild anything on this loop.
                for close in reversed(self._closers):
                    with contextlib.suppress(Exception):
                        await close()
                if self._loop is loop:
                    self._loop = None  # the next loop resets (``_fresh`` False)
            raise

    def forked(self) -> None:
        for step in self._fork_steps:
            step()
        self.renew()

    def renew(self) -> None:
        """Run the resets on the next ``check``, whatever loop it runs on."""
        self._loop, self._fresh = None, False


class LoopOwner:
    """The thread twin of ``AsyncLoopOwner``: there is no loop; after a fork,
    the ``on_fork`` steps run at once and the resets on the next call."""

    def __init__(self) -> None:
        self._stale = False
        self._lock = threading.Lock()
        self._resets: list[Callable[[], None]] = []
        self._fork_steps: list[Callable[[], None]] = []
        _owners.add(self)

    def on_change(self, reset: Callable[[], None]) -> None:
        self._resets.append(reset)

    def on_end(self, close: Callable[[], Any]) -> None:
        pass  # threads have no loop to end

    def on_fork(self, step: Callable[[], None]) -> None:
        self._fork_steps.append(step)

    def check(self) -> None:
        if self._stale:  # the child's first calls, from any of its threads
            with self._lock:
                if self._stale:  # no thread goes on before the resets ran
                    for reset in self._resets:
                        reset()
                    self._stale = False

    def forked(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it
        for step in self._fork_steps:
            step()
        self.renew()

    def renew(self) -> None:
        self._stale = True


_owners: weakref.WeakSet[AsyncLoopOwner | LoopOwner] = weakref.WeakSet()
_guards: set[asyncio.Task[None]] = set()  # strong references to guard tasks


def _after_fork_in_child() -> None:
    _guards.clear()  # the parent's tasks: never run here
    for owner in list(_owners):
        with contextlib.suppress(Exception):  # one cache must not spoil the rest
            owner.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncShield:
    """Work that runs to its end even if the caller is cancelled (the caller
    still gets its ``CancelledError``): an invalidation after a commit."""

    _running: ClassVar[set[asyncio.Task[Any]]] = set()  # strong references

    @staticmethod
    async def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        task = asyncio.get_running_loop().create_task(work())
        AsyncShield._running.add(task)
        task.add_done_callback(AsyncShield._running.discard)
        return await asyncio.shield(task)


class Shield:
    """The thread twin of ``AsyncShield``: threads are not cancelled."""

    @staticmethod
    def run(work: Callable[[], T]) -> T:
        return work()
