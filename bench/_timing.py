"""Timing helpers shared by the benchmarks.

The machine the project runs on has two shared, noisy cores, so nothing here
reports an absolute speed on its own: every figure is a ratio to a baseline
measured in the same run, with the libraries interleaved (round robin) so
that a burst of noise hits all of them alike.

Two estimators:

* in-process (nanoseconds per call): a tight loop of calls, unrolled ten
  times so the loop itself costs about 1/10 of a bytecode jump per call,
  repeated; the **best** repeat counts (noise only ever slows a loop down).
* round trips (tens of microseconds per call): every call timed on its own
  with ``perf_counter_ns``; the **median** counts (robust to the long tail a
  shared machine adds).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

UNROLL = 10

# -- in-process loops -------------------------------------------------------

SyncLoop = Callable[[int], float]  # run(n) -> seconds for n * UNROLL calls
AsyncLoop = Callable[[int], Awaitable[float]]


def sync_loop(fn: Callable[[Any], Any], arg: Any) -> SyncLoop:
    """``run(n)``: time ``n * UNROLL`` calls of ``fn(arg)``, in seconds."""
    body = "        fn(a0)\n" * UNROLL
    src = (
        "def run(n):\n"
        "    it = range(n)\n"
        "    t0 = perf()\n"
        "    for _ in it:\n"
        f"{body}"
        "    return perf() - t0\n"
    )
    scope: dict[str, Any] = {"fn": fn, "a0": arg, "perf": time.perf_counter}
    exec(src, scope)
    run: SyncLoop = scope["run"]
    return run


def async_loop(fn: Callable[[Any], Awaitable[Any]], arg: Any) -> AsyncLoop:
    """``await run(n)``: time ``n * UNROLL`` awaits of ``fn(arg)``, in seconds."""
    body = "        await fn(a0)\n" * UNROLL
    src = (
        "async def run(n):\n"
        "    it = range(n)\n"
        "    t0 = perf()\n"
        "    for _ in it:\n"
        f"{body}"
        "    return perf() - t0\n"
    )
    scope: dict[str, Any] = {"fn": fn, "a0": arg, "perf": time.perf_counter}
    exec(src, scope)
    run: AsyncLoop = scope["run"]
    return run


def autorange(run: SyncLoop, min_seconds: float) -> int:
    """The smallest power-of-two ``n`` whose loop takes at least ``min_seconds``."""
    n = 1
    while True:
        if run(n) >= min_seconds or n >= 1 << 24:
            return n
        n *= 2


async def aautorange(run: AsyncLoop, min_seconds: float) -> int:
    n = 1
    while True:
        if await run(n) >= min_seconds or n >= 1 << 24:
            return n
        n *= 2


def best_per_call(
    loops: dict[str, SyncLoop], *, repeats: int, min_seconds: float
) -> dict[str, float]:
    """Seconds per call for each loop: best of ``repeats``, interleaved."""
    sizes = {name: autorange(run, min_seconds) for name, run in loops.items()}
    best = {name: float("inf") for name in loops}
    for _ in range(repeats):
        for name, run in loops.items():
            n = sizes[name]
            best[name] = min(best[name], run(n) / (n * UNROLL))
    return best


async def abest_per_call(
    loops: dict[str, AsyncLoop], *, repeats: int, min_seconds: float
) -> dict[str, float]:
    sizes = {name: await aautorange(run, min_seconds) for name, run in loops.items()}
    best = {name: float("inf") for name in loops}
    for _ in range(repeats):
        for name, run in loops.items():
            n = sizes[name]
            best[name] = min(best[name], await run(n) / (n * UNROLL))
    return best


# -- round trips -------------------------------------------------------------


@dataclass
class Samples:
    """Per-call durations in nanoseconds."""

    ns: list[int] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        data = sorted(self.ns)
        if not data:
            return float("nan")
        index = min(len(data) - 1, max(0, round(q * (len(data) - 1))))
        return float(data[index])

    @property
    def median(self) -> float:
        return float(statistics.median(self.ns)) if self.ns else float("nan")


def sample_calls(
    calls: dict[str, Callable[[Any], Any]], arg: Any, *, count: int, block: int = 50
) -> dict[str, Samples]:
    """Time ``count`` calls of each function one by one, interleaved in blocks."""
    perf = time.perf_counter_ns
    out = {name: Samples() for name in calls}
    done = 0
    while done < count:
        step = min(block, count - done)
        for name, fn in calls.items():
            append = out[name].ns.append
            for _ in range(step):
                t0 = perf()
                fn(arg)
                append(perf() - t0)
        done += step
    return out


async def asample_calls(
    calls: dict[str, Callable[[Any], Awaitable[Any]]],
    arg: Any,
    *,
    count: int,
    block: int = 50,
) -> dict[str, Samples]:
    perf = time.perf_counter_ns
    out = {name: Samples() for name in calls}
    done = 0
    while done < count:
        step = min(block, count - done)
        for name, fn in calls.items():
            append = out[name].ns.append
            for _ in range(step):
                t0 = perf()
                await fn(arg)
                append(perf() - t0)
        done += step
    return out


async def throughput(
    fn: Callable[[Any], Awaitable[Any]], args: Sequence[Any], *, tasks: int, total: int
) -> float:
    """Operations per second of ``total`` awaits of ``fn`` spread over ``tasks`` tasks.

    Task ``i`` awaits ``fn(args[i % len(args)])`` over and over.
    """
    per_task, extra = divmod(total, tasks)

    async def worker(arg: Any, n: int) -> None:
        for _ in range(n):
            await fn(arg)

    t0 = time.perf_counter()
    await asyncio.gather(
        *(worker(args[i % len(args)], per_task + (i < extra)) for i in range(tasks))
    )
    return total / (time.perf_counter() - t0)


# -- results -----------------------------------------------------------------


@dataclass
class Row:
    library: str
    seconds: float | None  # per call (or per op for throughput rows: 1 / ops_per_s)
    ratio: float | None = None
    target: str = ""
    verdict: str = ""
    note: str = ""
    baseline: bool = False
    ops_per_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    id: str
    title: str
    baseline: str
    estimator: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    throughput: bool = False
    label: str = "library"  # what a row names (its first column's header)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt_time(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "n/a"
    ns = seconds * 1e9
    if ns < 10_000:
        return f"{ns:,.0f} ns"
    return f"{ns / 1000:,.1f} us"


def fmt_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def verdict(ratio: float | None, limit: float, *, at_least: bool = False) -> str:
    if ratio is None:
        return "n/a"
    ok = ratio >= limit if at_least else ratio <= limit
    return "meets" if ok else "MISSES"


def render(sections: Sequence[Section], *, plain: bool = False) -> None:
    """Print one table per section (rich when available, else plain text)."""
    try:
        if plain:
            raise ImportError
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _render_plain(sections)
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    for section in sections:
        table = Table(title=f"{section.id}: {section.title}", title_justify="left")
        table.add_column(section.label)
        if section.throughput:
            table.add_column("ops/s", justify="right")
        table.add_column("per op", justify="right")
        table.add_column("ratio", justify="right")
        table.add_column("target", justify="right")
        table.add_column("verdict")
        table.add_column("note", overflow="fold")
        for row in section.rows:
            style = "bold" if row.library.startswith("freshcache") else None
            if row.verdict == "MISSES":
                verdict_cell = "[red]MISSES[/red]"
            elif row.verdict == "meets":
                verdict_cell = "[green]meets[/green]"
            else:
                verdict_cell = row.verdict
            cells = [row.library]
            if section.throughput:
                cells.append(
                    "n/a" if row.ops_per_s is None else f"{row.ops_per_s:,.0f}"
                )
            cells += [
                fmt_time(row.seconds),
                fmt_ratio(row.ratio),
                row.target,
                verdict_cell,
                row.note,
            ]
            table.add_row(*cells, style=style)
        console.print(table)
        console.print(f"  baseline: {section.baseline}; estimator: {section.estimator}")
        for note in section.notes:
            console.print(f"  note: {note}")
        console.print()


def _render_plain(sections: Sequence[Section]) -> None:
    for section in sections:
        print(f"{section.id}: {section.title}")
        header = [section.label] + (["ops/s"] if section.throughput else [])
        header += ["per op", "ratio", "target", "verdict", "note"]
        lines = [header]
        for row in section.rows:
            line = [row.library]
            if section.throughput:
                line.append("n/a" if row.ops_per_s is None else f"{row.ops_per_s:,.0f}")
            line += [
                fmt_time(row.seconds),
                fmt_ratio(row.ratio),
                row.target,
                row.verdict,
                row.note,
            ]
            lines.append(line)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            print(
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
            )
        print(f"  baseline: {section.baseline}; estimator: {section.estimator}")
        for note in section.notes:
            print(f"  note: {note}")
        print()


def write_json(path: str, meta: dict[str, Any], sections: Sequence[Section]) -> None:
    """``--json PATH``: the run's metadata and every section (``python -m
    bench report PATH`` prints them as Markdown)."""
    payload = {"meta": meta, "sections": [s.to_json() for s in sections]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, default=str)
    print(f"results written to {path}")


def markdown(sections: Sequence[dict[str, Any]]) -> str:
    """Markdown tables from the ``sections`` of a ``--json`` dump."""
    out: list[str] = []
    for section in sections:
        throughput_rows = section.get("throughput", False)
        out.append(f"#### {section['id']}: {section['title']}\n")
        header = [section.get("label", "library")]
        header += ["ops/s"] if throughput_rows else []
        header += ["per op", "ratio", "target", "verdict", "note"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(" --- " for _ in header) + "|")
        for row in section["rows"]:
            name = row["library"]
            if name.startswith("freshcache") and "diagnostic" not in name:
                name = f"**{name}**"
            cells = [name]
            if throughput_rows:
                ops = row.get("ops_per_s")
                cells.append("n/a" if ops is None else f"{ops:,.0f}")
            verdict_text = row["verdict"]
            if verdict_text in ("MISSES", "INVALID"):
                verdict_text = f"**{verdict_text}**"
            cells += [
                fmt_time(row["seconds"]),
                fmt_ratio(row["ratio"]),
                row["target"].replace("<=", "≤").replace(">=", "≥"),
                verdict_text,
                row["note"].replace("|", "/"),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            f"Baseline: {section['baseline']}. Estimator: {section['estimator']}."
        )
        for note in section.get("notes", []):
            out.append(f"Note: {note}.")
        out.append("")
    return "\n".join(out)
