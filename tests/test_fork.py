"""A cache used before ``fork()`` keeps its promise in every child.

Preforking servers (gunicorn ``--preload``, uWSGI without ``lazy-apps``,
Celery's prefork pool) import the application, and so make and often use
its cache, in a parent that then forks the workers. A child inherits the
parent's objects but not its threads: before, the bus listener stayed in
the parent, and children shared the parent's origin id, so the parent
skipped a child's invalidations as its own and kept serving the old value
from its L1 (until ``L1.ttl``).

Here the parent uses the cache (the bus subscribed, L1 filled), forks two
children with ``multiprocessing``'s ``fork`` start method, and then the
parent, the children and a process that never shared anything write in
turn while all of them read. A read is stale if it started more than the
staleness bound after a newer write had returned, and returned an older
value: there must be none, in any process. Each child subscribes on its
own (the bus channel has a subscriber per process), and its stats are its
own. The gunicorn case is ``test_gunicorn_preload.py``.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis

from freshcache import L1, Cache

pytestmark = pytest.mark.redis

BOUND = 0.1  # L1(max_staleness=...): the default bound
ROUNDS = 3  # writes by each writer
GAP = 0.4  # seconds between two writes


def _reader(
    cache: Cache, stop: threading.Event, reads: list[tuple[float, str]]
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        value = cache.get("k", "missing")
        reads.append((started, str(value)))
        time.sleep(0.001)


def _child(cache: Cache, name: str, start_at: float, writes: Any, out: Any) -> None:
    """Read all along; write at this writer's turns (see ``_turns``)."""
    stop = threading.Event()
    reads: list[tuple[float, str]] = []
    reader = threading.Thread(target=_reader, args=(cache, stop, reads))
    reader.start()
    for at, value in _turns(name, start_at):
        time.sleep(max(0.0, at - time.monotonic()))
        _write(cache, value)
        writes.put((time.monotonic(), value))
    time.sleep(
        max(0.0, start_at + len(WRITERS) * ROUNDS * GAP + 0.5 - time.monotonic())
    )
    stop.set()
    reader.join()
    stats = cache.stats()
    out.put((name, reads, dict(stats.counts), stats.l1.hits))


WRITERS = ("parent", "child-1", "child-2", "stranger")


def _write(cache: Cache, value: str) -> None:
    """Until it lands: on a loaded machine a write can miss its deadline
    (``set`` then returns False), and only a write that returned counts."""
    while not cache.set("k", value):
        time.sleep(0.01)


def _turns(name: str, start_at: float) -> list[tuple[float, str]]:
    """When ``name`` writes, and what: writers take turns, ``GAP`` apart."""
    index = WRITERS.index(name)
    return [
        (start_at + (r * len(WRITERS) + index) * GAP, f"{name}-{r}")
        for r in range(ROUNDS)
    ]


def _stale(reads: list[tuple[float, str]], writes: list[tuple[float, str]]) -> int:
    """Reads that started more than BOUND after a write returned and got a
    value older than it (values are unique, writes are ordered). A read
    that could not reach Redis in time returns the default ("missing"):
    no value, so not a stale one."""
    order = {"start": -1} | {value: i for i, (_, value) in enumerate(sorted(writes))}
    stale = 0
    for started, value in reads:
        landed = [order[v] for at, v in writes if at + BOUND < started]
        if landed and value != "missing" and order[value] < max(landed):
            stale += 1
    return stale


def test_forked_children_see_every_write_within_the_bound(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    cache = Cache(redis_url, prefix=key_prefix, l1=L1())
    stranger = Cache(redis_url, prefix=key_prefix, l1=L1())  # shares nothing
    try:
        cache.set("k", "start")
        assert cache.get("k") == "start"  # L1 filled, the bus subscribed
        assert stranger.get("k") == "start"
        context = multiprocessing.get_context("fork")
        writes: Any = context.Queue()
        out: Any = context.Queue()
        start_at = time.monotonic() + 1.5  # after the children subscribed
        children = [
            context.Process(target=_child, args=(cache, name, start_at, writes, out))
            for name in ("child-1", "child-2")
        ]
        for child in children:
            child.start()
        results = []
        done = threading.Event()
        local: dict[str, list[tuple[float, str]]] = {"parent": [], "stranger": []}
        readers = [
            threading.Thread(target=_reader, args=(c, done, local[n]))
            for n, c in (("parent", cache), ("stranger", stranger))
        ]
        for reader in readers:
            reader.start()
        subscribers = 0
        link = redis.Redis.from_url(redis_url)
        turns = sorted(_turns("parent", start_at) + _turns("stranger", start_at))
        for at, value in turns:
            time.sleep(max(0.0, at - time.monotonic()))
            _write(cache if value.startswith("parent") else stranger, value)
            writes.put((time.monotonic(), value))
            channel = f"{key_prefix}:!bus"
            subscribers = max(subscribers, link.pubsub_numsub(channel)[0][1])
        for _ in children:
            results.append(out.get(timeout=30))
        for child in children:
            child.join(timeout=10)
            assert child.exitcode == 0
        done.set()
        for reader in readers:
            reader.join()
        link.close()
        all_writes = [writes.get(timeout=5) for _ in range(len(WRITERS) * ROUNDS)]
        assert len({v for _, v in all_writes}) == len(WRITERS) * ROUNDS
        for name, reads, counts, l1_hits in results:
            assert len(reads) > 100, name
            assert _stale(reads, all_writes) == 0, name
            assert counts.get("bus_connect") == 1, (name, counts)  # its own
            assert l1_hits > 0, name  # its L1 serves (its watermark moves)
        for name, reads in local.items():
            assert _stale(reads, all_writes) == 0, name
        # The parent, the stranger and each child subscribe on their own.
        assert subscribers == 4
    finally:
        cache.close()
        stranger.close()
