"""``python -m bench stampede``: thundering herds (targets P4 and P5 of
docs/performance.md), freshcache side by side with the usual ways of protecting a
database, in one run, on one machine, around one loader.

**The loader** ("the database"): INCR a counter in Redis (so every process
sees every call), then sleep 50 ms (``time.sleep`` in threads,
``asyncio.sleep`` in tasks). A real PostgreSQL ``SELECT pg_sleep(0.05)`` is
not used: 500 concurrent callers would need 500 connections (PostgreSQL's
default ``max_connections`` is 100) or a pool whose queue would be what is
measured, and the naive approaches really do send one query per caller.

**P4, stampede on a cold key**: 2 spawned processes x 250 callers (threads
for sync approaches, asyncio tasks for async ones) call the getter of one
cold key at once (a ``multiprocessing`` barrier across the processes, a
thread barrier or an event inside each). Figures: loader calls (target:
exactly 1), each call's latency from its own start (p50, p99, max; target
p99 at most loader + 5 ms async, + 10 ms threads).

**P5, a hot key across its expiry**: worker 0 fills the key (not counted),
then 2 processes x ``--p5-callers`` callers call the getter in a loop (a
pause of ``--p5-interval`` between calls) from the fill until ``ttl + 1 s``
after it, so the run spans the key's (soft) expiry. Figures: database calls
during the run (target: 1 refresh), callers that found no value (known for
freshcache, from its stats, and for the two hand-written approaches),
calls slower than half the loader time (25 ms) within 0.5 s of the expiry
(a caller that waits on a load takes about that long; scheduling noise on a
busy machine can also), p99 of calls more than 0.5 s before the expiry
("plain hits") and p99 within 0.5 s of it ("across the expiry"), and their
ratio (target at most 1.2x). The loader starts are plotted per 50 ms bin,
as calls per second, around the expiry (``--plot``).

Redis keys live under a per-run prefix (``fcherd<pid>``) in the given
database and are removed after every job (SCAN + UNLINK of that prefix; the
lease keys begin with ``{``, so both patterns are scanned). Never FLUSHDB.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._herd_worker import Job, Report
from bench._meta import git_commit, version_of

PROCESSES = 2
LOADER_S = 0.05
P4_CALLERS = 250
P4_SLACK = {"async": 0.005, "sync": 0.010}  # P4: p99 <= loader + this
P5_RATIO = 1.2
P5_WINDOW = 0.5  # seconds either side of the expiry: "across the expiry"
P5_AFTER = 1.0  # seconds the P5 load goes on after the expiry (< the next one)
SLOW = LOADER_S / 2  # a call this slow probably waited on a load
REPORT_TIMEOUT = 180.0

P4_ROWS = [
    "naive",
    "seed-lock",
    "dogpile",
    "fc-sync",
    "fc-sync-l2",
    "fc-sync-cold",
    "naive-async",
    "cashews",
    "aiocache",
    "fc-async",
    "fc-async-l2",
    "fc-async-cold",
]
P5_ROWS = [
    "naive",
    "seed-lock",
    "dogpile",
    "fc-sync-l2",
    "fc-sync",
    "fc-sync-xfetch",
    "naive-async",
    "cashews",
    "aiocache",
    "fc-async-l2",
    "fc-async",
    "fc-async-xfetch",
]

ctx = multiprocessing.get_context("spawn")


@dataclass
class Outcome:
    """One approach in one scenario: what all its workers saw."""

    approach: str
    name: str
    mode: str
    scenario: str
    loader_calls: int
    calls: list[tuple[float, float, int]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    by_process: dict[int, list[float]] = field(default_factory=dict)  # latencies
    filled_at: float = 0.0
    ttl: float = 0.0
    elapsed: float = 0.0
    failure: str | None = None


# -- running one job ------------------------------------------------------------


def _cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            batch = list(client.scan_iter(match=pattern, count=1000))
            for i in range(0, len(batch), 500):
                client.unlink(*batch[i : i + 500])
    finally:
        client.close()


def run_job(
    approach: str,
    scenario: str,
    *,
    url: str,
    prefix: str,
    callers: int,
    ttl: float,
    stale: float,
    interval: float = 0.0,
) -> Outcome:
    """Spawn the workers of one approach, collect their reports, count the
    loader calls, and remove the job's keys."""
    import redis

    from bench import _herd_worker
    from bench._herd_approaches import approaches

    spec = approaches()[approach]
    counter = f"{prefix}:loader-calls"
    barrier = ctx.Barrier(PROCESSES)
    filled = ctx.Value("d", 0.0)
    results = ctx.Queue()
    jobs = [
        Job(
            approach,
            scenario,
            i,
            url,
            prefix,
            counter,
            LOADER_S,
            callers,
            ttl,
            stale,
            interval,
            ttl + P5_AFTER,
        )
        for i in range(PROCESSES)
    ]
    processes = [
        ctx.Process(target=_herd_worker.main, args=(job, barrier, filled, results))
        for job in jobs
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    reports: dict[int, Report] = {}
    failure = None
    try:
        while len(reports) < PROCESSES:
            try:
                report: Report = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead or time.monotonic() - started > REPORT_TIMEOUT:
                    failure = f"workers died or hung: {[p.exitcode for p in processes]}"
                    break
                continue
            reports[report.index] = report
    finally:
        for process in processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
    elapsed = time.monotonic() - started
    client = redis.Redis.from_url(url)
    try:
        calls = int(client.get(counter) or 0)
    finally:
        client.close()
    _cleanup(url, prefix)
    failures = [r.failure for r in reports.values() if r.failure]
    outcome = Outcome(
        approach,
        spec.name,
        spec.mode,
        scenario,
        calls,
        ttl=ttl,
        elapsed=elapsed,
        failure=failure or ("\n".join(f for f in failures if f) or None),
    )
    for report in reports.values():
        outcome.calls += report.calls
        outcome.by_process[report.index] = [lat for _, lat, _ in report.calls]
        outcome.loads += report.loads
        for name, count in report.extra.items():
            outcome.extra[name] = outcome.extra.get(name, 0) + count
        outcome.filled_at = max(outcome.filled_at, report.filled_at)
    if scenario == "p5":
        outcome.loader_calls -= 1  # the warm fill
    return outcome


# -- figures --------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def p4_figures(outcome: Outcome) -> dict[str, Any]:
    latencies = [lat for _, lat, _ in outcome.calls]
    values = {n for *_, n in outcome.calls}
    limit = LOADER_S + P4_SLACK[outcome.mode]
    p99 = _pct(latencies, 99)
    meets = outcome.loader_calls == 1 and p99 <= limit
    return {
        "approach": outcome.approach,
        "name": outcome.name,
        "mode": outcome.mode,
        "callers": len(latencies),
        "loader_calls": outcome.loader_calls,
        "distinct_values": len(values),
        "p50": _pct(latencies, 50),
        "p99": p99,
        "max": max(latencies, default=float("nan")),
        "p99_over_loader": p99 - LOADER_S,
        "p99_by_process": {
            i: _pct(lats, 99) for i, lats in sorted(outcome.by_process.items())
        },
        "target_p99": limit,
        "verdict": "meets" if meets else "misses",
        "extra": outcome.extra,
        "failure": outcome.failure,
    }


def p5_figures(outcome: Outcome) -> dict[str, Any]:
    expiry = outcome.filled_at + outcome.ttl
    plain = [lat for t0, lat, _ in outcome.calls if t0 < expiry - P5_WINDOW]
    across = [lat for t0, lat, _ in outcome.calls if abs(t0 - expiry) <= P5_WINDOW]
    slow = sum(1 for lat in across if lat >= SLOW)
    slow_plain = sum(1 for lat in plain if lat >= SLOW)  # the noise floor
    p99_plain = _pct(plain, 99)
    p99_across = _pct(across, 99)
    ratio = p99_across / p99_plain if p99_plain > 0 else float("nan")
    known = outcome.approach.startswith(("fc-", "naive", "seed"))
    no_value = outcome.extra.get("found_no_value", 0) if known else None
    meets = (
        outcome.loader_calls == 1
        and ratio <= P5_RATIO
        and not no_value  # 0, or not known (then the slow calls tell)
        and slow == 0
    )
    return {
        "approach": outcome.approach,
        "name": outcome.name,
        "mode": outcome.mode,
        "calls": len(outcome.calls),
        "calls_plain": len(plain),
        "calls_across": len(across),
        "db_calls": outcome.loader_calls,
        "found_no_value": no_value,
        "slow_across": slow,
        "slow_plain": slow_plain,
        "p99_plain": p99_plain,
        "p99_across": p99_across,
        "ratio": ratio,
        "verdict": "meets" if meets else "misses",
        "loads_rel": sorted(t - expiry for t in outcome.loads),
        "extra": outcome.extra,
        "failure": outcome.failure,
    }


# -- output ---------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    if abs(seconds) < 0.001:
        return f"{seconds * 1e6:,.0f} us"
    return f"{seconds * 1000:,.1f} ms"


def p4_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = [
        "approach",
        "mode",
        "loader calls",
        "p50",
        "p99",
        "max",
        "p99 - loader",
        "target p99",
        "verdict",
    ]
    body = []
    for r in rows:
        name = f"**{r['name']}**" if r["approach"].startswith("fc-") else r["name"]
        note = " (FAILED: see JSON)" if r.get("failure") else ""
        capped = r["extra"].get("capped")
        if capped:
            note += f" ({capped} capped recursions)"
        body.append(
            [
                name + note,
                r["mode"],
                str(r["loader_calls"]),
                _ms(r["p50"]),
                _ms(r["p99"]),
                _ms(r["max"]),
                "+" + _ms(r["p99_over_loader"]),
                "<= " + _ms(r["target_p99"]),
                r["verdict"],
            ]
        )
    return head, body


def p5_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = [
        "approach",
        "mode",
        "DB calls",
        "found no value",
        "calls >= 25 ms near expiry",
        "same, plain hits (noise)",
        "p99 plain hits",
        "p99 across expiry",
        "ratio",
        "verdict",
    ]
    body = []
    for r in rows:
        name = f"**{r['name']}**" if r["approach"].startswith("fc-") else r["name"]
        note = " (FAILED: see JSON)" if r.get("failure") else ""
        no_value = "n/a" if r["found_no_value"] is None else str(r["found_no_value"])
        body.append(
            [
                name + note,
                r["mode"],
                str(r["db_calls"]),
                no_value,
                f"{r['slow_across']} of {r['calls_across']}",
                f"{r['slow_plain']} of {r['calls_plain']}",
                _ms(r["p99_plain"]),
                _ms(r["p99_across"]),
                f"{r['ratio']:.2f}x",
                r["verdict"],
            ]
        )
    return head, body


def markdown(head: list[str], body: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def plain(head: list[str], body: list[list[str]]) -> str:
    rows = [head] + [[c.replace("**", "") for c in row] for row in body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Database calls per second (50 ms bins) around the expiry: one line per
    approach, each in its own strip (sync on the left, async on the right), so
    that approaches making the same single call do not hide each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bin_s = 0.05
    lo, hi = -1.0, P5_AFTER
    edges = [lo + i * bin_s for i in range(round((hi - lo) / bin_s) + 1)]
    xs = [e + bin_s / 2 for e in edges[:-1]]
    columns = [[r for r in rows if r["mode"] == mode] for mode in ("sync", "async")]
    height = max(1, max(len(c) for c in columns))
    fig, axes = plt.subplots(
        height, 2, figsize=(13, 1.25 * height + 1.2), sharex=True, sharey=True,
        squeeze=False,
    )  # fmt: skip
    peak = 1.0
    for col, (mode, column) in enumerate(zip(("sync", "async"), columns, strict=True)):
        for row in range(height):
            ax = axes[row][col]
            ax.axvline(0, color="grey", linewidth=0.8)
            ax.grid(alpha=0.3)
            if row >= len(column):
                ax.set_visible(False)
                continue
            r = column[row]
            counts = [0] * len(xs)
            for t in r["loads_rel"]:
                i = int((t - lo) // bin_s)
                if 0 <= i < len(counts):
                    counts[i] += 1
            rates = [c / bin_s for c in counts]
            peak = max(peak, *rates)
            ours = r["approach"].startswith("fc-")
            ax.fill_between(xs, rates, step="mid", alpha=0.25,
                            color="tab:blue" if ours else "tab:red")  # fmt: skip
            ax.step(xs, rates, where="mid", linewidth=1.6,
                    color="tab:blue" if ours else "tab:red")  # fmt: skip
            ax.text(0.01, 0.92, f"{r['name']}: {r['db_calls']} DB calls",
                    transform=ax.transAxes, fontsize=8, va="top",
                    fontweight="bold" if ours else "normal")  # fmt: skip
        axes[0][col].set_title(
            f"{mode} ({'threads' if mode == 'sync' else 'asyncio tasks'})"
        )
        axes[height - 1][col].set_xlabel("seconds from the key's (soft) expiry")
    for row in range(height):
        axes[row][0].set_ylabel("calls/s", fontsize=8)
    axes[0][0].set_ylim(0, peak * 1.35)
    fig.suptitle(title + "\ndatabase calls per second in 50 ms bins", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def metadata(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        server = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_server": server,
        "git_commit": git_commit(),
        "versions": {
            d: version_of(d)
            for d in ("freshcache", "redis", "cashews", "aiocache", "dogpile.cache")
        },
    }


def run(
    *,
    quick: bool,
    redis_url: str,
    json_path: str | None,
    plot_path: str | None,
    only: Sequence[str] | None,
    scenarios: Sequence[str],
    callers: int,
    p5_callers: int,
    p5_interval: float,
    ttl: float | None,
    markdown_out: bool,
) -> int:
    started = time.monotonic()
    p5_ttl = ttl if ttl is not None else (1.0 if quick else 2.0)
    base = f"fcherd{os.getpid()}"
    meta = metadata(redis_url) | {
        "command": " ".join(["python -m bench stampede", *sys.argv[2:]]),
        "quick": quick,
        "p4_callers": callers,
        "p5_callers": p5_callers,
        "p5_interval": p5_interval,
        "p5_ttl": p5_ttl,
        "processes": PROCESSES,
        "loader_s": LOADER_S,
    }
    out: dict[str, Any] = {"meta": meta, "p4": [], "p5": []}
    n = 0
    if "p4" in scenarios:
        for approach in P4_ROWS:
            if only and approach not in only:
                continue
            n += 1
            print(f"P4 {approach} ...", file=sys.stderr, flush=True)
            outcome = run_job(
                approach,
                "p4",
                url=redis_url,
                prefix=f"{base}j{n}",
                callers=callers,
                ttl=60,
                stale=0,
            )
            out["p4"].append(p4_figures(outcome))
    if "p5" in scenarios:
        for approach in P5_ROWS:
            if only and approach not in only:
                continue
            n += 1
            print(f"P5 {approach} ...", file=sys.stderr, flush=True)
            outcome = run_job(
                approach,
                "p5",
                url=redis_url,
                prefix=f"{base}j{n}",
                callers=p5_callers,
                ttl=p5_ttl,
                stale=60,
                interval=p5_interval,
            )
            out["p5"].append(p5_figures(outcome))
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    render = markdown if markdown_out else plain
    print(
        f"\nRun of {meta['date']}, Python {meta['python']}, "
        f"{meta['cpus']} shared CPUs, "
        f"Redis {meta['redis_server']}, commit {meta['git_commit']}, "
        f"{meta['elapsed_s']} s. Loader: INCR + sleep {LOADER_S * 1000:.0f} ms.\n"
    )
    if out["p4"]:
        print(f"P4: {PROCESSES} processes x {callers} callers on one cold key\n")
        print(render(*p4_table(out["p4"])))
        print()
    if out["p5"]:
        print(
            f"P5: {PROCESSES} processes x {p5_callers} callers in a loop "
            f"(pause {p5_interval * 1000:.0f} ms), key (soft) TTL {p5_ttl:g} s, "
            f"expiry window +-{P5_WINDOW:g} s\n"
        )
        print(render(*p5_table(out["p5"])))
        print()
    failures = [r for r in out["p4"] + out["p5"] if r.get("failure")]
    for r in failures:
        print(f"FAILED {r['approach']}:\n{r['failure']}", file=sys.stderr)
    if plot_path and out["p5"]:
        plot(
            out["p5"],
            plot_path,
            f"Hot key across its expiry: {PROCESSES} processes x {p5_callers} callers, "
            f"50 ms loader (run of {meta['date']})",
        )
        print(f"plot: {plot_path}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, default=str)
        print(f"json: {json_path}")
    return 1 if failures else 0


def spread(paths: Sequence[str]) -> str:
    """Markdown: the key figures of several ``--json`` dumps side by side
    (one value per run, in the order given)."""
    runs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))

    def cells(section: str, approach: str, fmt: Any) -> str:
        found = [
            next((r for r in run[section] if r["approach"] == approach), None)
            for run in runs
        ]
        return " / ".join("-" if r is None else fmt(r) for r in found)

    dates = ", ".join(run["meta"]["date"][11:19] for run in runs)
    out = [f"Runs at {dates} (one value per run, in that order).", ""]
    names = {r["approach"]: (r["name"], r["mode"]) for run in runs for r in run["p4"]}
    if names:
        out += [
            "| P4 | mode | loader calls "
            "| p99 - loader (target +5 ms async, +10 ms sync) |",
            "| --- | --- | --- | --- |",
        ]
        for approach, (name, mode) in names.items():
            calls = cells("p4", approach, lambda r: str(r["loader_calls"]))
            over = cells("p4", approach, lambda r: "+" + _ms(r["p99_over_loader"]))
            out.append(f"| {name} | {mode} | {calls} | {over} |")
        out.append("")
    names = {r["approach"]: (r["name"], r["mode"]) for run in runs for r in run["p5"]}
    if names:
        out += [
            "| P5 | mode | DB calls | found no value | calls >= 25 ms near expiry "
            "| p99 across / plain |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for approach, (name, mode) in names.items():
            calls = cells("p5", approach, lambda r: str(r["db_calls"]))
            none = cells(
                "p5",
                approach,
                lambda r: (
                    "n/a" if r["found_no_value"] is None else str(r["found_no_value"])
                ),
            )
            slow = cells("p5", approach, lambda r: str(r["slow_across"]))
            ratio = cells("p5", approach, lambda r: f"{r['ratio']:.2f}x")
            out.append(f"| {name} | {mode} | {calls} | {none} | {slow} | {ratio} |")
    return "\n".join(out)
