"""``python -m bench scale``: L2 read throughput on one Redis and on clusters.

The run starts its own servers on free ports, in temporary directories: one
plain ``redis-server`` (the reference), and a Redis Cluster of 1, 2 and 3
primaries (``--primaries``), all stopped and removed at the end whatever
happens. It fills ``--keys`` keys in each through freshcache (no L1, so
every read is a Redis hit) and the same value as plain JSON for the raw
baseline, then starts ``--clients`` client processes
(``bench/_scale_worker.py``), each with one client of every kind on every
topology. In windows of ``--seconds``, all clients at once read random keys
with one kind of client on one topology: freshcache hits, raw redis-py
``GET`` + ``json.loads``, freshcache misses (keys never filled). Windows go
round robin over topologies and kinds, ``--rounds`` times, so that a burst
of noise hits them alike; the best round of each counts.

Every figure is a ratio to the single node's, for the same kind of read in
the same run. Each window also records the Redis commands the servers
processed per read (``INFO commandstats``) and the CPU the clients and the
servers used (``time.process_time`` in each client, ``INFO cpu`` of each
server), in cores: on a machine where clients and servers share a few
cores, that says what bounds the throughput.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import queue
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench import _scale_worker
from bench._scale_worker import KINDS, Count, Job, Order, Topology
from bench._timing import Row, Section, markdown, render, write_json

START_DELAY = 0.1  # seconds between an order and its window: every worker has it
READY_TIMEOUT = 120.0  # for the workers to start, connect and warm up
FILL_BATCH = 1000

ctx = multiprocessing.get_context("spawn")

TITLES = {
    "hit": "freshcache L2 hits (`cache.get`, no L1)",
    "raw": "raw redis-py GET + json.loads (the baseline of the hit path)",
    "miss": "freshcache misses (`cache.get` of keys never filled)",
}


@dataclass
class Window:
    """What every client did in one window, and what the servers saw."""

    topology: int
    kind: str
    reads: int
    wrong: int
    client_cpu: float  # seconds, all clients together
    server_cpu: float  # seconds, every server of the topology together
    commands: int  # processed by the topology's servers (INFO excluded)
    seconds: float


@dataclass
class Servers:
    """``INFO`` of a topology's servers, before and after a window."""

    ports: list[int]
    clients: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        import redis

        self.clients = [redis.Redis(host="127.0.0.1", port=p) for p in self.ports]

    def snapshot(self) -> tuple[float, int]:
        """(CPU seconds, commands processed) summed over the servers."""
        cpu, commands = 0.0, 0
        for client in self.clients:
            info = client.info("cpu")
            cpu += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
            stats = client.info("commandstats")
            commands += sum(
                int(value["calls"])
                for name, value in stats.items()
                if name != "cmdstat_info"
            )
        return cpu, commands

    def close(self) -> None:
        for client in self.clients:
            client.close()


# -- servers and data -----------------------------------------------------------


@contextlib.contextmanager
def own_topologies(primaries: list[int]) -> Iterator[list[Topology]]:
    """One plain Redis and a cluster per entry of ``primaries``, of the run's
    own (``tests/servers.py``, ``tests/cluster.py``); always stopped."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.cluster import own_redis_cluster
    from tests.servers import own_redis_server

    with ExitStack() as stack:
        single = stack.enter_context(own_redis_server())
        topologies = [Topology("1 node (redis://)", single.url, [single.port], False)]
        for count in primaries:
            cluster = stack.enter_context(own_redis_cluster(nodes=count))
            url = "redis+cluster://" + ",".join(cluster.addresses) + "/"
            name = f"cluster, {count} primar{'y' if count == 1 else 'ies'}"
            topologies.append(Topology(name, url, cluster.ports, True))
        yield topologies


def fill(topology: Topology, prefix: str, keys: int, timeout: float) -> None:
    """The freshcache entries (``set_many``, no expiry) and the raw JSON."""
    import orjson

    from bench.hits import VALUE
    from freshcache import Cache

    payload = orjson.dumps(VALUE)
    with Cache(topology.url, prefix=prefix, timeout=timeout) as cache:
        for first in range(0, keys, FILL_BATCH):
            batch = range(first, min(keys, first + FILL_BATCH))
            values = {_scale_worker.fc_key(i): VALUE for i in batch}
            if not cache.set_many(values, ttl=None):
                raise RuntimeError(f"{topology.name}: set_many did not cache")
    client = _scale_worker.raw_client(topology)
    try:
        for first in range(0, keys, FILL_BATCH):
            batch = range(first, min(keys, first + FILL_BATCH))
            mapping = {_scale_worker.raw_key(prefix, i): payload for i in batch}
            if topology.cluster:
                client.mset_nonatomic(mapping)
            else:
                client.mset(mapping)
    finally:
        client.close()


# -- the windows ------------------------------------------------------------------


def _collect(counts: Any, processes: list[Any], wanted: int, timeout: float) -> list[
    Count
]:  # fmt: skip
    """``wanted`` counts from the workers; raises if one failed or died."""
    got: list[Count] = []
    deadline = time.monotonic() + timeout
    while len(got) < wanted:
        try:
            count: Count = counts.get(timeout=0.5)
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"client processes died or hung: {dead}") from None
            continue
        if count.failure:
            raise RuntimeError(f"client {count.index} failed:\n{count.failure}")
        got.append(count)
    return got


def measure(
    topologies: list[Topology],
    *,
    prefix: str,
    keys: int,
    clients: int,
    seconds: float,
    rounds: int,
    timeout: float,
) -> list[Window]:
    counts = ctx.Queue()
    orders = [ctx.Queue() for _ in range(clients)]
    processes = [
        ctx.Process(
            target=_scale_worker.main,
            args=(Job(i, topologies, prefix, keys, timeout), orders[i], counts),
        )
        for i in range(clients)
    ]
    servers = [Servers(t.ports) for t in topologies]
    windows: list[Window] = []
    for process in processes:
        process.start()
    try:
        _collect(counts, processes, clients, READY_TIMEOUT)
        for _ in range(rounds):
            for index, topology in enumerate(topologies):
                for kind in KINDS:
                    cpu0, commands0 = servers[index].snapshot()
                    order = Order(index, kind, time.monotonic() + START_DELAY, seconds)
                    for box in orders:
                        box.put(order)
                    got = _collect(counts, processes, clients, seconds + 60)
                    cpu1, commands1 = servers[index].snapshot()
                    windows.append(
                        Window(
                            index,
                            kind,
                            reads=sum(c.reads for c in got),
                            wrong=sum(c.wrong for c in got),
                            client_cpu=sum(c.cpu for c in got),
                            server_cpu=cpu1 - cpu0,
                            commands=commands1 - commands0,
                            seconds=seconds,
                        )
                    )
                    print(
                        f"  {topology.name}, {kind}: "
                        f"{windows[-1].reads / seconds:,.0f} reads/s",
                        file=sys.stderr,
                    )
    finally:
        for box in orders:
            box.put(None)
        for process in processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()
        for server in servers:
            server.close()
        counts.close()
    return windows


# -- tables -----------------------------------------------------------------------


WRONG = {"hit": "NOT ALL HITS", "raw": "KEYS MISSING", "miss": "NOT ALL MISSES"}


def sections(
    topologies: list[Topology], windows: list[Window], *, clients: int, rounds: int
) -> list[Section]:
    best: dict[tuple[int, str], float] = {}
    for w in windows:
        key = (w.topology, w.kind)
        best[key] = max(best.get(key, 0.0), w.reads / w.seconds)
    out: list[Section] = []
    for kind in ("hit", "raw", "miss"):
        section = Section(
            id=f"scale-{kind}",
            title=f"{TITLES[kind]}, {clients} client processes",
            baseline=f"{topologies[0].name}, the same reads",
            estimator=(
                f"reads/s of all clients in one window, best of {rounds} "
                "windows, topologies and kinds of read interleaved"
            ),
            throughput=True,
            label="topology",
        )
        base = best[(0, kind)]
        for index, topology in enumerate(topologies):
            mine = [w for w in windows if (w.topology, w.kind) == (index, kind)]
            reads = sum(w.reads for w in mine)
            wrong = sum(w.wrong for w in mine)
            wall = sum(w.seconds for w in mine)
            ops = best[(index, kind)]
            client_cores = sum(w.client_cpu for w in mine) / wall
            server_cores = sum(w.server_cpu for w in mine) / wall
            per_read = sum(w.commands for w in mine) / reads if reads else 0.0
            row = Row(
                topology.name,
                1.0 / ops if ops else None,
                ratio=ops / base if base else None,
                ops_per_s=ops,
                baseline=index == 0,
            )
            row.target, row.verdict = ("-", "baseline") if index == 0 else ("-", "-")
            notes = [
                f"{per_read:.2f} Redis cmds/read",
                f"CPU: clients {client_cores:.2f}, servers {server_cores:.2f} cores",
            ]
            if kind == "hit" and best.get((index, "raw")):
                notes.append(f"{ops / best[(index, 'raw')]:.2f}x raw GET")
            if wrong:
                notes.insert(0, f"{WRONG[kind]}: {wrong:,} of {reads:,} reads")
            row.note = "; ".join(notes)
            row.extra = {
                "rounds_reads_per_s": [round(w.reads / w.seconds) for w in mine],
                "reads": reads,
                "wrong": wrong,
                "client_cores": round(client_cores, 3),
                "server_cores": round(server_cores, 3),
                "redis_commands_per_read": round(per_read, 3),
                "servers": len(topology.ports),
            }
            section.rows.append(row)
        section.notes.append(
            "ratio = reads/s over the single node's reads/s of the same kind "
            "(higher is better); per op = wall time / reads (not latency)"
        )
        section.notes.append(
            "CPU in cores: CPU seconds per second of window, all client "
            "processes together and all servers of the topology together"
        )
        out.append(section)
    return out


# -- entry point --------------------------------------------------------------------


def metadata(quick: bool) -> dict[str, Any]:
    from bench._meta import git_commit, version_of

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": quick,
        "git_commit": git_commit(),
        "versions": {d: version_of(d) for d in ("freshcache", "redis", "hiredis")},
        "redis_server": _server_version(),
    }


def _server_version() -> str:
    """The version of the ``redis-server`` the run starts."""
    import subprocess

    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"n/a: {exc}"
    return next((p[2:] for p in out.split() if p.startswith("v=")), out.strip())


def run(
    *,
    quick: bool,
    clients: int,
    seconds: float,
    rounds: int,
    keys: int,
    primaries: list[int],
    timeout: float,
    json_path: str | None,
    markdown_out: bool,
    plain: bool,
) -> int:
    if min(clients, rounds, keys, *primaries) < 1 or seconds <= 0:
        print(
            "--clients, --rounds, --keys and every --primaries must be at least "
            "1, --seconds more than 0",
            file=sys.stderr,
        )
        return 2
    info = metadata(quick)
    prefix = f"fcscale{os.getpid()}"
    started = time.perf_counter()
    with own_topologies(primaries) as topologies:
        for topology in topologies:
            fill(topology, prefix, keys, timeout)
        print(
            f"{len(topologies)} topologies up and filled ({keys:,} keys each); "
            f"{clients} clients, {rounds} x {seconds:g} s per topology and kind",
            file=sys.stderr,
        )
        windows = measure(
            topologies,
            prefix=prefix,
            keys=keys,
            clients=clients,
            seconds=seconds,
            rounds=rounds,
            timeout=timeout,
        )
    tables = sections(topologies, windows, clients=clients, rounds=rounds)
    elapsed = time.perf_counter() - started
    info["elapsed_s"] = round(elapsed, 1)
    info["load_average_end"] = os.getloadavg()
    if markdown_out:
        print(markdown([s.to_json() for s in tables]))
    else:
        render(tables, plain=plain)
    load = "/".join(f"{x:.2f}" for x in info["load_average"])
    print(
        f"python {info['python']} on {info['platform']}, {info['cpus']} CPUs "
        f"(load average {load} at the start); redis {info['redis_server']}; "
        f"{'quick' if quick else 'full'} run in {elapsed:.1f} s, "
        f"at commit {info['git_commit']}"
    )
    if json_path:
        write_json(json_path, info, tables)
    return 0
