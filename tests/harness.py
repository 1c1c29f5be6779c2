"""A randomized race harness and a Polaris-style consistency checker.

The checker (reliability.md §5.3): writers log ``(row, version, t_done)``
once the database commit *and* the cache invalidation have returned; readers
log ``(row, version_seen, t_start)``. Times come from ``time.monotonic()``,
which is CLOCK_MONOTONIC on Linux: one clock for every process of the host.
A read is *stale at bound B* when it saw version ``v`` although some version
``> v`` of its row had completed more than ``B`` before the read started.
Reads that saw a version no writer ever committed are *phantoms*.

The harness (``run``) spawns worker processes, each with several reader
threads and one writer thread over a table of ``(id, version)`` rows, reads
skewed toward a hot subset and a loader that is sometimes slow, so that fills
race invalidations. After the writers stop and everything has been quiet for
a while, every worker reads every row through its own cache (its L1
included), and the parent reads every row from Redis through a new cache:
any value older than the database is a *stale key*.

The same harness drives freshcache (``mode="freshcache"``) and a naive
cache-aside (``mode="naive"``: GET, on a miss SELECT then SET with a TTL;
writers commit then DEL), which must show stale keys: the proof that the
harness can fail.
"""

from __future__ import annotations

import bisect
import heapq
import json
import multiprocessing
import os
import queue
import random
import signal
import threading
import time
import traceback
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg
import redis

from freshcache import L1, MISS, Cache, StoreError

Mode = Literal["freshcache", "naive"]
BOUNDS = (0.0, 0.1, 0.5, 1.1, 5.0)  # seconds: the timescales reported (§5.3)
L1_CONFIG = L1(max_entries=10_000, ttl=30)


# -- logs -----------------------------------------------------------------------


class Log:
    """``(row, version, t)`` triples in flat arrays: compact and cheap to pickle."""

    __slots__ = ("rows", "times", "versions")

    def __init__(self) -> None:
        self.rows = array("q")
        self.versions = array("q")
        self.times = array("d")

    def add(self, row: int, version: int, t: float) -> None:
        self.rows.append(row)
        self.versions.append(version)
        self.times.append(t)

    def extend(self, other: Log) -> None:
        self.rows.extend(other.rows)
        self.versions.extend(other.versions)
        self.times.extend(other.times)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[int, int, float]]:
        return zip(self.rows, self.versions, self.times, strict=True)

    def __getstate__(self) -> tuple[bytes, bytes, bytes]:
        return self.rows.tobytes(), self.versions.tobytes(), self.times.tobytes()

    def __setstate__(self, state: tuple[bytes, bytes, bytes]) -> None:
        self.rows, self.versions, self.times = array("q"), array("q"), array("d")
        self.rows.frombytes(state[0])
        self.versions.frombytes(state[1])
        self.times.frombytes(state[2])

    @classmethod
    def merged(cls, logs: Iterable[Log]) -> Log:
        out = cls()
        for log in logs:
            out.extend(log)
        return out


# -- the checker ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckReport:
    """What the checker found in one set of logs."""

    reads: int
    writes: int
    stale: dict[float, int]  # bound (seconds) -> reads stale at that bound
    max_staleness: float  # seconds past the first newer completed version; 0: none
    phantoms: int  # reads of a version no write produced (nor the initial one)
    worst: list[tuple[float, int, int, float]] = field(default_factory=list)
    # the stalest reads: (staleness, row, version seen, t_start)

    def stale_at(self, bound: float) -> int:
        """Reads stale at ``bound`` seconds (any bound, not only ``BOUNDS``)."""
        if bound in self.stale:
            return self.stale[bound]
        raise KeyError(f"bound {bound} was not checked; pass it to check()")

    def nines(self, bound: float) -> float:
        """``1 - stale/reads`` at ``bound``: the Polaris figure."""
        return 1.0 - self.stale_at(bound) / self.reads if self.reads else 1.0

    def summary(self) -> str:
        stale = ", ".join(f"B={b:g}s: {n}" for b, n in sorted(self.stale.items()))
        return (
            f"reads {self.reads}, writes {self.writes}, stale reads [{stale}], "
            f"max staleness {self.max_staleness * 1000:.1f} ms, "
            f"phantoms {self.phantoms}"
        )


def staleness(writes: Log, reads: Log, initial: int = 0) -> tuple[list[float], int]:
    """Each read's staleness (seconds; <= 0: fresh) and the phantom count.

    The staleness of a read of version ``v`` of a row is ``t_start`` minus
    the earliest ``t_done`` of any version ``> v`` of that row: how long the
    row had had a newer completed version when the read began.
    """
    per_row: dict[int, list[tuple[int, float]]] = {}
    for row, version, t_done in writes:
        per_row.setdefault(row, []).append((version, t_done))
    index: dict[int, tuple[list[int], list[float]]] = {}
    for row, entries in per_row.items():
        entries.sort()
        versions = [v for v, _ in entries]
        earliest = [t for _, t in entries]  # becomes a suffix minimum
        for i in range(len(earliest) - 2, -1, -1):
            earliest[i] = min(earliest[i], earliest[i + 1])
        index[row] = (versions, earliest)
    out: list[float] = []
    phantoms = 0
    for row, version, t_start in reads:
        versions, earliest = index.get(row, ([], []))
        if version < initial or version > (versions[-1] if versions else initial):
            phantoms += 1  # versions are consecutive: anything else was written
        j = bisect.bisect_right(versions, version)
        out.append(t_start - earliest[j] if j < len(versions) else -1.0)
    return out, phantoms


def check(
    writes: Log, reads: Log, bounds: Sequence[float] = BOUNDS, initial: int = 0
) -> CheckReport:
    """Count stale reads at every bound in ``bounds`` (reliability.md §5.3)."""
    ages, phantoms = staleness(writes, reads, initial)
    stalest = heapq.nlargest(
        5, ((a, r) for a, r in zip(ages, reads, strict=True) if a > 0)
    )
    return CheckReport(
        reads=len(reads),
        writes=len(writes),
        stale={b: sum(1 for age in ages if age > b) for b in bounds},
        max_staleness=max((age for age in ages if age > 0), default=0.0),
        phantoms=phantoms,
        worst=[(age, row, version, t) for age, (row, version, t) in stalest],
    )


# -- the database -----------------------------------------------------------------


class Table:
    """``(id, version)`` rows in a PostgreSQL table of their own."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []

    def _conn(self) -> psycopg.Connection[Any]:
        """This thread's connection (autocommit: every statement commits)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.dsn, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def create(self, rows: int) -> None:
        conn = self._conn()
        conn.execute(
            f"CREATE TABLE {self.name} (id int PRIMARY KEY, version bigint NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {self.name} SELECT g, 0 FROM generate_series(0, %s) g",
            (rows - 1,),
        )

    def drop(self) -> None:
        self._conn().execute(f"DROP TABLE IF EXISTS {self.name}")

    def version(self, row: int) -> int:
        found = (
            self._conn()
            .execute(f"SELECT version FROM {self.name} WHERE id = %s", (row,))
            .fetchone()
        )
        assert found is not None, f"row {row} is missing"
        return int(found[0])

    def versions(self) -> dict[int, int]:
        cursor = self._conn().execute(f"SELECT id, version FROM {self.name}")
        return {int(row): int(version) for row, version in cursor.fetchall()}

    def bump(self, row: int) -> int:
        """Commit the row's next version; return it."""
        found = (
            self._conn()
            .execute(
                f"UPDATE {self.name} SET version = version + 1 WHERE id = %s "
                "RETURNING version",
                (row,),
            )
            .fetchone()
        )
        assert found is not None, f"row {row} is missing"
        return int(found[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


@contextmanager
def row_table(dsn: str, rows: int) -> Iterator[Table]:
    """A uniquely named table of ``rows`` rows at version 0, dropped afterwards."""
    table = Table(dsn, f"harness_{uuid.uuid4().hex[:12]}")
    table.create(rows)
    try:
        yield table
    finally:
        table.drop()
        table.close()


# -- caches under test --------------------------------------------------------------


class Loader:
    """Reads a row from the database, then sometimes dawdles (widens the races)."""

    def __init__(
        self, table: Table, delay: tuple[float, float], share: float, seed: int
    ) -> None:
        self._table = table
        self._delay = delay
        self._share = share
        self._seed = seed
        self._local = threading.local()
        self.calls = 0

    def _rng(self) -> random.Random:
        rng: random.Random | None = getattr(self._local, "rng", None)
        if rng is None:
            rng = random.Random(f"{self._seed}:loader:{threading.get_ident()}")
            self._local.rng = rng
        return rng

    def settle(self) -> None:
        """No more dawdling: the races are over, the final reads need no help."""
        self._share = 0.0

    def __call__(self, row: int) -> dict[str, int]:
        self.calls += 1  # approximate under threads; only reported
        version = self._table.version(row)
        rng = self._rng()
        if rng.random() < self._share:
            time.sleep(rng.uniform(*self._delay))
        return {"id": row, "version": version}


class Client(Protocol):
    """One process's view of a cache: read a row's version, invalidate a row."""

    def read(self, row: int) -> int: ...
    def invalidate(self, row: int) -> bool: ...
    def landed(self) -> bool: ...
    def counts(self) -> dict[str, int]: ...
    def close(self) -> None: ...


class FreshClient:
    """freshcache: L1 over Redis, the decorator, ``invalidate`` after commit."""

    def __init__(
        self, url: str, prefix: str, loader: Loader, ttl: float, l1: L1 = L1_CONFIG
    ) -> None:
        self.cache = Cache(url, prefix=prefix, l1=l1)

        @self.cache.cached("row:{row_id}", ttl=ttl)
        def get_row(row_id: int) -> dict[str, int]:
            return loader(row_id)

        self._get_row = get_row

    def read(self, row: int) -> int:
        return self._get_row(row)["version"]

    def invalidate(self, row: int) -> bool:
        return self._get_row.invalidate(row)

    def landed(self) -> bool:
        """Every queued invalidation has reached Redis (and the bus)."""
        return self.cache.stats().pending_invalidations == 0

    def key(self, row: int) -> str:
        return self._get_row.key(row)

    def counts(self) -> dict[str, int]:
        stats = self.cache.stats()
        out = dict(stats.counts)
        out.update({f"error:{k}": v for k, v in stats.errors.items()})
        out["hit:l1"] = stats.l1.hits
        out["hit:redis"] = stats.redis.hits
        for tier, lookups in (("l1", stats.l1), ("redis", stats.redis)):
            out.update({f"bypass:{tier}:{r}": n for r, n in lookups.bypasses.items()})
        out["loads"] = stats.loads
        return out

    def close(self) -> None:
        self.cache.close()


class NaiveClient:
    """The seed's ``get_user``: GET; on a miss SELECT, then SET with a TTL; DEL."""

    def __init__(self, url: str, prefix: str, loader: Loader, ttl: float) -> None:
        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._loader = loader
        self._ttl = max(1, round(ttl))
        self._counts: Counter[str] = Counter()

    def key(self, row: int) -> str:
        return f"{self._prefix}:naive:row:{row}"

    def read(self, row: int) -> int:
        raw = self._redis.get(self.key(row))
        if raw is not None:
            return int(json.loads(raw)["version"])
        value = self._loader(row)
        self._redis.set(self.key(row), json.dumps(value), ex=self._ttl)
        return value["version"]

    def peek(self, row: int) -> int | None:
        """The version Redis holds for ``row``, without loading."""
        raw = self._redis.get(self.key(row))
        return None if raw is None else int(json.loads(raw)["version"])

    def invalidate(self, row: int) -> bool:
        self._redis.delete(self.key(row))
        return True

    def landed(self) -> bool:
        return True

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def close(self) -> None:
        self._redis.close()


def make_client(
    mode: Mode, url: str, prefix: str, loader: Loader, ttl: float,
    l1: L1 = L1_CONFIG,
) -> FreshClient | NaiveClient:  # fmt: skip
    if mode == "freshcache":
        return FreshClient(url, prefix, loader, ttl, l1)
    return NaiveClient(url, prefix, loader, ttl)


# -- reader and writer loops (usable in one process too) ----------------------------


@dataclass(frozen=True)
class Workload:
    """Which rows are touched, how often, and how slow the loader is."""

    rows: int = 200
    hot_rows: int = 10
    hot_share: float = 0.9  # share of reads and writes that go to the hot rows
    read_pause: tuple[float, float] = (0.0, 0.001)  # between two reads of a thread
    write_pause: tuple[float, float] = (0.0, 0.004)  # between two writes
    loader_delay: tuple[float, float] = (0.0, 0.005)  # after the SELECT
    slow_share: float = 0.5  # share of loads that sleep loader_delay
    ttl: float = 60.0

    def pick(self, rng: random.Random) -> int:
        if rng.random() < self.hot_share:
            return rng.randrange(self.hot_rows)
        return rng.randrange(self.hot_rows, self.rows)


def invalidate_reliably(
    client: Client, row: int, errors: Counter[str], *, give_up: float = 10.0
) -> None:
    """Invalidate. freshcache never raises for Redis here: when Redis could
    not take it, it is queued, and the write is complete (for the checker)
    only once the queue has drained, which this waits for."""
    deadline = time.monotonic() + give_up
    try:
        if client.invalidate(row):
            return
    except StoreError as exc:  # a caller error: the test fails on it
        errors[f"invalidate:{type(exc).__name__}"] += 1
        raise
    errors["invalidate:queued"] += 1
    while not client.landed():
        if time.monotonic() > deadline:
            raise TimeoutError(f"row {row}'s invalidation never landed")
        time.sleep(0.005)


def reader_loop(
    client: Client,
    work: Workload,
    rng: random.Random,
    stop: threading.Event,
    log: Log,
    errors: Counter[str],
) -> None:
    """Read random rows until ``stop``; log ``(row, version, t_start)``."""
    clock, pause = time.monotonic, work.read_pause
    while not stop.is_set():
        row = work.pick(rng)
        started = clock()
        try:
            version = client.read(row)
        except Exception as exc:  # counted and reported: the test fails on it
            errors[f"read:{type(exc).__name__}"] += 1
            continue
        log.add(row, version, started)
        if pause[1] > 0:
            time.sleep(rng.uniform(*pause))


def writer_loop(
    client: Client,
    table: Table,
    work: Workload,
    rng: random.Random,
    stop: threading.Event,
    log: Log,
    errors: Counter[str],
) -> None:
    """Commit a new version, invalidate, log ``(row, version, t_done)``."""
    while not stop.is_set():
        row = work.pick(rng)
        version = table.bump(row)
        invalidate_reliably(client, row, errors)
        log.add(row, version, time.monotonic())
        if work.write_pause[1] > 0:
            time.sleep(rng.uniform(*work.write_pause))


class StallProbe:
    """How long a thread of this process could not run when it should have.

    A thread sleeps ``tick`` seconds in a loop and records how late it woke.
    A bus thread suffers the same delays (CPU and GIL): on an overloaded host
    they, not the cache, decide whether an invalidation lands within 100 ms.
    """

    def __init__(self, stop: threading.Event, tick: float = 0.002) -> None:
        self._stop = stop
        self._tick = tick
        self.max_stall = 0.0
        self.stalls = 0  # wake-ups later than 20 ms
        self.thread = threading.Thread(target=self._run, name="stall-probe")

    def _run(self) -> None:
        clock, tick = time.monotonic, self._tick
        while not self._stop.is_set():
            started = clock()
            time.sleep(tick)
            late = clock() - started - tick
            if late > 0.02:
                self.stalls += 1
                self.max_stall = max(self.max_stall, late)


# -- worker processes ----------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    mode: Mode
    redis_url: str
    dsn: str
    table: str
    prefix: str
    seed: int
    work: Workload = Workload()
    processes: int = 3
    readers: int = 4
    duration: float = 20.0
    quiet: float = 1.5  # after the writers stop, before the final reads
    barrier_timeout: float = 120.0
    l1: L1 = L1_CONFIG
    hogs: int = 0  # busy-loop processes beside the workers (a loaded host)
    pause: float = 0.0  # SIGSTOP one worker at a time for this long, repeatedly


@dataclass
class WorkerResult:
    index: int
    reads: Log = field(default_factory=Log)
    writes: Log = field(default_factory=Log)
    stale_keys: list[tuple[int, int, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    failure: str | None = None
    max_stall: float = 0.0  # seconds, from the StallProbe
    stalls: int = 0
    cpu_seconds: float = 0.0


def worker_main(
    config: RunConfig, index: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """A spawned worker: set up, run, final check, report (never hangs others)."""
    try:
        result = _work(config, index, barrier)
    except BaseException:
        barrier.abort()
        results.put(WorkerResult(index, failure=traceback.format_exc()))
        return
    results.put(result)


def _work(config: RunConfig, index: int, barrier: Any) -> WorkerResult:
    work = config.work
    table = Table(config.dsn, config.table)
    loader = Loader(table, work.loader_delay, work.slow_share, config.seed + index)
    client = make_client(
        config.mode, config.redis_url, config.prefix, loader, work.ttl, config.l1
    )
    stop = threading.Event()
    errors: Counter[str] = Counter()
    reads = [Log() for _ in range(config.readers)]
    writes = Log()
    rng = random.Random(f"{config.seed}:{index}")
    threads = [
        threading.Thread(
            target=reader_loop,
            args=(client, work, random.Random(rng.random()), stop, log, errors),
            name=f"reader-{index}-{i}",
        )
        for i, log in enumerate(reads)
    ]
    threads.append(
        threading.Thread(
            target=writer_loop,
            args=(client, table, work, random.Random(rng.random()), stop, writes),
            kwargs={"errors": errors},
            name=f"writer-{index}",
        )
    )
    probe = StallProbe(stop)
    threads.append(probe.thread)
    try:
        client.read(0)  # connect everything (and start freshcache's bus)
        barrier.wait(config.barrier_timeout)  # everyone ready: go
        cpu = time.process_time()
        for thread in threads:
            thread.start()
        stop.wait(config.duration)
        stop.set()
        for thread in threads:
            thread.join()
        cpu = time.process_time() - cpu
        barrier.wait(config.barrier_timeout)  # every writer has stopped
        time.sleep(config.quiet)
        loader.settle()
        truth = table.versions()
        stale = [
            (row, seen, truth[row])
            for row in range(work.rows)
            if (seen := client.read(row)) < truth[row]
        ]
        barrier.wait(config.barrier_timeout)  # every final read done
        return WorkerResult(
            index,
            reads=Log.merged(reads),
            writes=writes,
            stale_keys=stale,
            counts=client.counts(),
            errors=dict(errors),
            max_stall=probe.max_stall,
            stalls=probe.stalls,
            cpu_seconds=cpu,
        )
    finally:
        stop.set()
        client.close()
        table.close()


@dataclass
class RunReport:
    """Everything one harness run found."""

    mode: Mode
    seed: int
    check: CheckReport
    own_writes: CheckReport  # per process, against its own writes only (C3)
    per_process: dict[int, CheckReport]  # each process's reads, every write
    stale_keys_l2: list[tuple[int, int, int]]  # (row, cached, database), parent
    stale_keys_loaded: list[tuple[int, int, int]]  # through a new cache, parent
    stale_keys_workers: dict[int, list[tuple[int, int, int]]]  # per process
    counts: dict[str, int]
    errors: dict[str, int]
    elapsed: float
    max_stall: float  # the longest a worker thread waited past its wake-up
    stalls: int  # wake-ups more than 20 ms late, all workers
    cpu_seconds: float  # the workers' CPU time during the run
    duration: float

    @property
    def stale_keys(self) -> int:
        """Distinct rows some tier still held stale once everything was quiet."""
        rows = {r for r, _, _ in self.stale_keys_l2}
        rows |= {r for r, _, _ in self.stale_keys_loaded}
        for found in self.stale_keys_workers.values():
            rows |= {r for r, _, _ in found}
        return len(rows)

    def summary(self) -> str:
        per_worker = {i: len(k) for i, k in sorted(self.stale_keys_workers.items())}
        wanted = (
            "invalidations_sent",
            "invalidations_received",
            "bus_connect",
            "l1_flush:disconnect",
            "lease_busy",
            "fill_skipped:lease_lost",
            "l1_fill_skipped",
            "loads",
        )
        counts = {k: self.counts[k] for k in wanted if k in self.counts}
        errors = {k: v for k, v in self.counts.items() if k.startswith("error:")}
        stale = {i: r.stale for i, r in sorted(self.per_process.items())}
        worst = [
            f"row {row} v{version} {age * 1000:.1f} ms"
            for age, row, version, _ in self.check.worst
        ]
        return "\n".join(
            [
                f"[{self.mode}] seed {self.seed}, {self.elapsed:.1f} s",
                f"  {self.check.summary()}",
                f"  stalest reads {worst}; per process {stale}",
                f"  C3 (reads vs own process's writes): {self.own_writes.summary()}",
                f"  stale keys: {self.stale_keys} (L2 {len(self.stale_keys_l2)}, "
                f"new cache {len(self.stale_keys_loaded)}, "
                f"per process {per_worker})",
                f"  counts {counts}",
                f"  errors {errors} {self.errors}",
                f"  host: workers used {self.cpu_seconds / self.duration:.2f} CPUs "
                f"of {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; "
                f"{self.stalls} thread wake-ups over 20 ms late, "
                f"longest {self.max_stall * 1000:.0f} ms",
            ]
        )


def run(config: RunConfig) -> RunReport:
    """Run the workers, then the checks; the table must exist already."""
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(config.processes)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=worker_main,
            args=(config, i, barrier, results),
            name=f"harness-{config.mode}-{i}",
        )
        for i in range(config.processes)
    ]
    for process in processes:
        process.start()
    hogs = [
        ctx.Process(target=_hog, name=f"harness-hog-{i}", daemon=True)
        for i in range(config.hogs)
    ]
    for hog in hogs:
        hog.start()
    stop_pausing = threading.Event()
    pauser = threading.Thread(
        target=_pause_workers,
        args=(processes, config.pause, stop_pausing),
        name="harness-pauser",
        daemon=True,
    )
    if config.pause:
        pauser.start()
    collected: dict[int, WorkerResult] = {}
    deadline = time.monotonic() + config.duration + config.barrier_timeout
    try:
        while len(collected) < config.processes:
            try:
                result: WorkerResult = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"harness workers died: {dead}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError("harness workers did not report") from None
                continue
            collected[result.index] = result
    finally:
        stop_pausing.set()
        if pauser.is_alive():
            pauser.join()
        for hog in hogs:
            hog.kill()
            hog.join()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():  # pragma: no cover - a stuck worker
                process.kill()
                process.join()
        results.close()
    failures = [r.failure for r in collected.values() if r.failure]
    if failures:
        raise RuntimeError("a harness worker failed:\n" + "\n".join(failures))
    return _report(config, collected, time.monotonic() - started)


def _hog() -> None:  # pragma: no cover - runs in a child process
    """Burn a CPU until killed: a host busy with other work."""
    while True:
        pass


def _pause_workers(
    processes: Sequence[Any], pause: float, stop: threading.Event
) -> None:
    """SIGSTOP one worker at a time for ``pause`` seconds, then SIGCONT it,
    round robin, with 0.2 to 0.6 s between pauses: a process whose bus
    listener (and everything else) falls behind, as on a starved host."""
    rng = random.Random()
    turn = 0
    while not stop.wait(rng.uniform(0.2, 0.6)):
        process = processes[turn % len(processes)]
        turn += 1
        if process.pid is None or process.exitcode is not None:
            continue
        try:
            os.kill(process.pid, signal.SIGSTOP)
            stop.wait(pause)
        finally:
            os.kill(process.pid, signal.SIGCONT)


def _report(
    config: RunConfig, collected: dict[int, WorkerResult], elapsed: float
) -> RunReport:
    workers = [collected[i] for i in sorted(collected)]
    writes = Log.merged(w.writes for w in workers)
    reads = Log.merged(w.reads for w in workers)
    own = [check(w.writes, w.reads, bounds=(0.0,)) for w in workers]
    own_writes = CheckReport(
        reads=sum(r.reads for r in own),
        writes=sum(r.writes for r in own),
        stale={0.0: sum(r.stale[0.0] for r in own)},
        max_staleness=max(r.max_staleness for r in own),
        phantoms=0,  # counted once, in the global check
    )
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for w in workers:
        counts.update(w.counts)
        errors.update(w.errors)
    l2, loaded = final_check(config)
    return RunReport(
        mode=config.mode,
        seed=config.seed,
        check=check(writes, reads),
        own_writes=own_writes,
        per_process={w.index: check(writes, w.reads) for w in workers},
        stale_keys_l2=l2,
        stale_keys_loaded=loaded,
        stale_keys_workers={w.index: w.stale_keys for w in workers},
        counts=dict(counts),
        errors=dict(errors),
        elapsed=elapsed,
        max_stall=max(w.max_stall for w in workers),
        stalls=sum(w.stalls for w in workers),
        cpu_seconds=sum(w.cpu_seconds for w in workers),
        duration=config.duration,
    )


def final_check(
    config: RunConfig,
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """After the run: rows Redis holds older than the database, and rows a new
    cache (empty L1, so Redis or the loader) returns older than the database."""
    table = Table(config.dsn, config.table)
    loader = Loader(table, (0.0, 0.0), 0.0, config.seed)
    client = make_client(
        config.mode,
        config.redis_url,
        config.prefix,
        loader,
        config.work.ttl,
        config.l1,
    )
    try:
        truth = table.versions()
        in_l2: list[tuple[int, int, int]] = []
        for row in range(config.work.rows):
            seen = _peek(client, row)
            if seen is not None and seen < truth[row]:
                in_l2.append((row, seen, truth[row]))
        loaded = [
            (row, seen, truth[row])
            for row in range(config.work.rows)
            if (seen := client.read(row)) < truth[row]
        ]
        return in_l2, loaded
    finally:
        client.close()
        table.close()


def _peek(client: FreshClient | NaiveClient, row: int) -> int | None:
    if isinstance(client, NaiveClient):
        return client.peek(row)
    value = client.cache.get(client.key(row))
    return None if value is MISS else int(value["version"])


def new_seed() -> int:
    return random.SystemRandom().randrange(1 << 31)
