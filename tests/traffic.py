"""Traffic for the failover and resharding tests: threads that repeat a step
until told to stop, the history of what was read and invalidated (to count
reads staler than the bound), the check made once everything is quiet,
and a cache whose bus listens on a chosen node."""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from freshcache import MISS, Cache, CallableSink
from freshcache._core.streams import Write
from freshcache.errors import StoreError
from tests._sync.waiting import wait_for_count

if TYPE_CHECKING:
    from freshcache import WriteBehind

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


def subscribers(port: int, channel: str) -> int:
    """Subscribers of ``channel`` on the node at ``port`` (classic pub/sub:
    each node counts only its own connections)."""
    node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        reply = node.pubsub_numsub(channel)
    finally:
        node.close()
    return int(reply[0][1])


def listening_on(port: int, make: Callable[[], Cache], channel: str) -> Cache:
    """A cache with L1 whose bus listener is on the node at ``port`` (the
    listener starts on a random startup node: made again until it is)."""
    for _ in range(40):
        cache = make()
        cache.get("warm:up")  # starts the bus
        wait_for_count(cache, "bus_connect", 1)
        if subscribers(port, channel) == 1:
            return cache
        cache.close()
    raise AssertionError(f"no listener landed on {port} in 40 tries")


def caught_up(cache: Cache) -> None:
    """Until every invalidation that returned before this call has reached
    ``cache``'s L1: until a ping of its bus sent after this call has come back
    (its watermark passed the call), which by the bus's order means every
    earlier message was applied (docs/coherence.md, section 6a). Before
    that, its L1 may still serve such a value, within the staleness bound."""
    engine = cache.engine
    if engine.l1 is None:
        return
    since = engine.mono()
    deadline = time.monotonic() + QUIET_TIMEOUT
    while engine.bus.watermark <= since:
        if time.monotonic() > deadline:
            raise AssertionError("the bus's watermark never passed the quiet point")
        time.sleep(0.01)


def stale_reads(
    caches: Mapping[str, Cache], keys: Sequence[str], db: Mapping[str, Any]
) -> list[tuple[str, str, Any, Any]]:
    """``(cache, key, seen, in the database)`` for each cached value that is
    not the database's, once each cache has caught up (``caught_up``)."""
    for cache in caches.values():
        caught_up(cache)
    return [
        (name, key, seen, db[key])
        for key in keys
        for name, cache in caches.items()
        if (seen := cache.get(key)) is not MISS and seen != db[key]
    ]


@dataclass
class History:
    """What the writers' invalidations made current, and when (monotonic
    time, after ``invalidate`` returned True), and what each read returned
    and when it began: enough to count reads staler than a bound.

    A writer commits version ``v`` of a key (the database's counter), then
    invalidates; once that returned True, a read that begins more than the
    bound later must return ``v`` or newer."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _current: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    _reads: list[tuple[str, str, float, int]] = field(default_factory=list)

    def invalidated(self, key: str, version: int) -> None:
        """``version`` of ``key`` was committed and its invalidation returned
        True just now."""
        at = time.monotonic()
        with self._lock:
            self._current.setdefault(key, []).append((at, version))

    def read(self, reader: str, key: str, began: float, value: int) -> None:
        with self._lock:
            self._reads.append((reader, key, began, value))

    def staler(self, bounds: Mapping[str, float], after: float = -1.0) -> list[Any]:
        """``(reader, key, returned, newest version due, how long before the
        read began the first newer version's invalidation returned)`` for
        each read that began after ``after`` and returned a version older than
        one whose invalidation returned more than the reader's bound before
        it began."""
        due: dict[str, tuple[list[float], list[int]]] = {}
        for key, entries in self._current.items():
            entries.sort()
            newest, running = [], 0
            for _, version in entries:
                running = max(running, version)
                newest.append(running)
            due[key] = ([at for at, _ in entries], newest)
        found = []
        for reader, key, began, value in self._reads:
            if began <= after or key not in due:
                continue
            times, newest = due[key]
            i = bisect.bisect_left(times, began - bounds[reader])
            if i and newest[i - 1] > value:
                first = bisect.bisect_right(newest, value)  # newest grows
                late = round(began - times[first], 4)
                found.append((reader, key, value, newest[i - 1], late))
        return found

    def reads(self, after: float = -1.0) -> int:
        return sum(began > after for _, _, began, _ in self._reads)


class Table:
    """A write-behind queue's database: the highest version per key."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, object]] = {}
        self.lock = threading.Lock()

    def apply(self, writes: Sequence[Write]) -> None:
        with self.lock:
            for w in writes:
                if w.key not in self.rows or self.rows[w.key][0] < w.version:
                    self.rows[w.key] = (w.version, w.payload)


class Workload:
    """The traffic of the failover and resharding tests, over ``keys`` (whose
    database is ``db``, a counter per key):

    * two threads per reader cache: ``get_or_load`` of a random key;
    * two writer threads: commit (the counter + 1), then ``invalidate``;
    * one write-through thread: the commit inside ``write_through(key,
      reload=...)``;
    * per write-behind queue given, one thread putting new keys, and a
      worker applying them to a ``Table``.

    Every read and every invalidation that returned True (or write-through
    that ``landed``) goes into ``history``."""

    def __init__(
        self,
        keys: Sequence[str],
        *,
        readers: Mapping[str, Cache],
        writer: Cache,
        queues: Mapping[str, WriteBehind] | None = None,
    ) -> None:
        self.keys = list(keys)
        self.readers = dict(readers)
        self.writer = writer
        self.db = dict.fromkeys(self.keys, 0)
        self.history = History()
        self.read_errors: list[BaseException] = []
        self.invalidations = {True: 0, False: 0}
        self.written_through = {True: 0, False: 0}
        self.queues = dict(queues or {})
        self.tables = {name: Table() for name in self.queues}
        self.acked: dict[str, list[str]] = {name: [] for name in self.queues}
        self.refused = dict.fromkeys(self.queues, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers = [
            queue.worker(
                CallableSink(self.tables[name].apply), block=0.1, claim_idle=0.5
            )
            for name, queue in self.queues.items()
        ]
        self._numbers = iter(range(10**9))

    def commit(self, key: str) -> int:
        with self._lock:
            self.db[key] += 1
            return self.db[key]

    def _read(self, name: str, cache: Cache) -> Callable[[], None]:
        def body() -> None:
            key = random.choice(self.keys)
            began = time.monotonic()
            try:
                value = cache.get_or_load(key, lambda: self.db[key])
            except BaseException as exc:  # any error reaching a caller
                self.read_errors.append(exc)
            else:
                self.history.read(name, key, began, value)

        return body

    def _write(self) -> None:
        key = random.choice(self.keys)
        version = self.commit(key)
        done = self.writer.invalidate(key)
        self.invalidations[done] += 1
        if done:
            self.history.invalidated(key, version)
        time.sleep(0.002)

    def _write_through(self) -> None:
        key = random.choice(self.keys)
        with self.writer.write_through(key, reload=lambda: self.db[key]) as block:
            version = self.commit(key)
        self.written_through[block.landed] += 1
        if block.landed:
            self.history.invalidated(key, version)
        time.sleep(0.002)

    def _put(self, name: str) -> Callable[[], None]:
        def body() -> None:
            key = f"wb:{name}:{next(self._numbers)}"
            try:
                self.queues[name].put(key, 1)
            except StoreError:
                self.refused[name] += 1
                time.sleep(0.01)
                return
            self.acked[name].append(key)
            time.sleep(0.002)

        return body

    def start(self) -> None:
        steps = [
            self._read(name, cache)
            for name, cache in self.readers.items()
            for _ in range(2)
        ]
        steps += [self._write, self._write, self._write_through]
        steps += [self._put(name) for name in self.queues]
        self._threads = [loop(self._stop, step) for step in steps]
        self._threads += [
            threading.Thread(target=worker.run, daemon=True) for worker in self._workers
        ]
        for thread in self._threads[len(steps) :]:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.stop()
        for thread in self._threads:
            thread.join(10)
        for worker in self._workers:
            worker.close()

    def drain(self) -> dict[str, list[str]]:
        """Apply what the queues still hold: per queue, the acknowledged
        writes missing from its table (lost)."""
        for name, queue in self.queues.items():
            drain = queue.worker(
                CallableSink(self.tables[name].apply), block=0, claim_idle=0.01
            )
            try:
                drain.run(until_idle=True)
            finally:
                drain.close()
        return {
            name: [k for k in self.acked[name] if k not in self.tables[name].rows]
            for name in self.queues
        }

    def staler(self, after: float = -1.0) -> list[Any]:
        """Reads staler than their cache's bound (``max_staleness``): with L1,
        what L1 may serve; without, what a read that joined another
        caller's read in flight (single flight) may return."""
        bounds = {name: cache.engine.bound for name, cache in self.readers.items()}
        return self.history.staler(bounds, after)

    def summary(self, lost: Mapping[str, Sequence[str]], after: float = -1.0) -> str:
        """What the traffic did, for the test's report: caller errors,
        invalidations and write-throughs by outcome, reads staler than the
        bound (after ``after``, and in all), and per write-behind queue the
        acknowledged and ``lost`` writes."""
        parts = [
            f"reads {len(self.read_errors)} caller errors",
            f"invalidations {self.invalidations[True]} True, "
            f"{self.invalidations[False]} False (queued)",
            f"write-through {self.written_through[True]} landed, "
            f"{self.written_through[False]} queued",
            f"reads staler than the bound {len(self.staler(after))} of "
            f"{self.history.reads(after)}"
            + (
                f" after {after:.2f} ({len(self.staler())} of "
                f"{self.history.reads()} in all)"
                if after >= 0
                else ""
            ),
        ]
        parts += [
            f"write-behind {name}: {len(self.acked[name])} acknowledged, "
            f"{len(lost[name])} lost, {self.refused[name]} refused"
            for name in self.queues
        ]
        return "; ".join(parts)
