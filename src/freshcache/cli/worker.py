"""``freshcache worker``: apply a write-behind queue to the database.

Runs until SIGTERM or SIGINT, then finishes the batch in hand and exits 0.
Every ``--report-every`` seconds it logs the queue's lag, backlog, pending
entries and the applied, redelivered and dead-lettered totals.

The Redis URL comes from --redis, --redis-file PATH or FRESHCACHE_REDIS_URL;
the database from --postgres/--postgres-file/FRESHCACHE_POSTGRES_DSN,
--sqlalchemy/--sqlalchemy-file/FRESHCACHE_SQLALCHEMY_URL or --sqlite PATH.
A password on the command line is visible to every user of the machine
(ps): prefer the file or the environment variable.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from freshcache import StoreError, WriteBehindWorker
from freshcache.cli._secrets import POSTGRES, REDIS, SQLALCHEMY, UsageError
from freshcache.sinks.base import Sink

log = logging.getLogger("freshcache.worker")


def add_parser(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="apply a write-behind queue to the database",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    REDIS.add(worker.add_mutually_exclusive_group(), "the cache's Redis")
    worker.add_argument(
        "--prefix", default="fc", help="the cache's prefix (default fc)"
    )
    worker.add_argument("--name", default="default", help="the queue's name")
    worker.add_argument("--partitions", type=int, default=4, help="(default 4)")
    sinks = worker.add_mutually_exclusive_group()
    POSTGRES.add(sinks, "PostgreSQL (psycopg 3)")
    sinks.add_argument("--sqlite", metavar="PATH", help="a SQLite database file")
    SQLALCHEMY.add(sinks, "any SQLAlchemy database URL")
    worker.add_argument("--table", required=True, help="the table to upsert into")
    worker.add_argument("--key-column", default="key")
    worker.add_argument("--value-column", default="value")
    worker.add_argument("--version-column", default="version")
    worker.add_argument("--batch-size", type=int, default=500)
    worker.add_argument(
        "--block", type=float, default=1.0, help="seconds a read waits for new writes"
    )
    worker.add_argument(
        "--claim-idle",
        type=float,
        default=10.0,
        help="seconds before another worker's pending entries are reclaimed",
    )
    worker.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="deliveries that end with a worker dying before an entry is "
        "dead-lettered (default 5; database outages do not count)",
    )
    worker.add_argument("--report-every", type=float, default=10.0, metavar="SECONDS")
    worker.add_argument(
        "--until-idle", action="store_true", help="exit once the queue is empty"
    )
    worker.set_defaults(handler=run)


def _database(args: argparse.Namespace) -> tuple[str, str]:
    """The sink's kind and where its database is: from the command line,
    else from the one environment variable set. Raises ``UsageError``."""
    if args.sqlite is not None:
        return "sqlite", args.sqlite
    for option in (POSTGRES, SQLALCHEMY):
        if option.given(args):
            return option.flag, str(option.resolve(args))
    found = [
        (option.flag, value)
        for option in (POSTGRES, SQLALCHEMY)
        if (value := option.resolve(args)) is not None
    ]
    if len(found) != 1:
        raise UsageError(
            "say which database: --postgres[-file], --sqlalchemy[-file] or "
            f"--sqlite, or set one of {POSTGRES.variable} and "
            f"{SQLALCHEMY.variable}" + (" (both are set)" if found else "")
        )
    return found[0]


def _sink(kind: str, where: str, args: argparse.Namespace) -> Sink:
    columns = {
        "table": args.table,
        "key_column": args.key_column,
        "value_column": args.value_column,
        "version_column": args.version_column,
    }
    if kind == "postgres":
        from freshcache.sinks.postgres import PostgresSink

        return PostgresSink(where, **columns)
    if kind == "sqlite":
        from freshcache.sinks.sqlite import SQLiteSink

        return SQLiteSink(where, **columns)
    from freshcache.sinks.sqlalchemy import SQLAlchemySink

    return SQLAlchemySink(where, **columns)


def run(
    args: argparse.Namespace, *, on_commit: Callable[[], None] | None = None
) -> int:
    """Run the worker the arguments describe; ``on_commit`` is passed on to
    ``WriteBehindWorker`` (called after each database commit, before the
    acknowledgement). Returns 2, with a message on stderr, for a command
    line that cannot run (no Redis URL, no database, an unreadable file)."""
    try:
        redis = REDIS.resolve(args)
        if redis is None:
            raise UsageError(
                f"say where Redis is: --redis-file PATH, {REDIS.variable} or --redis"
            )
        kind, where = _database(args)
    except UsageError as exc:
        print(f"freshcache worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    sink = _sink(kind, where, args)
    worker = WriteBehindWorker(
        redis,
        sink,
        prefix=args.prefix,
        name=args.name,
        partitions=args.partitions,
        batch_size=args.batch_size,
        block=args.block,
        claim_idle=args.claim_idle,
        max_deliveries=args.max_deliveries,
        on_commit=on_commit,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    reporting = threading.Event()

    def report_loop() -> None:
        while not reporting.wait(args.report_every):
            _report(worker)

    reporter = threading.Thread(target=report_loop, name="report", daemon=True)
    reporter.start()
    log.info(
        "worker %s started on %s:!wb:%s", worker.consumer, args.prefix, args.name,
        extra=_fields("worker_started"),
    )  # fmt: skip
    # (the crash test waits for this line: the signal handlers are in place)
    started = time.monotonic()
    try:
        totals = worker.run(until_idle=args.until_idle)
    finally:
        reporting.set()
        sink.close()
    log.info(
        "worker %s stopped after %.1f s: %s",
        worker.consumer,
        time.monotonic() - started,
        totals,
        extra=_fields("worker_stopped"),
    )
    _report(worker)
    worker.close()
    return 0


def _fields(event: str, error_class: str | None = None) -> dict[str, object]:
    """The structured fields of every freshcache record (docs/logging.md)."""
    return {
        "freshcache_event": event,
        "freshcache_tier": "writebehind",
        "freshcache_namespace": None,
        "freshcache_error_class": error_class,
        "freshcache_repeated": 0,
    }


def _report(worker: WriteBehindWorker) -> None:
    try:
        stats = worker.stats()
    except Exception as exc:  # the report must never stop the worker
        shown = exc if isinstance(exc, StoreError) else type(exc).__name__
        log.warning(
            "cannot read the queue's state: %s", shown,
            extra=_fields("worker_report_failed", type(exc).__name__),
        )  # fmt: skip
        return
    log.info(
        "lag %.3f s, backlog %d, pending %d, applied %d, redelivered %d, "
        "dead-lettered %d",
        stats.lag,
        stats.backlog,
        stats.pending,
        stats.applied,
        stats.redelivered,
        stats.dead_lettered,
        extra=_fields("worker_report"),
    )
