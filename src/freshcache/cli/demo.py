"""``freshcache demo``: a read-heavy workload on a real database, checked for staleness.

Readers (threads) read users with a Zipf-skewed popularity through a
``@cache.cached`` function and teams through ``cache.get_or_load``; writers
update a user row (``version = version + 1``) in a transaction, commit, then
invalidate its key (cache-aside, invalidation after commit). A short phase
without the cache runs first, as the baseline.

The consistency checker (Polaris-style) runs on the logs afterwards: a writer
logs (user, version, time its commit *and* invalidation returned); a reader
logs (user, version seen, time its read *started*). A read is stale if a write
of a higher version of that user had completed before the read started.
"""

from __future__ import annotations

import functools
import random
import secrets
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from freshcache import Cache, CachedFunction, FreshcacheError
from freshcache.cli._demo_db import Database

TEAM_SHARE = 0.2  # share of requests that read a team
TTL = 30
ZIPF_S = 1.0
UserGetter = CachedFunction[[int], dict[str, Any]]


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


def _where_redis(url: str) -> str:
    """host:port/db, never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


@dataclass
class _Log:
    """One thread's record. Reads: ``at`` is when each read started; writes:
    when its commit and invalidation had both returned."""

    requests: int = 0
    hits: int = 0
    selects: int = 0
    errors: int = 0
    user: array[int] = field(default_factory=lambda: array("q"))
    version: array[int] = field(default_factory=lambda: array("q"))
    at: array[float] = field(default_factory=lambda: array("d"))
    seconds: dict[str, array[float]] = field(default_factory=dict)

    def time(self, path: str, seconds: float) -> None:
        samples = self.seconds.get(path)
        if samples is None:
            samples = self.seconds[path] = array("d")
        samples.append(seconds)


@dataclass
class _Phase:
    elapsed: float
    reads: list[_Log]
    writes: list[_Log]

    @property
    def writes_done(self) -> int:
        return sum(len(log.user) for log in self.writes)

    def total(self, what: str, logs: Iterable[_Log] | None = None) -> int:
        return sum(getattr(log, what) for log in (self.reads if logs is None else logs))

    def p50_p99(self, path: str) -> str:
        samples = sorted(
            x for log in self.reads + self.writes for x in log.seconds.get(path, ())
        )
        if not samples:
            return "-"
        picks = (
            samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.5, 0.99)
        )
        return " / ".join(
            f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.3g} ms" for s in picks
        )


def count_stale(reads: Iterable[_Log], writes: Iterable[_Log]) -> tuple[int, int]:
    """(stale reads, user reads checked): a read is stale if a write of a higher
    version of its user had completed (commit and invalidate) before it started."""
    events: dict[int, list[tuple[float, int]]] = {}
    for w in writes:
        for user, version, done in zip(w.user, w.version, w.at, strict=True):
            events.setdefault(user, []).append((done, version))
    index: dict[int, tuple[list[float], list[int]]] = {}
    for user, evs in events.items():
        evs.sort()
        index[user] = ([t for t, _ in evs], list(accumulate((v for _, v in evs), max)))
    stale = checked = 0
    for r in reads:
        checked += len(r.user)
        for user, version, started in zip(r.user, r.version, r.at, strict=True):
            written = index.get(user)
            if written is not None:
                i = bisect_left(written[0], started)  # writes done strictly before
                if i and written[1][i - 1] > version:
                    stale += 1
    return stale, checked


def _zipf(rng: random.Random, ids: list[int], cum: list[float]) -> Iterator[int]:
    while True:
        yield from rng.choices(ids, cum_weights=cum, k=512)


def _popularity(rng: random.Random, n: int) -> tuple[list[int], list[float]]:
    """Ids 1..n in a random popularity order, with Zipf cumulative weights."""
    ids = list(range(1, n + 1))
    rng.shuffle(ids)
    return ids, list(accumulate(1.0 / rank**ZIPF_S for rank in range(1, n + 1)))


class _Workload:
    """Reader and writer threads for one phase, with or without the cache."""

    def __init__(self, db: Database, options: DemoOptions, cache: Cache | None) -> None:
        self.db, self.options, self.cache = db, options, cache
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.users = _popularity(random.Random(options.seed), options.users)
        self.teams = _popularity(random.Random(options.seed), options.teams)
        self.get_user: UserGetter | None = None
        if cache is not None:

            @cache.cached("user:{user_id}", ttl=TTL)
            def get_user(user_id: int) -> dict[str, Any]:
                return db.fetch_user(user_id)

            self.get_user = get_user

    def _read(self, log: _Log, rng: random.Random) -> None:
        db, cache, get_user, clock = self.db, self.cache, self.get_user, time.monotonic
        session = db.session()
        users, teams = _zipf(rng, *self.users), _zipf(rng, *self.teams)
        while not self.stop.is_set():
            before = session.selects
            if rng.random() < TEAM_SHARE:
                team_id = next(teams)
                started = clock()
                if cache is None:
                    db.fetch_team(team_id)
                else:
                    loader = functools.partial(db.fetch_team, team_id)
                    cache.get_or_load(cache.key("team", team_id), loader, ttl=TTL)
                seconds = clock() - started
            else:
                user_id = next(users)
                started = clock()
                user = get_user(user_id) if get_user else db.fetch_user(user_id)
                seconds = clock() - started
                log.user.append(user_id)
                log.version.append(user["version"])
                log.at.append(started)
            log.requests += 1
            if cache is None:
                log.time("db", seconds)
            elif session.selects == before:
                log.hits += 1
                log.time("hit", seconds)
            else:
                log.time("load", seconds)
            log.selects = session.selects

    def _write(self, log: _Log, rng: random.Random) -> None:
        db, clock, interval = self.db, time.monotonic, self.options.write_interval
        users = _zipf(rng, *self.users)  # hot users are written more often, too
        due = clock()
        while True:  # on a fixed schedule: a slow write does not lower the rate
            due += rng.uniform(0.5, 1.5) * interval
            if self.stop.wait(max(0.0, due - clock())):
                return
            user_id = next(users)
            started = clock()
            version = db.bump_user(user_id)
            if self.get_user is not None:
                try:
                    self.get_user.invalidate(user_id)
                except FreshcacheError:  # counted and shown, never hidden
                    log.errors += 1
            done = clock()
            log.user.append(user_id)
            log.version.append(version)
            log.at.append(done)
            log.time("write", done - started)

    def _thread(
        self, body: Callable[[_Log, random.Random], None], log: _Log, seed: int
    ) -> threading.Thread:
        def guarded() -> None:
            try:
                body(log, random.Random(seed))
            except BaseException as exc:
                self.failures.append(exc)
                self.stop.set()
            finally:
                self.db.close_session()

        return threading.Thread(target=guarded, name="freshcache-demo", daemon=True)

    def run(self, seconds: float, progress: Progress, task: TaskID) -> _Phase:
        seed = (self.options.seed or 0) + (0 if self.cache is None else 1_000)
        reads = [_Log() for _ in range(self.options.readers)]
        writes = [_Log() for _ in range(self.options.writers)]
        threads = [
            self._thread(self._read, log, seed + i) for i, log in enumerate(reads)
        ]
        threads += [
            self._thread(self._write, w, seed - i - 1) for i, w in enumerate(writes)
        ]
        started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            while (elapsed := time.monotonic() - started) < seconds:
                if self.stop.wait(min(0.1, seconds - elapsed)):
                    break
                requests, hits = (
                    sum(r.requests for r in reads),
                    sum(r.hits for r in reads),
                )
                rate = f"{hits / requests:.1%}" if self.cache and requests else "-"
                progress.update(
                    task, completed=elapsed, requests=requests, hit_rate=rate
                )
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
        elapsed = time.monotonic() - started
        progress.update(
            task, completed=seconds, requests=sum(r.requests for r in reads)
        )
        if self.failures:
            raise self.failures[0]
        return _Phase(elapsed, reads, writes)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _open_cache(options: DemoOptions) -> tuple[Cache, str, str]:
    """The cache, its label and where its keys live."""
    if options.redis is None:
        return Cache(), "memory (embedded)", "cache in process"
    version = f"r{secrets.token_hex(4)}"  # a fresh keyspace per run, cleared after
    cache = Cache(options.redis, prefix="demo", version=version)
    return (
        cache,
        f"Redis {_where_redis(options.redis)}",
        f"keyspace demo:{version}:* (cleared)",
    )


def _dispose(cache: Cache, console: Console) -> bool:
    """Clear and close the cache; False (and a warning) if it could not be cleared."""
    try:
        cache.clear()
    except FreshcacheError as exc:  # e.g. Redis went away: say so, do not crash
        console.print(f"[yellow]could not clear the demo keys:[/] {escape(str(exc))}")
        return False
    finally:
        cache.close()
    return True


def run(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; prints progress, a results table and a summary line."""
    console = console or Console()
    if options.seed is None:
        options = replace(options, seed=secrets.randbelow(1 << 31))
    base_seconds = options.baseline_seconds or min(2.0, max(0.5, options.seconds / 5))
    cache: Cache | None = None
    db: Database | None = None
    try:
        db = Database(options.postgres)
        with console.status(f"creating {options.users:,} users, {options.teams} teams"):
            db.setup(options.users, options.teams)
        cache, cache_label, keyspace = _open_cache(options)
        with Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[requests]:>9,} requests, hit rate"),
            TextColumn("{task.fields[hit_rate]:>6}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            tasks = [
                progress.add_task(name, total=total, requests=0, hit_rate="-")
                for name, total in (
                    ("database only", base_seconds),
                    ("with freshcache", options.seconds),
                )
            ]
            base = _Workload(db, options, None).run(base_seconds, progress, tasks[0])
            cached = _Workload(db, options, cache).run(
                options.seconds, progress, tasks[1]
            )
        errors = sum(cache.stats().errors.values())
    except Exception as exc:
        failure = escape(f"{type(exc).__name__}: {exc}")
        console.print(f"[red]freshcache demo failed:[/] {failure}")
        return 1
    finally:
        try:
            if cache is not None and not _dispose(cache, console):
                keyspace = keyspace.replace("(cleared)", "(NOT cleared)")
        finally:
            if db is not None:
                db.teardown()
    caption = f"{keyspace}; {db.where}"
    _report(console, options, base, cached, errors, (cache_label, db.label, caption))
    return 0


def _report(
    console: Console,
    options: DemoOptions,
    base: _Phase,
    cached: _Phase,
    errors: int,
    labels: tuple[str, str, str],
) -> None:
    requests, hits, selects = (cached.total(n) for n in ("requests", "hits", "selects"))
    base_requests = base.total("requests")
    # Without the cache every request is a query: measured, in the baseline.
    uncached = round(requests * base.total("selects") / max(1, base_requests))
    hit_rate = hits / requests if requests else 0.0
    stale, checked = count_stale(cached.reads, base.writes + cached.writes)
    base_stale, base_checked = count_stale(base.reads, base.writes)
    failed_invalidations = cached.total("errors", cached.writes)
    backend = f"{labels[0]} + {labels[1]}"
    style = "green" if stale == 0 else "bold red"
    who = ", ".join(
        _n(n, noun)
        for n, noun in (
            (options.readers, "reader"),
            (options.writers, "writer"),
            (options.users, "user"),
        )
    )
    table = Table(
        title=f"freshcache demo: {who}, seed {options.seed}",
        caption=labels[2],
    )
    for heading in ("", "with freshcache", "database only"):
        table.add_column(heading, justify="right" if heading else "left")
    for row in (
        ("requests", f"{requests:,}", f"{base_requests:,}"),
        ("seconds", f"{cached.elapsed:.1f}", f"{base.elapsed:.1f}"),
        (
            "requests/s",
            f"{requests / cached.elapsed:,.0f}",
            f"{base_requests / base.elapsed:,.0f}",
        ),
        ("hit rate", f"{hit_rate:.1%}", "-"),
        ("database queries", f"{selects:,}", f"{uncached:,} (same requests)"),
        ("p50 / p99 hit", cached.p50_p99("hit"), "-"),
        ("p50 / p99 miss + load", cached.p50_p99("load"), "-"),
        ("p50 / p99 DB read", "-", base.p50_p99("db")),
        ("p50 / p99 write", cached.p50_p99("write"), base.p50_p99("write")),
        ("writes", f"{cached.writes_done:,}", f"{base.writes_done:,}"),
        (
            "stale reads",
            f"[{style}]{stale:,} of {checked:,}[/]",
            f"{base_stale:,} of {base_checked:,}",
        ),
        ("cache errors", f"{errors:,}", "-"),
        ("failed invalidations", f"{failed_invalidations:,}", "-"),
        ("backend", backend, labels[1]),
    ):
        table.add_row(*row)
    console.print(table)
    fewer = "no saving" if selects >= uncached else "none needed"
    if 0 < selects < uncached:
        fewer = f"{uncached / selects:,.0f}x fewer"
    console.print(
        f"freshcache demo: {requests:,} requests, hit rate {hit_rate:.1%}, {selects:,} "
        f"database queries instead of {uncached:,} ({fewer}), stale reads: {stale:,} "
        f"of {checked:,} ({backend})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
