"""``python -m bench coherence``: how fast an invalidation reaches another
process's L1 (target P7: p99 under 5 ms on loopback; docs/performance.md).

Two processes on one machine: A (this one) and B (a child, ``spawn``
context), each with ``Cache(redis_url, l1=L1(ttl=30))`` on the same prefix.
Per round:

1. A stores a new value under one key and tells B (a ``multiprocessing``
   pipe) how many bus messages it has sent so far.
2. B waits until its bus has received them all (so that A's ``set`` message
   cannot drop B's L1 later), reads the key twice (the second read must be
   an L1 hit of the new value), says "ready", and spins on ``cache.get(key)``
   with ``time.sleep(0)`` between polls (B shares the machine's cores with A).
3. A waits a random 0.5-2 ms (so that B is spinning), calls
   ``cache.invalidate(key)`` and notes ``time.monotonic()`` before and after.
4. B notes ``time.monotonic()`` as soon as a read no longer returns the old
   value and sends it back.

Latency = B's time - the time A's ``invalidate`` returned. ``monotonic``
is ``CLOCK_MONOTONIC``, one clock for the whole machine on Linux, so times
from the two processes compare directly. B may notice before A's call has
returned (the PUBLISH reaches B while its reply travels back to A): such a
latency is negative and kept as is.

Baseline, measured in the same run with its rounds interleaved with
freshcache's: the raw Redis pub/sub floor. A PUBLISHes ``time.monotonic()``
on a channel of its own with redis-py; B waits in ``get_message`` on a
redis-py subscription and notes the time it gets the message. The floor is
measured from the return of A's PUBLISH (the same reference point as
freshcache's figure), and, for information, from just before it.

Diagnostic rows (no verdict):

* freshcache to the *start* of B's read that saw the change (without that
  read's own Redis round trips);
* the floor again with B's subscriber in a thread while B's main thread
  spins as in a freshcache round (what B's own spinning adds to the floor);
* freshcache from the start of A's ``invalidate()``, and the floor from the
  start of A's PUBLISH.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import platform
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlparse

from bench._meta import git_commit, version_of

TARGET_P99_S = 0.005
SPIN_TIMEOUT_S = 1.0  # a round whose change B has not seen by then is "lost"
WARMUP_ROUNDS = 20
GAP_S = (0.0005, 0.002)  # A's random pause between B's "ready" and the write
KEY = "p7:k"


def _prefix() -> str:
    return f"fcbench{os.getpid()}p7"


def _cache(url: str, prefix: str) -> Any:
    from freshcache import L1, Cache

    return Cache(url, prefix=prefix, l1=L1(ttl=30))


def _wait_connected(cache: Any, deadline_s: float = 10.0) -> None:
    """Until the cache's bus subscription is up (``bus_connect`` counted)."""
    cache.get("p7:probe")  # starts the bus listener (it starts lazily)
    deadline = time.monotonic() + deadline_s
    while cache.stats().counts.get("bus_connect", 0) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("freshcache's bus did not connect within 10 s")
        time.sleep(0.005)


# -- process B -------------------------------------------------------------


def _spin(
    get: Callable[[], Any], old: Any, stop: Callable[[], bool] | None = None
) -> tuple[float, float, float, int]:
    """Poll ``get()`` until it no longer returns ``old`` (or ``stop()``).

    Returns the times the changed read returned and started, the time the
    poll before it started (``nan`` on timeout), and the number of polls.
    """
    mono = time.monotonic
    sleep = time.sleep
    deadline = mono() + SPIN_TIMEOUT_S
    polls = 0
    previous = math.nan
    while True:
        started = mono()
        value = get()
        if value != old:
            return mono(), started, previous, polls
        polls += 1
        if (stop is not None and stop()) or started > deadline:
            return math.nan, math.nan, math.nan, polls
        previous = started
        sleep(0)


def child(conn: Connection, url: str, prefix: str, raw_channel: str) -> None:
    """Process B: answers A's commands until "stop"."""
    import redis

    cache = _cache(url, prefix)
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
    try:
        _wait_connected(cache)
        pubsub.subscribe(raw_channel)
        while True:  # the subscribe confirmation
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                break
        conn.send(("up", os.getpid()))
        while True:
            command, *args = conn.recv()
            if command == "stop":
                break
            if command == "fc":
                conn.send(_child_fc(cache, conn, *args))
            elif command == "raw":
                conn.send(_child_raw(pubsub, conn))
            elif command == "raw-spin":
                conn.send(_child_raw(pubsub, conn, cache, *args))
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        pubsub.close()  # type: ignore[no-untyped-call,unused-ignore]
        client.close()
        cache.close()
        conn.close()


def _warm(cache: Any, key: str, value: int, sent: int) -> str | None:
    """Read A's new value into L1 (an error message if that fails)."""
    deadline = time.monotonic() + 2.0
    while cache.stats().counts.get("invalidations_received", 0) < sent:
        if time.monotonic() > deadline:
            return f"bus messages: fewer than the {sent} sent arrived within 2 s"
        time.sleep(0.0002)
    first = cache.get(key)
    l1_hits = cache.stats().l1.hits
    second = cache.get(key)
    if first != value or second != value:
        return f"warm-up read {first!r}, {second!r}; expected {value!r}"
    if cache.stats().l1.hits != l1_hits + 1:
        return "the second warm-up read was not an L1 hit"
    return None


def _child_fc(
    cache: Any, conn: Connection, key: str, value: int, sent: int
) -> tuple[Any, ...]:
    error = _warm(cache, key, value, sent)
    if error is not None:
        return ("error", error)
    ops = _redis_ops(cache)
    conn.send(("ready",))
    spin_start = time.monotonic()
    seen, started, previous, polls = _spin(lambda: cache.get(key), value)
    ops = _redis_ops(cache) - ops
    return ("seen", seen, started, previous, polls, ops, spin_start)


def _redis_ops(cache: Any) -> int:
    """Redis commands this cache has sent (its latency histograms count them)."""
    return sum(latency.count for latency in cache.stats().latency.values())


def _child_raw(
    pubsub: Any,
    conn: Connection,
    cache: Any = None,
    key: str = KEY,
    value: int = 0,
    sent: int = 0,
) -> tuple[Any, ...]:
    """Wait for A's next raw PUBLISH; note when it arrives.

    With ``cache`` (the diagnostic row), the subscriber waits in a thread
    while B's main thread spins on L1 hits of ``value``, as in a freshcache
    round.
    """
    got: list[tuple[float, bytes]] = []

    def receive() -> None:
        deadline = time.monotonic() + SPIN_TIMEOUT_S
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=SPIN_TIMEOUT_S)
            if message is not None and message["type"] == "message":
                got.append((time.monotonic(), message["data"]))
                return

    if cache is None:
        conn.send(("ready",))
        receive()
    else:
        error = _warm(cache, key, value, sent)
        if error is not None:
            return ("error", error)
        thread = threading.Thread(target=receive, name="bench-p7-subscriber")
        thread.start()
        conn.send(("ready",))
        _spin(lambda: cache.get(key), value, stop=lambda: bool(got))
        thread.join()
    if not got:
        return ("seen", math.nan, math.nan)
    seen, data = got[0]
    return ("seen", seen, float(data))


# -- process A -------------------------------------------------------------


@dataclass
class Series:
    """Latencies in seconds (``nan``: B never saw the change: lost)."""

    name: str
    role: str  # "baseline", "target", "diagnostic"
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def measured(self) -> list[float]:
        return sorted(v for v in self.values if not math.isnan(v))

    @property
    def lost(self) -> int:
        return sum(1 for v in self.values if math.isnan(v))

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile; a lost round counts as +infinity."""
        data = self.measured + [math.inf] * self.lost
        if not data:
            return math.nan
        index = min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))
        return data[index]

    def summary(self) -> dict[str, Any]:
        data = self.measured
        return {
            "name": self.name,
            "role": self.role,
            "count": len(self.values),
            "lost": self.lost,
            "negative": sum(1 for v in data if v < 0),
            "min": data[0] if data else math.nan,
            "p50": self.quantile(0.50),
            "p90": self.quantile(0.90),
            "p99": self.quantile(0.99),
            "max": math.inf if self.lost else (data[-1] if data else math.nan),
            "note": self.note,
        }


@dataclass
class Result:
    rounds: int
    series: list[Series]
    extra: dict[str, Any] = field(default_factory=dict)

    def by_name(self) -> dict[str, Series]:
        return {s.name: s for s in self.series}


FC = "freshcache invalidate() -> B's L1 read"
FC_START = "freshcache, from the start of invalidate() (diagnostic)"
FC_READ = "freshcache, to the start of B's read that saw it (diagnostic)"
RAW = "raw redis-py PUBLISH -> SUBSCRIBE (baseline)"
RAW_START = "raw pub/sub, from the start of PUBLISH (diagnostic)"
RAW_SPIN = "raw pub/sub, B's main thread spinning (diagnostic)"


class _Peer:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def expect(self, kind: str, timeout: float = 10.0) -> tuple[Any, ...]:
        if not self.conn.poll(timeout):
            raise RuntimeError(
                f"process B did not answer ({kind!r}) within {timeout} s"
            )
        reply = self.conn.recv()
        if reply[0] == "error":
            raise RuntimeError(f"process B: {reply[1]}")
        if reply[0] != kind:
            raise RuntimeError(f"process B said {reply!r}, expected {kind!r}")
        return tuple(reply)


def _gap() -> None:
    time.sleep(random.uniform(*GAP_S))


def _set(cache: Any, key: str, value: int) -> int:
    """Store ``value`` under ``key``; the number of bus messages A has sent."""
    if not cache.set(key, value):
        raise RuntimeError("A's cache.set failed")
    count: int = cache.stats().counts.get("invalidations_sent", 0)
    return count


def _fc_round(cache: Any, peer: _Peer, key: str, value: int) -> dict[str, Any]:
    sent = _set(cache, key, value)
    peer.conn.send(("fc", key, value, sent))
    peer.expect("ready")
    _gap()
    before = time.monotonic()
    cache.invalidate(key)
    after = time.monotonic()
    _, seen, started, previous, polls, ops, spin_start = peer.expect("seen")
    detail = {
        "from_return_s": seen - after,
        "from_start_s": seen - before,
        "to_read_start_s": started - after,
        "invalidate_s": after - before,
        "detect_read_s": seen - started,
        "poll_interval_s": started - previous,
        "poll_period_s": (started - spin_start) / max(polls, 1),
        "polls": polls,
        "b_redis_ops": ops,
    }
    return detail


def _raw_round(
    client: Any, channel: str, peer: _Peer, command: tuple[Any, ...]
) -> tuple[float, float]:
    peer.conn.send(command)
    peer.expect("ready")
    _gap()
    before = time.monotonic()
    client.publish(channel, repr(before))
    after = time.monotonic()
    _, seen, stamp = peer.expect("seen")
    if not math.isnan(seen) and stamp != before:
        raise RuntimeError("process B received another round's message")
    return seen - after, seen - before


def measure(url: str, rounds: int, *, progress: bool = True) -> Result:
    import redis

    prefix = _prefix()
    raw_channel = f"{prefix}:raw"
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(
        target=child, args=(theirs, url, prefix, raw_channel), name="bench-p7-B"
    )
    cache = _cache(url, prefix)
    client = redis.Redis.from_url(url)
    fc, fc_start = Series(FC, "target"), Series(FC_START, "diagnostic")
    fc_read = Series(FC_READ, "diagnostic")
    raw, raw_start = Series(RAW, "baseline"), Series(RAW_START, "diagnostic")
    raw_spin = Series(RAW_SPIN, "diagnostic")
    details: list[dict[str, Any]] = []
    process.start()
    peer = _Peer(ours)
    try:
        _wait_connected(cache)
        peer.expect("up", timeout=30.0)
        total = WARMUP_ROUNDS + rounds
        started = time.perf_counter()

        def do(step: str, value: int, record: bool) -> None:
            if step == "raw":
                after, before = _raw_round(client, raw_channel, peer, ("raw",))
                if record:
                    raw.values.append(after)
                    raw_start.values.append(before)
            elif step == "raw-spin":  # B warms KEY and spins as in an fc round
                sent = _set(cache, KEY, -value)
                command = ("raw-spin", KEY, -value, sent)
                after, _ = _raw_round(client, raw_channel, peer, command)
                if record:
                    raw_spin.values.append(after)
            else:
                detail = _fc_round(cache, peer, KEY, value)
                if record:
                    details.append(detail)
                    fc.values.append(detail["from_return_s"])
                    fc_start.values.append(detail["from_start_s"])
                    fc_read.values.append(detail["to_read_start_s"])

        for i in range(total):
            steps = ["fc", "raw", "raw-spin"]
            random.shuffle(steps)  # no series always runs first
            for step in steps:
                do(step, i + 1, i >= WARMUP_ROUNDS)  # a new value every round
            if progress and (i + 1) % 100 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {i + 1}/{total} rounds, {elapsed:.1f} s", file=sys.stderr)
        peer.conn.send(("stop",))
        process.join(10)
    finally:
        if process.is_alive():
            process.terminate()
            process.join(5)
        try:
            cache.clear()
        finally:
            cache.close()
            client.close()
    extra: dict[str, Any] = {"rounds_detail": details}
    for name in (
        "invalidate_s", "detect_read_s", "poll_interval_s", "poll_period_s",
        "polls", "b_redis_ops",
    ):  # fmt: skip
        extra[f"{name}_p50"] = _median([float(d[name]) for d in details])
    extra["a_stats_counts"] = dict(cache.stats().counts)
    extra["a_stats_errors"] = dict(cache.stats().errors)
    series = [fc, raw, fc_read, raw_spin, fc_start, raw_start]
    return Result(rounds, series, extra)


def _median(values: list[float]) -> float:
    data = sorted(v for v in values if not math.isnan(v))
    return data[len(data) // 2] if data else math.nan


# -- report ------------------------------------------------------------------


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "lost"
    if abs(seconds) < 0.01:
        return f"{seconds * 1e6:,.0f} us"
    return f"{seconds * 1e3:,.2f} ms"


def _ratio(num: float, den: float) -> str:
    if any(math.isnan(x) or math.isinf(x) for x in (num, den)) or den <= 0:
        return "n/a"
    return f"{num / den:.2f}x"


COLUMNS = [
    "series", "rounds", "p50", "p90", "p99", "max", "min", "< 0", "lost",
    "p50 / floor", "p99 / floor", "target", "verdict",
]  # fmt: skip


def rows(result: Result) -> list[list[str]]:
    named = result.by_name()
    floor = named[RAW].summary()
    out = []
    for series in result.series:
        s = series.summary()
        target = verdict = ""
        if series.role == "target":
            target = f"p99 < {TARGET_P99_S * 1e3:g} ms"
            verdict = "meets" if s["p99"] < TARGET_P99_S else "MISSES"
        baseline = series.role == "baseline"
        out.append(
            [
                series.name,
                f"{s['count']:,}",
                fmt_s(s["p50"]),
                fmt_s(s["p90"]),
                fmt_s(s["p99"]),
                fmt_s(s["max"]),
                fmt_s(s["min"]),
                str(s["negative"]),
                str(s["lost"]),
                "1.00x" if baseline else _ratio(s["p50"], floor["p50"]),
                "1.00x" if baseline else _ratio(s["p99"], floor["p99"]),
                target or "-",
                verdict or ("baseline" if baseline else "-"),
            ]
        )
    return out


def render_plain(result: Result) -> str:
    table = [COLUMNS, *rows(result)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["P7: invalidation reaching another process's L1"]
    for line in table:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def render_markdown(result: Result) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "|".join(" --- " for _ in COLUMNS) + "|")
    for line in rows(result):
        cells = list(line)
        if cells[0] == FC:
            cells[0] = f"**{cells[0]}**"
        if cells[-1] == "MISSES":
            cells[-1] = "**MISSES**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metadata(url: str) -> dict[str, Any]:
    import redis

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_url": url,
        "versions": {d: version_of(d) for d in ("freshcache", "redis", "hiredis")},
    }
    info["git_commit"] = git_commit()
    try:
        client = redis.Redis.from_url(url)
        info["redis_server"] = client.info("server").get("redis_version")
        client.close()
    except Exception as exc:
        info["redis_server"] = f"n/a: {exc}"
    return info


def run(*, rounds: int, json_path: str | None, redis_url: str, markdown: bool) -> int:
    if rounds < 1:
        print("--rounds must be at least 1", file=sys.stderr)
        return 2
    host = urlparse(redis_url).hostname
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = measure(redis_url, rounds)
    elapsed = time.perf_counter() - started
    info = metadata(redis_url)
    info["elapsed_s"] = round(elapsed, 1)
    info["loadavg_1min"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    info["rounds"] = rounds
    info["warmup_rounds"] = WARMUP_ROUNDS
    print(render_markdown(result) if markdown else render_plain(result))
    print(
        "\n  latency = time.monotonic() when B's first read no longer returned "
        "the old value - when A's call returned;\n  floor: raw redis-py pub/sub "
        "in the same run, rounds of every series interleaved."
    )
    e = result.extra
    print(
        f"  medians: A's invalidate() took {fmt_s(e['invalidate_s_p50'])}; B polled "
        f"every {fmt_s(e['poll_period_s_p50'])} ({e['polls_p50']:.0f} polls per "
        f"round, {e['b_redis_ops_p50']:.0f} Redis command(s) per round); the poll "
        f"interval that ended in the read that saw the change was "
        f"{fmt_s(e['poll_interval_s_p50'])}, and that read (L1 miss, Redis GET) "
        f"took {fmt_s(e['detect_read_s_p50'])}."
    )
    print(
        f"  python {info['python']}, {info['cpus']} CPUs shared by A and B, "
        f"redis {info['redis_server']} on {host}; {rounds} rounds "
        f"(+{WARMUP_ROUNDS} warm-up) in {elapsed:.1f} s, at commit "
        f"{info['git_commit']}; load average (1 min) {info['loadavg_1min'][0]} "
        f"before, {info['loadavg_1min'][1]} after."
    )
    if e["b_redis_ops_p50"] > 1:
        print(
            "  warning: B sent more than one Redis command per round: its polls "
            "were not all L1 hits served from memory."
        )
    if max(info["loadavg_1min"]) > (info["cpus"] or 1):
        print(
            "  warning: the load average exceeded the CPU count: other work "
            "competed for the CPUs, expect a longer tail."
        )
    if json_path:
        payload = {
            "meta": info,
            "target_p99_s": TARGET_P99_S,
            "summary": [s.summary() for s in result.series],
            "samples_s": {s.name: s.values for s in result.series},
            "extra": result.extra,
        }
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, default=str)
        print(f"results written to {json_path}")
    return 0
