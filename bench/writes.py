"""``python -m bench writes``: write-behind versus write-through (target P8).

P8 (docs/performance.md): write-behind at least 5x the write throughput of
write-through in the same run, with durability on. So the run starts a
redis-server of its own with AOF ``appendfsync always`` (unless
``--redis-url`` names one) and uses the PostgreSQL at ``--postgres``
(``synchronous_commit`` as configured: on by default).

The same 2,000 keys and small JSON values for both sides, rounds of
``--block`` writes alternating between the two sides (so a burst of noise on
the shared machine hits both), written by 1 client thread, then by 8
(``--clients``):

* **write-through**: ``write_through`` below: ``cache.write_through(key,
  reload=...)`` around the commit of the row in PostgreSQL (one upsert,
  autocommit): after it, the key is invalidated and the row re-read into the
  cache under a lease.
* **write-behind**: ``wb.put(key, value)``.
* for information, not the P8 figure: ``wb.put_many`` of 100 writes per call
  (one script and one fsync for all of them), 1 client.

Then a ``PostgresSink`` worker in this process drains what write-behind
queued: its apply rate (writes acknowledged per second, and rows) and its
database round trips. Reported: throughput, latency p50/p99 of one write,
database round trips per 1,000 writes, and the worker's rates.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
KEYS = 2000
MANY = 100  # writes per put_many call
TARGET_RATIO = 5.0


@dataclass
class Side:
    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    db_round_trips: float = 0

    @property
    def writes(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_through(
    conn: Any, cache: Any, table: str, key: str, value: dict[str, Any]
) -> int:
    """freshcache's write-through: commit the row (autocommit: the upsert is
    its own transaction), then ``cache.write_through`` invalidates the key and
    re-reads the row into the cache under a lease. Returns the database round
    trips it made (2)."""

    def reload() -> Any:  # the re-read (1 round trip)
        row = conn.execute(
            f"SELECT value FROM {table} WHERE key = %s", (key,)
        ).fetchone()
        return row[0]

    with cache.write_through(key, reload=reload):
        conn.execute(
            f"INSERT INTO {table} (key, value, version) VALUES (%s, %s::jsonb, 0) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, json.dumps(value)),
        )  # committed when it returns (1 round trip)
    return 2


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    from tests.servers import AOF_ALWAYS, own_redis_server

    with own_redis_server(*AOF_ALWAYS) as server:
        yield server.url


def _run_block(
    side: Side, clients: int, write: Callable[[int, str, dict[str, Any]], int],
    keys: list[str], first: int,
) -> None:  # fmt: skip
    """``keys`` written by ``clients`` threads at once (each its own share)."""
    perf = time.perf_counter
    lock = threading.Lock()

    def client(c: int) -> None:
        latencies, trips = [], 0
        for n in range(c, len(keys), clients):
            value = {"id": keys[n], "n": first + n, "name": "Ada"}
            t0 = perf()
            trips += write(c, keys[n], value)
            latencies.append(perf() - t0)
        with lock:
            side.latencies += latencies
            side.db_round_trips += trips

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = perf()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    side.seconds += perf() - started


def measure(
    redis_url: str, dsn: str, writes: int, block: int, batch_size: int,
    client_counts: list[int],
) -> dict[str, Any]:  # fmt: skip
    import psycopg

    from freshcache import Cache
    from freshcache.sinks.postgres import PostgresSink

    suffix = uuid.uuid4().hex[:8]
    wt_table, wb_table = f"bench_wt_{suffix}", f"bench_wb_{suffix}"
    prefix = f"fcbench{os.getpid()}p8"
    conn = psycopg.connect(dsn, autocommit=True)
    for table in (wt_table, wb_table):
        conn.execute(
            f"CREATE TABLE {table} (key text PRIMARY KEY, value jsonb NOT NULL, "
            "version bigint NOT NULL)"
        )
    most = max(client_counts)
    conns = [psycopg.connect(dsn, autocommit=True) for _ in range(most)]
    cache = Cache(redis_url, prefix=prefix, timeout=1.0, max_connections=most + 4)
    wb = cache.write_behind(name="bench", max_backlog=8 * writes * len(client_counts))
    verdict = wb.start()
    rng = random.Random(8)
    pairs = []

    def through_write(c: int, key: str, value: dict[str, Any]) -> int:
        return write_through(conns[c], cache, wt_table, key, value)

    def behind_write(c: int, key: str, value: dict[str, Any]) -> int:
        wb.put(key, value)
        return 0

    try:
        for clients in client_counts:
            through = Side(f"write-through, {clients} client(s)")
            behind = Side(f"write-behind, {clients} client(s)")
            for i in range(0, writes, block):  # alternate blocks: noise hits both
                keys = [
                    f"user:{rng.randrange(KEYS)}" for _ in range(min(block, writes - i))
                ]
                order = [(through, through_write), (behind, behind_write)]
                for side, write in order if (i // block) % 2 == 0 else order[::-1]:
                    _run_block(side, clients, write, keys, i)
            pairs.append((through, behind))
        many = Side(f"write-behind put_many x{MANY}, 1 client")
        for i in range(0, writes, MANY):  # one script (and fsync) per 100 writes
            chunk = {
                f"user:{rng.randrange(KEYS)}": {"n": i + n, "name": "Ada"}
                for n in range(MANY)
            }
            t0 = time.perf_counter()
            wb.put_many(chunk)
            many.latencies += [(time.perf_counter() - t0) / len(chunk)] * len(chunk)
            many.seconds += time.perf_counter() - t0
        backlog = wb.stats().backlog
        sink = PostgresSink(dsn, table=wb_table)
        worker = wb.worker(sink, block=0, batch_size=batch_size)
        started = time.perf_counter()
        totals = worker.run(until_idle=True)
        drain_s = time.perf_counter() - started
        counted = conn.execute(f"SELECT count(*) FROM {wb_table}").fetchone()
        rows = counted[0] if counted else 0
        for behind in [b for _, b in pairs] + [many]:  # shared out per write
            behind.db_round_trips = sink.round_trips * behind.writes / backlog
        worker.close()
        sink.close()
    finally:
        wb.remove(force=True)
        wb.close(flush=False)
        cache.clear()
        cache.close()
        for table in (wt_table, wb_table):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for c in [conn, *conns]:
            c.close()
    return {
        "pairs": pairs,
        "many": many,
        "durable": verdict.durable,
        "warnings": verdict.warnings,
        "backlog": backlog,
        "drain_s": drain_s,
        "applied": totals.applied,
        "batches": totals.batches,
        "round_trips": sink.round_trips,
        "rows": rows,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def render(result: dict[str, Any], markdown: bool) -> str:
    lines = []
    row: Callable[..., str]
    head = ("path", "writes", "writes/s", "p50", "p99", "DB round trips / 1k writes")
    if markdown:

        def row(*cells: object) -> str:
            return "| " + " | ".join(str(c) for c in cells) + " |"

        lines += [row(*head), "| --- | ---: | ---: | ---: | ---: | ---: |"]
    else:

        def row(*cells: object) -> str:
            return "  ".join(
                f"{c!s:>10}" if i else f"{c!s:<34}" for i, c in enumerate(cells)
            )

        lines.append(row(*head[:-1], "DB RT/1k"))
    verdicts = []
    for through, behind in result["pairs"]:
        for side in (through, behind):
            lines.append(
                row(
                    side.name,
                    side.writes,
                    f"{side.throughput:,.0f}",
                    _ms(side.quantile(0.5)),
                    _ms(side.quantile(0.99)),
                    f"{side.db_round_trips * 1000 / max(1, side.writes):,.1f}",
                )
            )
        ratio = behind.throughput / through.throughput if through.throughput else 0
        verdicts.append(
            f"P8 with {behind.name.split(', ')[1]}: write-behind / write-through "
            f"throughput = {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x): "
            f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}"
        )
    many, first = result["many"], result["pairs"][0][0]
    lines.append(
        row(
            many.name,
            many.writes,
            f"{many.throughput:,.0f}",
            _ms(many.quantile(0.5)) + " per write",
            "-",
            f"{many.db_round_trips * 1000 / max(1, many.writes):,.1f}",
        )
    )
    verdicts.append(
        f"(put_many, for information: {many.throughput / first.throughput:.0f}x "
        "write-through with 1 client; not the P8 figure)"
    )
    lines += ["", *verdicts]
    lines.append(f"Redis durable (AOF appendfsync always): {result['durable']}")
    applied, drain_s = result["applied"], result["drain_s"]
    lines.append(
        f"worker: drained a backlog of {result['backlog']:,} writes in "
        f"{drain_s:.2f} s = {applied / drain_s:,.0f} writes/s applied "
        f"({result['rows']:,} rows, {result['batches']} batches of up to "
        f"{result['batch_size']}, {result['round_trips']} database round trips)"
    )
    for warning in result["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def run(
    *,
    writes: int,
    block: int,
    batch_size: int,
    redis_url: str | None,
    postgres: str,
    markdown: bool,
    json_path: str | None,
    clients: list[int],
) -> int:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with _redis(redis_url) as url:
        result = measure(url, postgres, writes, block, batch_size, clients)
    result["batch_size"] = batch_size
    print(render(result, markdown))
    elapsed = time.perf_counter() - started
    print(
        f"\n  {KEYS:,} keys, blocks of {block} writes alternating between the "
        f"two sides, client threads {clients}; {elapsed:.0f} s; load average "
        f"{load:.2f} -> {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    if json_path:
        data = {
            "sides": [
                {
                    "name": side.name,
                    "writes": side.writes,
                    "throughput": side.throughput,
                    "p50_s": side.quantile(0.5),
                    "p99_s": side.quantile(0.99),
                    "median_s": statistics.median(side.latencies),
                    "db_round_trips": side.db_round_trips,
                }
                for pair in result["pairs"]
                for side in pair
            ],
            **{k: v for k, v in result.items() if k not in ("pairs", "many")},
            "put_many": {
                "writes": result["many"].writes,
                "throughput": result["many"].throughput,
            },
        }
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, default=str)
    return 0
