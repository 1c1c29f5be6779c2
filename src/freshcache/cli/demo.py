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
phase (``_demo_hotkey``) shows a hot key expiring under steady load; with
Redis, a write-heavy one (``_demo_writes``) shows write-behind.

This module runs the phases; ``_demo_options`` holds the options,
``_demo_workers`` the workload and its processes, ``_demo_report`` the
results table.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from freshcache import Cache, FreshcacheError, UnsafeRedisError
from freshcache.cli import _demo_hotkey, _demo_naive
from freshcache.cli._demo_db import Database, Phase
from freshcache.cli._demo_options import DemoOptions
from freshcache.cli._demo_report import MODES, plural, report
from freshcache.cli._demo_workers import Pool


def _where_redis(url: str) -> str:
    """scheme, hosts and path, never the credentials: ``host:port/db`` for
    one Redis, ``redis+cluster://h1:p1,h2:p2/`` (or ``redis+sentinel://``)
    for several nodes."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("redis", "rediss", "unix") and "," not in hosts:
        return (
            f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
        )
    return f"{parts.scheme}://{hosts}{parts.path}"


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
    pool: Pool | None = None
    writes: Any = None  # the write-heavy phase's result (with Redis)
    phases: dict[str, Phase] = {}
    hot: list[_demo_hotkey.HotKeyRun] = []
    try:
        db = Database(options.postgres)
        with console.status(f"creating {options.users:,} users, {options.teams} teams"):
            db.setup(options.users, options.teams)
        with console.status(f"starting {plural(options.processes or 1, 'process')}"):
            pool = Pool(options, db.spec(), version)
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
    report(console, options, phases, [*labels, db.label, f"{labels[1]}; {db.where}"])
    _demo_hotkey.report(console, hot, options.readers)
    if writes is not None:
        from freshcache.cli import _demo_writes

        _demo_writes.report(console, writes)
    return 0
