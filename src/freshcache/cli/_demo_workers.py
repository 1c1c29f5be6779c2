"""The demo's workload and its workers: readers and writers over users and
teams (``_Bench``), run in spawned processes, or in one thread when there is
one process (``_Pool``)."""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from rich.progress import Progress, TaskID

from freshcache import L1, Cache, FreshcacheError
from freshcache.cli import _demo_naive
from freshcache.cli._demo_db import Database, Log, Phase

if TYPE_CHECKING:
    from freshcache.cli._demo_options import DemoOptions

TEAM_SHARE = 0.2  # share of requests that read a team's members
TTL = 30
ZIPF_S = 1.0
EVENT = "user_updated"
BUS_WAIT = 5.0  # seconds a process waits for its invalidation bus to connect
SETTLE = 0.1  # seconds without a new delivery after a phase: the bus is drained
Reads = tuple[Callable[[int], dict[str, Any]], Callable[[int], list[dict[str, Any]]]]


def _zipf(rng: random.Random, ids: list[int], cum: list[float]) -> Iterator[int]:
    while True:
        yield from rng.choices(ids, cum_weights=cum, k=512)


def _popularity(rng: random.Random, n: int) -> tuple[list[int], list[float]]:
    """Ids 1..n in a random popularity order, with Zipf cumulative weights."""
    ids = list(range(1, n + 1))
    rng.shuffle(ids)
    return ids, list(accumulate(1.0 / rank**ZIPF_S for rank in range(1, n + 1)))


def _member_tags(members: list[dict[str, Any]]) -> list[str]:
    return [f"user:{m['id']}" for m in members]


class Bench:
    """One process's share of the workload: its threads, database and caches."""

    def __init__(
        self, index: int, options: DemoOptions, spec: Any, version: str, shared: Any
    ) -> None:
        self.index, self.options = index, options
        self.counters, self.abort = shared  # progress for the parent; its Ctrl-C
        n = options.processes or 1  # threads are dealt out like cards
        self.readers = len(range(index, options.readers, n))
        self.writers = len(range(index, options.writers, n))
        self.users = _popularity(random.Random(options.seed), options.users)
        self.teams = _popularity(random.Random(options.seed), options.teams)
        self.db = db = Database.attach(spec)
        self.cache = cache = (
            Cache()
            if options.redis is None
            else Cache(options.redis, prefix="demo", version=version, l1=L1())
        )
        self.naive = _demo_naive.NaiveCache(
            db, options.redis, version=version, ttl=TTL, local_ttl=L1().ttl
        )
        self.deliveries, self.lock = Log(process=index), threading.Lock()

        @cache.cached("user:{user_id}", ttl=TTL)
        def get_user(user_id: int) -> dict[str, Any]:
            return db.fetch_user(user_id)

        @cache.cached(
            "team_members:{team_id}", ttl=TTL, tags=["team:{team_id}", _member_tags]
        )
        def team_members(team_id: int) -> list[dict[str, Any]]:
            return db.fetch_team_members(team_id)

        @cache.events.on(EVENT)
        def user_updated(event: dict[str, Any]) -> None:
            user_id = event["user_id"]
            if event["process"] != index:  # another process's write got here
                with self.lock:
                    self.deliveries.user.append(user_id)
                    self.deliveries.version.append(event["version"])
                    self.deliveries.at.append(time.monotonic())
            cache.invalidate(get_user.key(user_id))
            cache.invalidate_tags(f"user:{user_id}")

        self.paths: dict[str, Reads] = {
            "db": (db.fetch_user, db.fetch_team_members),
            "naive": (self.naive.get_user, self.naive.team_members),
            "fresh": (get_user, team_members),
        }
        deadline = time.monotonic() + BUS_WAIT
        while options.redis and not cache.stats().counts.get("bus_connect"):
            if time.monotonic() > deadline:
                raise RuntimeError("the invalidation bus did not connect")
            time.sleep(0.01)

    def _read(self, mode: str, log: Log, rng: random.Random, stop: Any) -> None:
        session, clock, cached = self.db.session(), time.monotonic, mode != "db"
        get_user, team_members = self.paths[mode]
        users, teams = _zipf(rng, *self.users), _zipf(rng, *self.teams)
        while not stop.is_set():
            before = session.selects
            if rng.random() < TEAM_SHARE:
                team_id = next(teams)
                started = clock()
                members = team_members(team_id)
                seconds = clock() - started
                log.team.append(team_id)
                log.team_at.append(started)
                log.members.extend([m["version"] for m in members])
            else:
                user_id = next(users)
                started = clock()
                user = get_user(user_id)
                seconds = clock() - started
                log.user.append(user_id)
                log.version.append(user["version"])
                log.at.append(started)
            log.requests += 1
            if not cached:
                log.time("db", seconds)
            elif session.selects == before:
                log.hits += 1
                log.time("hit", seconds)
            else:
                log.time("load", seconds)
            log.selects = session.selects

    def _write(self, mode: str, log: Log, rng: random.Random, stop: Any) -> None:
        db, clock, interval = self.db, time.monotonic, self.options.write_interval
        users = _zipf(rng, *self.users)  # hot users are written more often, too
        publish, due = self.cache.events.publish, clock()
        while True:  # on a fixed schedule: a slow write does not lower the rate
            due += rng.uniform(0.5, 1.5) * interval
            if stop.wait(max(0.0, due - clock())):
                return
            user_id = next(users)
            started = clock()
            version, team_id = db.bump_user(user_id)
            try:  # the payload's version and process are for the checker
                if mode == "fresh":
                    event = {"user_id": user_id, "version": version}
                    publish(EVENT, event | {"process": self.index})
                elif mode == "naive" and not self.naive.updated(user_id, team_id):
                    log.errors += 1
            except FreshcacheError:  # counted and shown, never hidden
                log.errors += 1
            done = clock()
            log.user.append(user_id)
            log.version.append(version)
            log.at.append(done)
            log.time("write", done - started)

    def run(self, mode: str, seconds: float, start_at: float) -> Phase:
        """Run this process's threads for ``seconds`` from ``start_at``."""
        index, n = self.index, self.options.processes or 1
        seed = (self.options.seed or 0) + (mode != "db") * 1_000
        reads = [Log(process=index) for _ in range(self.readers)]
        writes = [Log(process=index) for _ in range(self.writers)]
        stop, failures = threading.Event(), list[BaseException]()

        def thread(body: Callable[..., None], log: Log, seed: int) -> threading.Thread:
            def guarded() -> None:
                try:
                    body(mode, log, random.Random(seed), stop)
                except BaseException as exc:
                    failures.append(exc)
                    stop.set()
                finally:
                    self.db.close_session()

            return threading.Thread(target=guarded, name="freshcache-demo", daemon=True)

        threads = [
            thread(self._read, log, seed + index + n * i) for i, log in enumerate(reads)
        ] + [
            thread(self._write, log, seed - 1 - index - n * i)
            for i, log in enumerate(writes)
        ]
        time.sleep(max(0.0, start_at - time.monotonic()))
        started = time.monotonic()
        try:
            for t in threads:
                t.start()
            while (elapsed := time.monotonic() - started) < seconds:
                if stop.wait(min(0.1, seconds - elapsed)) or self.abort.is_set():
                    break
                self.counters[2 * index] = sum(r.requests for r in reads)
                self.counters[2 * index + 1] = sum(r.hits for r in reads)
        finally:
            stop.set()
            for t in threads:
                t.join()
        elapsed = time.monotonic() - started
        if failures:
            raise failures[0]
        while mode == "fresh" and n > 1:  # the other processes' last writes
            count = len(self.deliveries.user)
            time.sleep(SETTLE)
            if len(self.deliveries.user) == count:
                break
        with self.lock:
            deliveries, self.deliveries = self.deliveries, Log(process=index)
        if mode != "fresh":
            return Phase(elapsed, reads, writes, [], self.naive.errors)
        stats = self.cache.stats()
        errors = sum(stats.errors.values())
        return Phase(elapsed, reads, writes, [deliveries], errors, dict(stats.counts))

    def close(self) -> None:
        try:
            self.cache.close()
        finally:
            self.naive.close()


def _worker(
    conn: Connection, index: int, options: DemoOptions, *args: Any
) -> None:  # fmt: skip
    """A process's (for one process, a thread's) loop: build, run phases, stop."""
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    bench: Bench | None = None
    try:
        bench = Bench(index, options, *args)
        conn.send(("ready", None))
        while (order := conn.recv())[0] == "run":
            conn.send(("done", bench.run(*order[1:])))
    except BaseException as exc:
        with contextlib.suppress(OSError):  # unless the parent has gone
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            if bench is not None:
                bench.close()
        finally:
            conn.close()  # the parent sees the end, also of a thread


class Pool:
    """The workers: spawned processes, or one thread when there is one process."""

    def __init__(self, options: DemoOptions, spec: Any, version: str) -> None:
        n = options.processes or 1
        context = multiprocessing.get_context("spawn")
        self.counters = context.RawArray("q", 2 * n)  # requests, hits per process
        self.conns: list[Connection] = []
        self.workers: list[BaseProcess | threading.Thread] = []
        self.abort = context.Event()  # set: the workers end their phase now
        for i in range(n):
            mine, theirs = context.Pipe()
            args = (theirs, i, options, spec, version, (self.counters, self.abort))
            self.workers.append(
                threading.Thread(target=_worker, args=args, daemon=True)
                if n == 1
                else context.Process(target=_worker, args=args, daemon=True)
            )
            self.workers[-1].start()
            self.conns.append(mine)
        self._gather()

    def _gather(self, tick: Callable[[], None] = lambda: None) -> list[Any]:
        got: dict[int, Any] = {}
        while len(got) < len(self.conns):
            waiting = [c for i, c in enumerate(self.conns) if i not in got]
            for conn in wait(waiting, timeout=0.1):
                i = self.conns.index(conn)  # type: ignore[arg-type]
                try:
                    kind, payload = self.conns[i].recv()
                except EOFError:
                    raise RuntimeError(f"demo process {i} exited early") from None
                if kind == "error":
                    raise RuntimeError(payload)
                got[i] = payload
            tick()
        return [got[i] for i in range(len(self.conns))]

    def phase(
        self, mode: str, seconds: float, progress: Progress, task: TaskID
    ) -> Phase:
        counters = self.counters
        counters[:] = [0] * len(counters)
        start_at = time.monotonic() + 0.05  # every process starts at once
        for conn in self.conns:
            conn.send(("run", mode, seconds, start_at))

        def tick() -> None:
            requests, hits = sum(counters[0::2]), sum(counters[1::2])
            rate = f"{hits / requests:.1%}" if mode != "db" and requests else "-"
            elapsed = min(seconds, max(0.0, time.monotonic() - start_at))
            progress.update(task, completed=elapsed, requests=requests, hit_rate=rate)

        merged = Phase()
        for one in self._gather(tick):
            merged.merge(one)
        progress.update(task, completed=seconds, requests=merged.total("requests"))
        return merged

    def close(self) -> None:
        """Stop the workers (at once if a phase is running: Ctrl-C)."""
        self.abort.set()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        deadline, open_ = time.monotonic() + 5, list(self.conns)
        while open_ and time.monotonic() < deadline:  # drain a phase being sent
            for ready in wait(open_, timeout=0.1):
                assert isinstance(ready, Connection)
                try:
                    ready.recv()
                except (EOFError, OSError):
                    open_.remove(ready)
        for worker in self.workers:
            worker.join(1)
            if isinstance(worker, BaseProcess) and worker.is_alive():
                worker.kill()
                worker.join(1)
        for conn in self.conns:
            conn.close()
