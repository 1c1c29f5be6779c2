"""``freshcache demo``: a read-heavy workload on a real database, checked for staleness.

Three phases run one workload: the database alone (a short baseline), naive
cache-aside (``_demo_naive``) and freshcache, the last two for the same time.
Readers (threads) read users (Zipf-skewed popularity) and teams' member lists;
writers update a user (``version = version + 1``), commit, then invalidate.

With freshcache a writer publishes a ``user_updated`` event, and one handler,
registered in every process, invalidates the user's key and every entry
tagged with the user (a member list is tagged ``user:<id>`` for each member by
a callable on the loaded list): one place declares what an update
invalidates. ``publish`` runs this process's handlers before it returns, so
commit-then-publish gives read-your-writes. With ``--redis`` the cache is an
L1 over Redis in each of ``--processes`` spawned processes, which must stay
coherent through the bus. Their logs come back, and one checker
(``_demo_db.check``) counts the stale reads of both cached phases. A last
phase (``_demo_hotkey``) shows a hot key expiring under steady load.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import accumulate
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from freshcache import L1, Cache, FreshcacheError, UnsafeRedisError
from freshcache.cli import _demo_hotkey, _demo_naive
from freshcache.cli._demo_db import Database, Log, Phase, check, p50_p99

TEAM_SHARE = 0.2  # share of requests that read a team's members
TTL = 30
ZIPF_S = 1.0
EVENT = "user_updated"
BUS_WAIT = 5.0  # seconds a process waits for its invalidation bus to connect
SETTLE = 0.1  # seconds without a new delivery after a phase: the bus is drained
MODES = {
    "db": "database only",
    "naive": "naive cache-aside",
    "fresh": "with freshcache",
}
Reads = tuple[Callable[[int], dict[str, Any]], Callable[[int], list[dict[str, Any]]]]


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 5.0
    baseline_seconds: float | None = None  # None: seconds / 5, within [0.5, 2]
    readers: int = 8
    writers: int = 1
    write_interval: float = 0.02
    users: int = 2000
    teams: int = 50
    seed: int | None = None
    redis: str | None = None
    postgres: str | None = None
    processes: int | None = None  # None: 1 embedded, 2 with Redis
    write_seconds: float = 2.0  # the write-heavy phase, each side (with Redis)


def _where_redis(url: str) -> str:
    """host:port/db, never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


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


class _Bench:
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
    bench: _Bench | None = None
    try:
        bench = _Bench(index, options, *args)
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


class _Pool:
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


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 'es' if noun[-1] == 's' else 's'}"


def _clear(url: str, version: str, console: Console) -> bool:
    """Remove the run's keys (both prefixes); False (and a warning) if it could not."""
    cleared = True
    for prefix in ("demo", _demo_naive.PREFIX):
        cache = Cache(url, prefix=prefix, version=version)
        try:
            cache.clear()
        except FreshcacheError as exc:  # e.g. Redis went away: say so, do not crash
            console.print(
                f"[yellow]could not clear the demo keys:[/] {escape(str(exc))}"
            )
            cleared = False
        finally:
            cache.close()
    return cleared


def run(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; prints progress, a results table and a summary line."""
    console = console or Console()
    if options.seed is None:
        options = replace(options, seed=secrets.randbelow(1 << 31))
    if options.processes is None:
        options = replace(options, processes=1 if options.redis is None else 2)
    base_seconds = options.baseline_seconds or min(2.0, max(0.5, options.seconds / 5))
    version = f"r{secrets.token_hex(4)}"  # a fresh keyspace per run, cleared after
    labels = ["memory (embedded)", "cache in process"]
    if options.redis is not None:
        labels = [
            f"L1 + Redis {_where_redis(options.redis)}",
            f"keyspaces demo:{version}:*, {_demo_naive.PREFIX}:{version}:* (cleared)",
        ]
    db: Database | None = None
    pool: _Pool | None = None
    writes: Any = None  # the write-heavy phase's result (with Redis)
    phases: dict[str, Phase] = {}
    hot: list[_demo_hotkey.HotKeyRun] = []
    try:
        db = Database(options.postgres)
        with console.status(f"creating {options.users:,} users, {options.teams} teams"):
            db.setup(options.users, options.teams)
        with console.status(f"starting {_n(options.processes or 1, 'process')}"):
            pool = _Pool(options, db.spec(), version)
        with Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[requests]:>9,} requests, hit rate"),
            TextColumn("{task.fields[hit_rate]:>6}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            seconds = dict.fromkeys(MODES, options.seconds) | {"db": base_seconds}
            tasks = {
                mode: progress.add_task(
                    heading,
                    total=seconds[mode],
                    requests=0,
                    hit_rate="-",
                )
                for mode, heading in MODES.items()
            }
            for mode, task in tasks.items():
                phases[mode] = pool.phase(mode, seconds[mode], progress, task)
        hot_seconds = max(1.0, min(2.0, options.seconds / 2))
        with console.status(f"hot key expires: 4 x {hot_seconds:.0f} s"):
            hot = _demo_hotkey.hot_key_phase(
                db, options.redis, version,
                seconds=hot_seconds, readers=options.readers,
            )  # fmt: skip
        if options.redis is not None and options.write_seconds > 0:
            from freshcache.cli import _demo_writes

            with console.status("write-heavy phase: commit + invalidate, write-behind"):
                try:
                    writes = _demo_writes.run(
                        db, options.redis, version, options.write_seconds, options.users
                    )
                except UnsafeRedisError as exc:  # say why, keep the other results
                    console.print(f"write-heavy phase skipped: {escape(str(exc))}")
    except Exception as exc:
        failure = escape(f"{type(exc).__name__}: {exc}")
        console.print(f"[red]freshcache demo failed:[/] {failure}")
        return 1
    finally:
        try:
            if pool is not None:
                pool.close()
            if options.redis and not _clear(options.redis, version, console):
                labels[1] = labels[1].replace("(cleared)", "(NOT cleared)")
        finally:
            if db is not None:
                db.teardown()
    _report(console, options, phases, [*labels, db.label, f"{labels[1]}; {db.where}"])
    _demo_hotkey.report(console, hot, options.readers)
    if writes is not None:
        from freshcache.cli import _demo_writes

        _demo_writes.report(console, writes)
    return 0


def _report(
    console: Console,
    options: DemoOptions,
    phases: dict[str, Phase],
    labels: list[str],  # cache, keyspace, database, caption
) -> None:
    writes = [w for phase in phases.values() for w in phase.writes]
    size = (options.users, options.teams)
    found = {
        mode: check(p.reads, writes, p.deliveries, users=size[0], teams=size[1])
        for mode, p in phases.items()
    }
    base, fresh, spread = phases["db"], phases["fresh"], options.processes or 1
    requests, hits, selects = (fresh.total(n) for n in ("requests", "hits", "selects"))
    # Without the cache every request is a query: measured, in the baseline.
    uncached = round(requests * base.total("selects") / max(1, base.total("requests")))
    backend = f"{labels[0]} + {labels[2]}"
    backend += f", {_n(spread, 'process')}" if spread > 1 else ""
    backends = {
        "db": labels[2],
        "naive": "dict (in process)" if options.redis is None else "dict L1 + Redis",
        "fresh": backend,
    }

    def column(mode: str) -> list[str]:
        phase, stale, cached = phases[mode], found[mode], mode != "db"
        n, style = phase.total("requests"), "green" if not stale.stale else "bold red"
        bus = mode == "fresh" and spread > 1
        return [
            f"{n:,}",
            f"{phase.elapsed:.1f}",
            f"{n / phase.elapsed:,.0f}",
            f"{phase.total('hits') / n:.1%}" if cached and n else "-",
            f"{phase.total('selects'):,}"
            if cached
            else f"{uncached:,} (same requests)",
            phase.p50_p99("hit") if cached else "-",
            phase.p50_p99("load") if cached else "-",
            "-" if cached else phase.p50_p99("db"),
            phase.p50_p99("write"),
            f"{phase.writes_done:,}",
            f"[{style}]{stale.stale:,} of {stale.reads:,}[/]",
            f"{stale.stale_users:,} of {stale.user_reads:,}",
            f"{stale.stale_teams:,} of {stale.team_reads:,}",
            f"{stale.in_flight:,}" if bus else "-",
            p50_p99(stale.delays) if bus else "-",
            f"{phase.errors:,}" if cached else "-",
            f"{phase.total('errors', phase.writes):,}" if cached else "-",
            backends[mode],
        ]

    who = ", ".join(
        _n(n, noun)
        for n, noun in zip(
            (options.readers, options.writers, options.users, spread),
            ("reader", "writer", "user", "process"),
            strict=True,
        )
    )
    table = Table(
        title=f"freshcache demo: {who}, seed {options.seed}", caption=labels[3]
    )
    table.add_column("")
    for mode in ("fresh", "naive", "db"):
        table.add_column(MODES[mode], justify="right")
    names = (
        "requests", "seconds", "requests/s", "hit rate", "database queries",
        "p50 / p99 hit", "p50 / p99 miss + load", "p50 / p99 DB read",
        "p50 / p99 write", "writes", "stale reads", "  in user reads",
        "  in team reads", "reads during bus delivery", "p50 / p99 bus delivery",
        "cache errors", "failed invalidations", "backend",
    )  # fmt: skip
    for row in zip(names, column("fresh"), column("naive"), column("db"), strict=True):
        table.add_row(*row)
    console.print(table)
    fewer = "no saving" if selects >= uncached else "none needed"
    if 0 < selects < uncached:
        fewer = f"{uncached / selects:,.0f}x fewer"
    stale, foil = found["fresh"], found["naive"]
    flight = f", {stale.in_flight:,} during bus delivery" if stale.in_flight else ""
    console.print(
        f"freshcache demo: {requests:,} requests, hit rate "
        f"{hits / max(1, requests):.1%}, {selects:,} database queries instead of "
        f"{uncached:,} ({fewer}), stale reads: {stale.stale:,} of {stale.reads:,}"
        f"{flight} (naive cache-aside: {foil.stale:,} of {foil.reads:,}); {backend}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
