"""The demo's results: one table of the three phases and a summary line
(which the tests parse)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from freshcache.cli._demo_db import Phase, check, p50_p99

if TYPE_CHECKING:
    from freshcache.cli._demo_options import DemoOptions

MODES = {
    "db": "database only",
    "naive": "naive cache-aside",
    "fresh": "with freshcache",
}


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 'es' if noun[-1] == 's' else 's'}"


def report(
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
    backend += f", {plural(spread, 'process')}" if spread > 1 else ""
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
        plural(n, noun)
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
