"""Spawn target of ``python -m bench scale``: one client process.

A worker opens, for every topology of the run, a freshcache ``Cache`` (no
L1: every read goes to Redis) and a raw redis-py client (``Redis`` or
``RedisCluster``), reads a few keys with each, says it is ready, then takes
orders from its queue. An order names a topology, a kind of read and a
window (``time.monotonic()`` start, one clock for the whole machine on
Linux, and a length): the worker waits for the start, reads random keys
until the window closes, and reports how many reads it did, how many gave
the wrong kind of answer (a miss where a hit was due, or the reverse) and
the CPU time it used. ``None`` ends it.

Kinds of read:

* ``hit``: ``cache.get`` of a filled key (an L2 hit).
* ``raw``: redis-py ``get`` of the same value stored as plain JSON, then
  ``json.loads`` (the baseline of the hit path).
* ``miss``: ``cache.get`` of a key never filled (the miss path).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

KINDS = ("raw", "hit", "miss")
WARMUP_READS = 20  # per topology and kind, before the first window
_SPREAD = 1 << 16  # random key indices drawn up front, reused in a cycle


@dataclass
class Topology:
    """One set of servers, as a worker reaches it."""

    name: str
    url: str  # freshcache's URL: redis://... or redis+cluster://...
    ports: list[int]
    cluster: bool


@dataclass
class Job:
    """What one worker needs (pickled into the spawned process)."""

    index: int
    topologies: list[Topology]
    prefix: str
    keys: int
    timeout: float


@dataclass
class Order:
    topology: int
    kind: str
    start: float  # time.monotonic()
    seconds: float


@dataclass
class Count:
    """One worker's share of one window (or, with ``order`` None, its start)."""

    index: int
    order: Order | None = None
    reads: int = 0
    wrong: int = 0
    cpu: float = 0.0  # this process's CPU seconds inside the window
    failure: str | None = None


def fc_key(i: int) -> str:
    return f"k:{i}"


def absent_key(i: int) -> str:
    return f"absent:{i}"


def raw_key(prefix: str, i: int) -> str:
    return f"{prefix}:raw:{i}"


def raw_client(topology: Topology) -> Any:
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    if topology.cluster:
        nodes = [ClusterNode("127.0.0.1", port) for port in topology.ports]
        return RedisCluster(startup_nodes=nodes)
    return redis.Redis(host="127.0.0.1", port=topology.ports[0])


def _readers(job: Job, topology: Topology, closers: list[Callable[[], Any]]) -> dict[
    str, Callable[[int], bool]
]:  # fmt: skip
    """``kind -> read(i)``: True when the answer is the kind due."""
    from freshcache import MISS, Cache

    cache = Cache(topology.url, prefix=job.prefix, timeout=job.timeout)
    closers.append(cache.close)
    client = raw_client(topology)
    closers.append(client.close)
    get, rget, loads = cache.get, client.get, json.loads
    hits = [fc_key(i) for i in range(job.keys)]
    absent = [absent_key(i) for i in range(job.keys)]
    raws = [raw_key(job.prefix, i) for i in range(job.keys)]

    def hit(i: int) -> bool:
        return get(hits[i]) is not MISS

    def miss(i: int) -> bool:
        return get(absent[i]) is MISS

    def raw(i: int) -> bool:
        data = rget(raws[i])
        return data is not None and loads(data) is not None

    return {"raw": raw, "hit": hit, "miss": miss}


def _window(read: Callable[[int], bool], order: Order, spread: list[int]) -> Count:
    clock = time.monotonic
    time.sleep(max(0.0, order.start - clock()))
    end = order.start + order.seconds
    mask = len(spread) - 1
    reads = wrong = 0
    cpu = time.process_time()
    while clock() < end:
        if not read(spread[reads & mask]):
            wrong += 1
        reads += 1
    return Count(-1, order, reads, wrong, time.process_time() - cpu)


def main(job: Job, orders: Queue[Order | None], counts: Queue[Count]) -> None:
    closers: list[Callable[[], Any]] = []
    try:
        rng = random.Random(job.index)
        spread = [rng.randrange(job.keys) for _ in range(_SPREAD)]
        readers = [_readers(job, t, closers) for t in job.topologies]
        for by_kind in readers:  # connect, and fail here rather than in a window
            for kind, read in by_kind.items():
                for i in range(WARMUP_READS):
                    if not read(spread[i]):
                        raise RuntimeError(f"warm-up: a {kind} read was not one")
        counts.put(Count(job.index))
        while (order := orders.get()) is not None:
            count = _window(readers[order.topology][order.kind], order, spread)
            count.index = job.index
            counts.put(count)
    except BaseException:
        counts.put(Count(job.index, failure=traceback.format_exc()))
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):  # closing at exit
                close()
