"""What ``freshcache stats`` and ``freshcache inspect`` print: plain data
(the ``--json`` forms) and text, from the live view's typed results. Pure:
no Redis, no clock (the reading time comes with the data)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from freshcache import (
    CacheStats,
    KeyInfo,
    L1View,
    LiveStats,
    Lookups,
    ProcessStats,
    WriteBehindStats,
)


@dataclass(frozen=True)
class Throughput:
    """Entries a write-behind queue's workers applied per second, measured
    between two readings (None: one reading only)."""

    per_queue: Mapping[str, float | None]


def throughput(
    before: Mapping[str, WriteBehindStats],
    after: Mapping[str, WriteBehindStats],
    seconds: float,
) -> dict[str, float | None]:
    """Applied entries per second of each queue in ``after``, from the
    ``applied`` totals ``seconds`` apart (None when a queue was not in
    ``before``, or no time passed)."""
    out: dict[str, float | None] = {}
    for name, now in after.items():
        then = before.get(name)
        if then is None or seconds <= 0:
            out[name] = None
        else:
            out[name] = max(0, now.applied - then.applied) / seconds
    return out


def rate(lookups: Lookups) -> str:
    """A hit rate as a percentage, ``-`` before any lookup."""
    return f"{lookups.hit_rate:.1%}" if lookups.total else "-"


def millis(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds * 1000:.1f} ms"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def errors_text(errors: Mapping[str, int], top: int = 3) -> str:
    """``total (class n, class n, ...)``, the largest classes first."""
    count = sum(errors.values())
    if not count:
        return "0"
    largest = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    more = ", ..." if len(errors) > top else ""
    return f"{count} (" + ", ".join(f"{k} {v}" for k, v in largest) + more + ")"


def evictions(stats: CacheStats) -> int:
    return sum(stats.evictions.values())


PROCESS_COLUMNS = (
    "process", "up", "lookups", "hit rate", "L1 hit", "Redis hit", "loads",
    "evictions", "errors", "bus lag", "watermark age", "queued inval.",
    "L1 entries",
)  # fmt: skip


def process_row(p: ProcessStats, now: float) -> list[str]:
    s = p.stats
    return [
        p.process,
        duration(now - p.started_at),
        str(s.lookups.total),
        rate(s.lookups),
        rate(s.l1),
        rate(s.redis),
        str(s.loads),
        str(evictions(s)),
        errors_text(s.errors),
        millis(p.bus_lag),
        millis(p.watermark_age),
        str(s.pending_invalidations),
        "-" if p.l1_entries is None else str(p.l1_entries),
    ]


def total_row(live: LiveStats) -> list[str]:
    s = live.total
    lags = [p.bus_lag for p in live.processes if p.bus_lag is not None]
    ages = [p.watermark_age for p in live.processes if p.watermark_age is not None]
    entries = [p.l1_entries for p in live.processes if p.l1_entries is not None]
    return [
        f"total ({len(live.processes)} process"
        f"{'' if len(live.processes) == 1 else 'es'})",
        "",
        str(s.lookups.total),
        rate(s.lookups),
        rate(s.l1),
        rate(s.redis),
        str(s.loads),
        str(evictions(s)),
        errors_text(s.errors),
        millis(max(lags)) if lags else "-",  # the worst process
        millis(max(ages)) if ages else "-",
        str(s.pending_invalidations),
        str(sum(entries)) if entries else "-",
    ]


NAMESPACE_COLUMNS = ("namespace", "lookups", "hit rate", "L1 hit", "Redis hit")


def namespace_rows(stats: CacheStats) -> list[list[str]]:
    return [
        [ns, str(s.lookups.total), rate(s.lookups), rate(s.l1), rate(s.redis)]
        for ns, s in stats.namespaces.items()
    ]


QUEUE_COLUMNS = (
    "write-behind queue", "backlog", "pending", "lag", "applied", "applied/s",
    "redelivered", "dead-lettered",
)  # fmt: skip


def queue_rows(
    queues: Mapping[str, WriteBehindStats], per_second: Mapping[str, float | None]
) -> list[list[str]]:
    rows = []
    for name, q in queues.items():
        speed = per_second.get(name)
        rows.append([
            name, str(q.backlog), str(q.pending), f"{q.lag:.2f} s", str(q.applied),
            "-" if speed is None else f"{speed:.1f}", str(q.redelivered),
            str(q.dead_lettered),
        ])  # fmt: skip
    return rows


def error_rows(live: LiveStats) -> list[list[str]]:
    """Errors by class: the total, then each process's count."""
    rows = []
    for name, n in sorted(live.total.errors.items(), key=lambda kv: (-kv[1], kv[0])):
        each = ", ".join(
            f"{p.process} {p.stats.errors[name]}"
            for p in live.processes
            if p.stats.errors.get(name)
        )
        rows.append([name, str(n), each])
    return rows


def stats_json(
    live: LiveStats, per_second: Mapping[str, float | None]
) -> dict[str, Any]:
    """The ``--json`` form of ``freshcache stats``."""
    return {
        "read_at": live.read_at,
        "processes": [
            {
                "process": p.process,
                "started_at": p.started_at,
                "published_at": p.published_at,
                "library_version": p.library_version,
                "head": p.head,
                "period": p.period,
                "l1_entries": p.l1_entries,
                "bus_connected": p.bus_connected,
                "bus_lag": p.bus_lag,
                "watermark_age": p.watermark_age,
                "stats": p.stats.to_dict(latency=False),
            }
            for p in live.processes
        ],
        "total": live.total.to_dict(latency=False),
        "queues": {
            name: {
                "backlog": q.backlog,
                "pending": q.pending,
                "lag": q.lag,
                "applied": q.applied,
                "applied_per_second": per_second.get(name),
                "redelivered": q.redelivered,
                "dead_lettered": q.dead_lettered,
            }
            for name, q in live.queues.items()
        },
        "unreadable": list(live.unreadable),
    }


# -- inspect ----------------------------------------------------------------


def when(at: float | None, now: float) -> str:
    """A time and its distance from ``now``: ``2026-12-06 15:35:51.418 UTC
    (3.2 s ago)``; ``never`` for None."""
    if at is None:
        return "never"
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    delta = at - now
    if delta >= 0:
        return f"{text} (in {delta:.1f} s)"
    return f"{text} ({-delta:.1f} s ago)"


def view_text(view: L1View, now: float) -> str:
    if view.error is not None:
        return view.error
    if not view.present:
        return "not held"
    state = "fresh" if view.fresh else "stale"
    expires = "never" if view.expires_in is None else f"in {view.expires_in:.1f} s"
    tags = f", tags {', '.join(view.tags)}" if view.tags else ""
    return (
        f"held, {state}, created {when(view.created_at, now)}, fresh until "
        f"{when(view.fresh_until, now)}, dropped {expires}{tags}"
    )


def inspect_lines(info: KeyInfo) -> list[str]:
    """``freshcache inspect``'s text (never the value)."""
    now = info.read_at
    version = "?" if info.namespace_version is None else str(info.namespace_version)
    lines = [
        f"key            {info.key}",
        f"redis key      {info.full_key}  (namespace {info.namespace}, "
        f"version {version})",
    ]
    if info.error is not None:
        return [*lines, f"error          {info.error}"]
    if not info.in_redis:
        lines.append("in redis       no")
    else:
        ttl = (
            "no expiry"
            if info.redis_ttl is None
            else f"expires in {info.redis_ttl:.1f} s"
        )
        lines.append(f"in redis       yes, {ttl}")
        h = info.header
        if h is None:
            lines.append("envelope       unreadable (not a freshcache envelope)")
        else:
            lines += [
                f"envelope       {h.codec}, {h.size} bytes, "
                f"{'compressed' if h.compressed else 'not compressed'}, "
                f"check {h.check}",
                f"  created      {when(h.created_at, now)}",
                f"  fresh until  {when(h.fresh_until, now)}",
                "  stale until  "
                + ("none" if h.stale_until is None else when(h.stale_until, now)),
                f"  recompute    {h.recompute_seconds * 1000:.2f} ms",
            ]
        if info.undecodable is not None:
            lines.append(
                f"undecodable    {info.undecodable} (as this reader is configured: "
                "a cache with another serializer or secret may read it)"
            )
        lines.append(f"tags           {', '.join(info.tags) if info.tags else 'none'}")
    if info.lease_holder is None:
        lines.append("fill lease     none")
    else:
        age = "" if info.lease_age is None else f" for {info.lease_age:.1f} s"
        left = "" if info.lease_ttl is None else f", expires in {info.lease_ttl:.1f} s"
        lines.append(f"fill lease     held by {info.lease_holder}{age}{left}")
    if info.write_pending is None:
        lines.append("write-behind   nothing pending")
    else:
        age = (
            "" if info.write_pending_age is None
            else f", queued {info.write_pending_age:.1f} s ago"
        )  # fmt: skip
        lines.append(f"write-behind   write {info.write_pending} pending{age}")
    if info.l1 is not None:
        lines.append(f"L1 here        {view_text(info.l1, now)}")
    for process, view in info.processes.items():
        lines.append(f"L1 {process}  {view_text(view, now)}")
    return lines
