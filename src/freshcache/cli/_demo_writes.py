"""The demo's write-heavy phase: write-through against write-behind.

Writer threads update user profiles for a few seconds, first the way an
application does it without write-behind (commit the row, then invalidate
the cache key), then with ``WriteBehind.put`` while a worker in this process
applies the queue to the same database. A sampler records the backlog; after
the writers stop, the demo waits for the queue to drain and checks that the
database and the cache hold every key's last acknowledged write (lost: 0).
Needs ``--redis``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from freshcache import MISS, Cache, StoreError, WriteBehindWorker
from freshcache.cli._demo_db import Database, p50_p99
from freshcache.sinks.base import Sink

WRITERS = 4
SAMPLE_EVERY = 0.1  # seconds between backlog samples


@dataclass
class Side:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statements: int = 0  # database statements the writes cost
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclass
class Result:
    through: Side
    behind: Side
    backlog: list[int]  # sampled while writing and draining
    drain_seconds: float  # from the writers' stop to an empty queue
    lost: int  # keys whose row is older than their last acknowledged write
    cache_behind: int  # keys whose cached value is not the last acknowledged
    keys: int
    durable: bool
    coalesced: int


def _table(db: Database) -> str:
    return db.users.replace("users", "wb_profiles")


def _setup(db: Database) -> str:
    table = _table(db)
    conn = db.session().conn
    value_type = "jsonb" if db.spec()[0] is not None else "TEXT"
    conn.execute(
        f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value {value_type} NOT NULL, "
        "version BIGINT NOT NULL)"
    )
    return table


def _sink(db: Database, table: str) -> Sink:
    postgres, _, directory = db.spec()
    if postgres is not None:
        from freshcache.sinks.postgres import PostgresSink

        return PostgresSink(postgres, table=table)
    from freshcache.sinks.sqlite import SQLiteSink

    return SQLiteSink(f"{directory}/demo.sqlite3", table=table)


def _write_for(
    seconds: float, side: Side, write: Callable[[int, int], None], users: int
) -> None:
    """``WRITERS`` threads call ``write(user, seq)`` for ``seconds``."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def writer(w: int) -> None:
        latencies, errors, seq = [], 0, 0
        while time.monotonic() < stop:
            seq += 1
            user = 1 + (w * 7919 + seq * 104729) % users
            started = time.perf_counter()
            try:
                write(user, w * 1_000_000 + seq)
            except StoreError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
        with lock:
            side.latencies += latencies
            side.errors += errors

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    side.seconds = time.perf_counter() - started


def run(db: Database, redis: str, version: str, seconds: float, users: int) -> Result:
    table = _setup(db)
    p = "%s" if db.spec()[0] is not None else "?"
    upsert = (
        f"INSERT INTO {table} (key, value, version) VALUES ({p}, {p}, 0) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    cache = Cache(redis, prefix="demo", version=version, timeout=1.0)
    wb = cache.write_behind(name=f"demo-{version}", max_backlog=1_000_000)
    opened: list[Any] = []  # the writers' connections
    try:
        durable = wb.start().durable
        sessions = threading.local()

        def commit_then_invalidate(user: int, seq: int) -> None:
            conn = getattr(sessions, "conn", None)
            if conn is None:
                conn = sessions.conn = db.connect()
                opened.append(conn)
            conn.execute(upsert, (f"profile:{user}", f'{{"seq": {seq}}}'))
            cache.invalidate(f"profile:{user}")

        through = Side()
        _write_for(seconds, through, commit_then_invalidate, users)
        through.statements = len(through.latencies)

        acked: dict[str, tuple[int, int]] = {}
        lock = threading.Lock()

        def put(user: int, seq: int) -> None:
            key = f"profile:{user}"
            version_ = wb.put(key, {"seq": seq})
            with lock:
                if key not in acked or acked[key][0] < version_:
                    acked[key] = (version_, seq)

        sink = _sink(db, table)
        worker = WriteBehindWorker(
            redis, sink, prefix="demo", name=wb.name, block=0.1, batch_size=500
        )
        backlog: list[int] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(SAMPLE_EVERY):
                backlog.append(wb.stats().backlog)

        threads = [
            threading.Thread(target=worker.run, name="worker"),
            threading.Thread(target=sample, name="sampler"),
        ]
        for thread in threads:
            thread.start()
        behind = Side()
        _write_for(seconds, behind, put, users)
        stopped = time.perf_counter()
        wb.flush(timeout=60)
        drain = time.perf_counter() - stopped
        sampling.set()
        worker.stop()
        for thread in threads:
            thread.join()
        backlog.append(wb.stats().backlog)
        behind.statements = getattr(sink, "round_trips", worker.totals.batches)
        coalesced = worker.totals.coalesced
        worker.close()
        sink.close()
        rows = {
            k: int(v)
            for k, v in db.session()
            .conn.execute(f"SELECT key, version FROM {table}")
            .fetchall()
        }
        lost = sum(1 for k, (v, _) in acked.items() if rows.get(k, 0) < v)
        cached = cache.get_many(list(acked))
        stale = sum(
            1
            for k, (_, seq) in acked.items()
            if cached.get(k, MISS) not in (MISS, {"seq": seq})
        )
        return Result(
            through, behind, backlog, drain, lost, stale, len(acked), durable, coalesced
        )
    finally:
        for conn in opened:
            conn.close()
        try:
            wb.remove(force=True)
        finally:
            wb.close(flush=False)
            cache.clear()
            cache.close()
        conn = db.session().conn
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def report(console: Console, result: Result) -> None:
    through, behind = result.through, result.behind
    table = Table(
        title=f"freshcache demo, write-heavy phase: {WRITERS} writers, "
        f"{result.keys:,} profiles"
    )
    table.add_column("")
    table.add_column("write-behind (put)", justify="right")
    table.add_column("commit + invalidate", justify="right")
    rows: list[tuple[str, Any, Any]] = [
        ("writes", f"{len(behind.latencies):,}", f"{len(through.latencies):,}"),
        ("writes/s", f"{behind.rate:,.0f}", f"{through.rate:,.0f}"),
        ("p50 / p99 write", p50_p99(behind.latencies), p50_p99(through.latencies)),
        (
            "database statements",
            f"{behind.statements:,} (worker, {result.coalesced:,} coalesced)",
            f"{through.statements:,}",
        ),
        ("peak backlog", f"{max(result.backlog, default=0):,}", "-"),
        ("drained after writers stopped", f"{result.drain_seconds:.2f} s", "-"),
        ("lost acknowledged writes", f"{result.lost:,}", "-"),
        ("cache behind its last write", f"{result.cache_behind:,}", "-"),
        ("errors", f"{behind.errors:,}", f"{through.errors:,}"),
        ("durable (AOF always)", "yes" if result.durable else "no (see warning)", "-"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    ratio = behind.rate / through.rate if through.rate else 0.0
    console.print(
        f"write-behind: {len(behind.latencies):,} writes at {behind.rate:,.0f}/s "
        f"({ratio:.1f}x commit + invalidate), p50 / p99 "
        f"{p50_p99(behind.latencies)}, peak backlog "
        f"{max(result.backlog, default=0):,}, drained {result.drain_seconds:.2f} s "
        f"after the writers stopped, lost: {result.lost}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
