"""The demo's "hot key expires" phase: one popular key with a slow query
behind it, expiring again and again under steady load.

Four ways to read it, each for the same time with the same reader threads
(each paced at about one read per millisecond, a steady load):

* naive cache-aside: ``get``, on a miss run the query and ``set``; at every
  expiry each reader that misses runs the query too (a stampede);
* ``get_or_load``: single flight and the fill lease: one query per expiry,
  but every reader that arrives meanwhile waits for it;
* ``get_or_load`` with ``stale_ttl``: stale-while-revalidate: readers keep
  getting the old value at once while one background refresh runs;
* ``get_or_load`` with XFetch on: one reader refreshes shortly before expiry,
  in the background, so the key never expires under load.

XFetch is off (``xfetch_beta=0``) in the first three, to show expiry itself.

The query is a real ``SELECT`` on its own connection, padded to
``QUERY_SECONDS`` (a report that takes that long). A caller "waited" when its
read took at least half of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from freshcache import MISS, Cache
from freshcache.cli._demo_db import Database

HOT_TTL = 0.5  # seconds: the hot key expires this often
QUERY_SECONDS = 0.05
STALE_TTL = 30.0
MODES = {
    "naive": "naive",
    "flight": "single flight",
    "swr": "SWR",
    "xfetch": "XFetch",
}
PACE = 0.001  # seconds each reader rests between reads


@dataclass
class HotKeyRun:
    """What one way of reading the hot key did."""

    mode: str
    seconds: float
    requests: int = 0
    queries: int = 0
    peak: int = 0  # most queries running at once
    waited: int = 0  # reads that took at least half a query
    latencies: list[float] = field(default_factory=list)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class _Report:
    """The slow query, counting how many run and how many run at once."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self.running = self.queries = self.peak = 0

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            self.queries += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            started = time.monotonic()
            try:
                team = self._db.fetch_team(1)
            finally:  # queries also run on refresh threads: leave nothing open
                self._db.close_session()
            time.sleep(max(0.0, QUERY_SECONDS - (time.monotonic() - started)))
            return team
        finally:
            with self._lock:
                self.running -= 1


def _reader(cache: Cache, mode: str, query: _Report) -> Callable[[], Any]:
    key = f"hot:{mode}"
    if mode == "naive":

        def naive() -> Any:
            value = cache.get(key)
            if value is MISS:
                value = query()
                cache.set(key, value, ttl=HOT_TTL)
            return value

        return naive
    stale = STALE_TTL if mode == "swr" else 0.0
    return lambda: cache.get_or_load(key, query, ttl=HOT_TTL, stale_ttl=stale)


def run_mode(
    cache: Cache, db: Database, mode: str, *, seconds: float, readers: int
) -> HotKeyRun:
    """Warm the key, then let ``readers`` threads read it for ``seconds``."""
    query = _Report(db)
    read = _reader(cache, mode, query)
    read()  # warm: the cold miss is not what this phase shows
    query.queries = query.peak = 0
    run = HotKeyRun(mode, seconds)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop() -> None:
        mine: list[float] = []
        try:
            while (started := time.monotonic()) < stop_at:
                read()
                mine.append(time.monotonic() - started)
                time.sleep(PACE)
        finally:
            with lock:
                run.latencies += mine

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.requests = len(run.latencies)
    run.waited = sum(1 for s in run.latencies if s >= QUERY_SECONDS / 2)
    run.queries, run.peak = query.queries, query.peak
    return run


def hot_key_phase(
    db: Database, redis: str | None, version: str, *, seconds: float, readers: int
) -> list[HotKeyRun]:
    """Each way of reading, one after the other, in this process."""
    runs = []
    for mode in MODES:
        beta = 1.0 if mode == "xfetch" else 0.0
        with Cache(
            redis, prefix="demo", version=version, timeout=1.0, xfetch_beta=beta
        ) as cache:
            runs.append(run_mode(cache, db, mode, seconds=seconds, readers=readers))
    return runs


def report(console: Console, runs: list[HotKeyRun], readers: int) -> None:
    """The phase's table and a one-line summary (which the tests parse)."""
    ttl, query = HOT_TTL, QUERY_SECONDS
    table = Table(
        title=f"hot key expires every {ttl} s: {readers} reader(s), "
        f"a {query * 1000:.0f} ms query behind it, in one process"
    )
    table.add_column("")
    for run in runs:
        table.add_column(MODES[run.mode], justify="right")
    table.caption = (
        "naive cache-aside; get_or_load (single flight); with stale_ttl (SWR); "
        "with early refresh (XFetch, off in the others). Reads paced at ~1/ms."
    )
    rows = {
        "requests": [f"{run.requests:,}" for run in runs],
        "queries for the key": [f"{run.queries:,}" for run in runs],
        "  most at once": [f"{run.peak:,}" for run in runs],
        "reads that waited on it": [f"{run.waited:,}" for run in runs],
        "p99 read": [f"{run.p99_ms():.1f} ms" for run in runs],
    }
    for name, cells in rows.items():
        table.add_row(name, *cells)
    console.print(table)
    by_mode = {run.mode: run for run in runs}
    naive, flight, swr, early = (by_mode[m] for m in MODES)
    console.print(
        f"hot key: queries (most at once) naive {naive.queries:,} ({naive.peak}), "
        f"single flight {flight.queries:,} ({flight.peak}), "
        f"stale-while-revalidate {swr.queries:,} ({swr.peak}), "
        f"early refresh {early.queries:,} ({early.peak}); reads that waited: "
        f"{naive.waited:,}, {flight.waited:,}, {swr.waited:,}, {early.waited:,}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
