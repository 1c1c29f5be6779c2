"""``freshcache stats``, ``freshcache inspect`` and ``freshcache keys``: the
live view across processes (docs/operations.md).

Processes publish with ``Cache(..., publish_stats=5.0)``. These commands
read Redis only (SCAN, never KEYS, on every primary of a cluster); they
never print a cached value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from freshcache import Cache, KeyInfo, LiveStats, StoreError, WriteBehindStats
from freshcache.cli import _live_format as fmt
from freshcache.cli._secrets import REDIS, UsageError

_TIMEOUT = 1.0  # seconds: a diagnostic may wait longer than a cache read


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    REDIS.add(parser.add_mutually_exclusive_group(), "the cache's Redis")
    parser.add_argument(
        "--prefix", default="fc", help="the cache's prefix (default fc)"
    )
    parser.add_argument(
        "--version", default="v1", help="the cache's version (default v1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON, once")


def add_parsers(commands: Any) -> list[argparse.ArgumentParser]:
    stats = commands.add_parser(
        "stats",
        help="a live table of every process's cache stats",
        description=(
            "Reads the snapshots that processes publish (Cache(..., "
            "publish_stats=SECONDS)) and the write-behind queues' state, and "
            "shows a table per process and in total: hit rate per tier and "
            "namespace, loads, evictions, errors by class, bus lag, watermark "
            "age, queued invalidations, write-behind backlog and throughput. "
            "Refreshes until Ctrl-C; --once prints one table, --json one JSON "
            "document."
        ),
    )
    _common(stats)
    stats.add_argument("--once", action="store_true", help="print one table and exit")
    stats.add_argument(
        "--interval", type=_positive_float, default=2.0,
        help="seconds between refreshes (default 2); --once and --json "
        "read the queues twice this far apart for their throughput "
        "(at most 1 s)",
    )  # fmt: skip
    stats.set_defaults(handler=run_stats)
    inspect = commands.add_parser(
        "inspect",
        help="what is stored for a key, in Redis and in every process's L1",
        description=(
            "Prints the envelope header of KEY (a key as cache.get takes it, "
            "e.g. user:1) in Redis, its tags, namespace version, fill lease and "
            "pending write-behind mark, and asks every publishing process for "
            "its L1 entry (waiting about one publishing period). Never the value."
        ),
    )
    inspect.add_argument("key", metavar="KEY")
    _common(inspect)
    inspect.add_argument(
        "--wait", type=_non_negative_float, default=None,
        help="seconds to wait for the processes' L1 answers (default: their "
        "longest publishing period plus 1 s; 0: do not ask)",
    )  # fmt: skip
    inspect.set_defaults(handler=run_inspect)
    keys = commands.add_parser(
        "keys",
        help="list cached keys (SCAN, never KEYS)",
        description="Lists up to --limit keys of prefix:version: in Redis, "
        "relative (as cache.get takes them), with SCAN on every primary.",
    )
    _common(keys)
    keys.add_argument("--namespace", default=None, help="only this namespace's keys")
    keys.add_argument("--limit", type=_positive_int, default=20, help="(default 20)")
    keys.set_defaults(handler=run_keys)
    return [stats, inspect, keys]


def _cache(args: argparse.Namespace, command: str) -> Cache | None:
    try:
        url = REDIS.resolve(args)
        if url is None:
            raise UsageError(
                f"say where Redis is: --redis-file PATH, {REDIS.variable} or --redis"
            )
        return Cache(url, prefix=args.prefix, version=args.version, timeout=_TIMEOUT)
    except (UsageError, ValueError, TypeError) as exc:
        print(f"freshcache {command}: {exc}", file=sys.stderr)
        return None


def _failed(command: str, exc: StoreError) -> int:
    print(f"freshcache {command}: Redis: {exc}", file=sys.stderr)
    return 1


# -- stats ------------------------------------------------------------------


def _read(cache: Cache, sample: float) -> tuple[LiveStats, dict[str, float | None]]:
    """The live stats, and each queue's throughput over ``sample`` seconds."""
    before = cache.live.queues()
    started = time.monotonic()
    time.sleep(sample)
    live = cache.live.stats()
    speed = fmt.throughput(before, live.queues, time.monotonic() - started)
    return live, speed


def run_stats(args: argparse.Namespace) -> int:
    cache = _cache(args, "stats")
    if cache is None:
        return 2
    with cache:
        try:
            if args.json:
                live, speed = _read(cache, min(args.interval, 1.0))
                print(json.dumps(fmt.stats_json(live, speed), indent=2))
                return 0
            try:
                from rich.console import Console
            except ImportError:
                print(
                    "freshcache stats: the table needs rich; install it with\n"
                    "    pip install 'freshcache[cli]'\n(or use --json)",
                    file=sys.stderr,
                )
                return 1
            console = Console(width=None if sys.stdout.isatty() else 200)
            if args.once:
                live, speed = _read(cache, min(args.interval, 1.0))
                console.print(render(live, speed))
                return 0
            return _follow(cache, console, args.interval)
        except StoreError as exc:
            return _failed("stats", exc)


def _follow(cache: Cache, console: Any, interval: float) -> int:
    from rich.live import Live

    before: Mapping[str, WriteBehindStats] = cache.live.queues()
    then = time.monotonic()
    live = cache.live.stats()
    with Live(render(live, {}), console=console, auto_refresh=False) as screen:
        if not console.is_terminal:  # a file or a pipe gets the last table only
            print(
                f"freshcache stats: reading every {interval:g} s; the table is "
                "printed when Ctrl-C stops it (stdout is not a terminal)",
                file=sys.stderr,
                flush=True,
            )
        while True:
            time.sleep(interval)
            try:
                live = cache.live.stats()
            except StoreError as exc:
                console.print(f"[red]Redis: {exc}[/red]")
                continue
            now = time.monotonic()
            speed = fmt.throughput(before, live.queues, now - then)
            before, then = live.queues, now
            screen.update(render(live, speed), refresh=True)


def render(live: LiveStats, speed: dict[str, float | None]) -> Any:
    """The rich renderable of one reading (tables, one under the other)."""
    from rich.console import Group
    from rich.table import Table

    def table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
        t = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            t.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in rows:
            t.add_row(*row)
        return t

    parts: list[Any] = []
    processes = table(
        "processes", fmt.PROCESS_COLUMNS,
        [fmt.process_row(p, live.read_at) for p in live.processes],
    )  # fmt: skip
    processes.add_section()
    processes.add_row(*fmt.total_row(live), style="bold")
    parts.append(processes)
    if live.total.namespaces:
        parts.append(
            table("namespaces (all processes)", fmt.NAMESPACE_COLUMNS,
                  fmt.namespace_rows(live.total))
        )  # fmt: skip
    if live.total.errors:
        parts.append(
            table("errors by class", ("class", "total", "processes"),
                  fmt.error_rows(live))
        )  # fmt: skip
    if live.queues:
        parts.append(
            table("write-behind", fmt.QUEUE_COLUMNS, fmt.queue_rows(live.queues, speed))
        )
    if live.unreadable:
        parts.append(f"unreadable snapshots: {', '.join(live.unreadable)}")
    if not live.processes:
        parts.append(
            "no process publishes its stats under this prefix "
            "(Cache(..., publish_stats=5.0))"
        )
    return Group(*parts)


# -- inspect and keys ---------------------------------------------------------


def run_inspect(args: argparse.Namespace) -> int:
    cache = _cache(args, "inspect")
    if cache is None:
        return 2
    with cache:
        try:
            wait = args.wait
            if wait is None:
                found, _ = cache.live.processes()
                wait = max((p.period for p in found), default=-1.0) + 1.0
                wait = max(0.0, wait)
            info: KeyInfo = cache.live.inspect(args.key, wait=wait)
        except (TypeError, ValueError) as exc:  # a key cache.get would refuse
            print(f"freshcache inspect: {exc}", file=sys.stderr)
            return 2
        except StoreError as exc:
            return _failed("inspect", exc)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print("\n".join(fmt.inspect_lines(info)))
    return 1 if info.error is not None else 0


def run_keys(args: argparse.Namespace) -> int:
    cache = _cache(args, "keys")
    if cache is None:
        return 2
    with cache:
        try:
            found = cache.live.keys(args.namespace, limit=args.limit)
        except StoreError as exc:
            return _failed("keys", exc)
    if args.json:
        print(json.dumps(found))
    else:
        for key in found:
            print(key)
    return 0
