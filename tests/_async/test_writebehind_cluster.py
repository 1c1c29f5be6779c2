"""Write-behind on a Redis Cluster: what only a cluster has.

tests/_async/test_writebehind.py runs every write-behind rule on the
session's private three-primary cluster too (its ``server`` fixture); this
module checks what is the cluster's own: partitions spread over the
primaries, no command spanning slots in a whole cycle (per every node's
``INFO errorstats``), workers sharing the partitions, the order of a put's
single-slot steps when one of them fails, puts of one key from two
processes racing each other, and ``replicas`` waiting on the stream's own
primary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from freshcache import (
    MISS,
    AsyncCache,
    AsyncWriteBehind,
    BacklogFullError,
    CallableSink,
    PermanentWriteError,
    StoreError,
    Write,
)
from freshcache._core.layout import cluster_stream_key
from tests._async.waiting import WAIT, run_in_background
from tests.cluster import ClusterInfo, primary_clients, refused

pytestmark = pytest.mark.redis


class Table:
    """A version-guarded table in memory; remembers every write it was given."""

    def __init__(self, poison: str = "") -> None:
        self.rows: dict[str, tuple[int, object]] = {}
        self.seen: list[Write] = []
        self.poison = poison

    def apply(self, writes: Sequence[Write]) -> None:
        if any(w.key == self.poison for w in writes):
            raise PermanentWriteError("violates a constraint")
        self.seen += writes
        for w in writes:
            if w.key not in self.rows or self.rows[w.key][0] < w.version:
                self.rows[w.key] = (w.version, w.value)

    def values(self) -> dict[str, object]:
        return {k: v for k, (_, v) in self.rows.items()}


@pytest.fixture
def url(redis_cluster: ClusterInfo) -> str:
    """The cluster, without a password (write-behind speaks RESP2, whose AUTH
    a node without a password refuses)."""
    return f"redis+cluster://{','.join(redis_cluster.addresses)}/"


@pytest.fixture
def nodes(redis_cluster: ClusterInfo) -> Iterator[dict[int, redis.Redis]]:
    with primary_clients(redis_cluster) as direct:
        yield direct


def _command_calls(nodes: dict[int, redis.Redis], command: str) -> dict[int, int]:
    found = {}
    for port, node in nodes.items():
        stats: dict[str, Any] = node.info("commandstats")
        found[port] = int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return found


async def _drain(wb: AsyncWriteBehind, table: Table) -> None:
    worker = wb.worker(CallableSink(table.apply), block=0)
    try:
        await worker.run(until_idle=True)
    finally:
        await worker.aclose()


async def test_a_whole_cycle_spans_every_primary_and_no_command_spans_slots(
    url: str, redis_cluster: ClusterInfo, nodes: dict[int, redis.Redis],
    key_prefix: str,
) -> None:  # fmt: skip
    partitions = 6
    streams = [cluster_stream_key(key_prefix, "q", i, partitions) for i in range(6)]
    owners = redis_cluster.slot_owners()
    assert {owners[key_slot(s.encode())] for s in streams} == set(
        redis_cluster.primaries()
    )
    keys = [f"user:{n}" for n in range(60)]
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=partitions, max_backlog=6 * 40)
        for key in keys[:30]:
            await wb.put(key, {"n": key})
        await wb.put_many({key: {"n": key} for key in keys[30:]})
        assert await cache.get_many(keys) == {key: {"n": key} for key in keys}
        stats = await wb.stats()
        assert (stats.backlog, stats.pending) == (60, 0)
        held = {port: node.dbsize() for port, node in nodes.items()}
        assert all(held.values()), f"the queue and keys reach every node: {held}"
        table = Table(poison="user:7")
        await _drain(wb, table)
        await wb.flush(timeout=WAIT)
        assert table.values() == {k: {"n": k} for k in keys if k != "user:7"}
        [(_, dead)] = await wb.dead_letters()
        assert dead["k"] == "user:7"
        assert await cache.get("user:7") is MISS  # the refused value is gone
        stats = await wb.stats()
        assert (stats.backlog, stats.applied, stats.dead_lettered) == (0, 59, 1)
        small = cache.write_behind(name="small", partitions=1, max_backlog=2)
        await small.put_many({"a": 1, "b": 2})
        with pytest.raises(BacklogFullError):
            await small.put("c", 3)
        assert await cache.get("c") is MISS
        await small.remove(force=True)
        await wb.remove()
        await small.aclose(flush=False)
        await wb.aclose()
        expected = {"writebehind:backlog_full": 1, "writebehind_sink": 1}
        assert cache.stats().errors == expected  # the two refusals above only
    assert refused(nodes, "CROSSSLOT") == 0


async def test_a_worker_fleet_shares_the_partitions(url: str, key_prefix: str) -> None:
    """Two workers take turns on one queue: each applies a share of the
    writes, together all of them, none twice (the consumer group of each
    partition gives an entry to one consumer)."""
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=4)
        values = {f"k{n}": n for n in range(40)}
        await wb.put_many(values)
        first, second = Table(), Table()
        workers = [
            wb.worker(CallableSink(t.apply), block=0, batch_size=2)
            for t in (first, second)
        ]
        for _ in range(100):
            handled = [await w.run_once() for w in workers]
            if not any(handled):
                break
        for worker in workers:
            await worker.aclose()
        assert first.seen, "both workers took a share"
        assert second.seen, "both workers took a share"
        applied = [w.key for w in first.seen + second.seen]
        assert sorted(applied) == sorted(values)  # every write, once
        assert first.values() | second.values() == values
        assert (await wb.stats()).backlog == 0
        await wb.aclose()


async def test_an_applied_write_reaches_the_other_deployed_version(
    url: str, nodes: dict[int, redis.Redis], key_prefix: str
) -> None:
    """A rolling deploy: version v2 caches the database's row of a key that
    v1 puts. Once the worker committed the write, v2's copy (under its own
    namespace version) is gone, found in single-slot steps."""
    make = functools.partial(AsyncCache, url, prefix=key_prefix, timeout=1.0)
    async with make(version="v1") as old, make(version="v2") as new:
        await old.get("warm")  # both versions live in the registry
        await new.get("warm")
        await new.bump("item")  # v2's keys of "item" now end in ~1
        assert await new.get_or_load("item:1", lambda: "old") == "old"
        wb = old.write_behind(name="q")
        await wb.put("item:1", "new")
        assert await new.get("item:1") == "old"  # until the commit
        table = Table()
        await _drain(wb, table)
        assert table.values() == {"item:1": "new"}
        assert await new.get("item:1") is MISS
        assert await old.get("item:1") == "new"
        await wb.aclose()
    assert refused(nodes, "CROSSSLOT") == 0


async def test_a_batch_larger_than_lua_can_unpack_is_acknowledged(
    url: str, key_prefix: str
) -> None:
    """One worker batch of 9,000 entries of one stream: acknowledged in
    several ``ACK`` calls (one would pass Lua more values than it unpacks)."""
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1, timeout=10.0)
        values = {f"k{n}": n for n in range(9000)}
        await wb.put_many(values)
        table = Table()
        worker = wb.worker(CallableSink(table.apply), block=0, batch_size=9000)
        try:
            assert await worker.run_once() == 9000
        finally:
            await worker.aclose()
        assert table.values() == values
        assert (await wb.stats()).backlog == 0
        await wb.aclose()


def _owner_of(cluster: ClusterInfo, key: str) -> int:
    return cluster.slot_owners()[key_slot(key.encode())]


async def test_a_put_whose_append_fails_leaves_no_value_the_queue_lacks(
    url: str, redis_cluster: ClusterInfo, nodes: dict[int, redis.Redis],
    key_prefix: str,
) -> None:  # fmt: skip
    """The stream's primary refuses writes (over ``maxmemory``) while the
    key's primary takes them: the put raises, and the cache must not show
    its value (the database will never get it), nor the older one (the
    put's first step dropped it)."""
    stream = cluster_stream_key(key_prefix, "q", 0, 1)
    full = _owner_of(redis_cluster, stream)
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        head = cache.engine.head
        key = next(
            k for k in (f"user:{n}" for n in range(1000))
            if _owner_of(redis_cluster, head + k) != full
        )  # fmt: skip
        await cache.set(key, "old")
        wb = cache.write_behind(name="q", partitions=1)
        await wb.start()
        nodes[full].config_set("maxmemory", 1)
        try:
            with pytest.raises(StoreError):
                await wb.put(key, "new")
        finally:
            nodes[full].config_set("maxmemory", 0)
        assert await cache.get(key) != "new"  # (a miss: the hold dropped "old")
        assert (await wb.stats()).backlog == 0
        await wb.put(key, "newer")  # works again
        assert await cache.get(key) == "newer"
        table = Table()
        await _drain(wb, table)
        assert table.values() == {key: "newer"}
        await wb.aclose()


async def test_racing_puts_of_one_key_leave_the_newest_version_cached(
    url: str, key_prefix: str
) -> None:
    """Two processes put one key at once. Their steps interleave (hold,
    append, store); whatever the order, the cache ends with the value of
    the highest version, which is what the database keeps. (A smoke test:
    the harmful order is rare here; tests/test_writebehind_cluster_failover.py
    forces it with a stopped replica.)"""
    async with (
        AsyncCache(url, prefix=key_prefix, timeout=1.0) as one,
        AsyncCache(url, prefix=key_prefix, timeout=1.0) as two,
        AsyncCache(url, prefix=key_prefix, timeout=1.0) as reader,
    ):
        queues = [c.write_behind(name="q", partitions=2) for c in (one, two)]
        versions: dict[int, str] = {}

        async def writer(wb: AsyncWriteBehind, who: str) -> None:
            for n in range(60):
                value = f"{who}{n}"
                versions[await wb.put("hot", value)] = value

        tasks = [
            await run_in_background(functools.partial(writer, wb, who))
            for wb, who in zip(queues, "ab", strict=True)
        ]
        for task in tasks:
            await task.join(WAIT * 6)
        assert len(versions) == 120
        newest = versions[max(versions)]
        assert await reader.get("hot") == newest
        table = Table()
        await _drain(queues[0], table)
        assert table.values() == {"hot": newest}
        for wb in queues:
            await wb.aclose()


async def test_replicas_wait_on_the_streams_primary(
    url: str, redis_cluster: ClusterInfo, nodes: dict[int, redis.Redis],
    key_prefix: str,
) -> None:  # fmt: skip
    """``replicas=N`` sends ``WAIT`` to the primary of the stream, on the
    connection of the append; this cluster has one replica per primary, so
    a put asking for 2 raises (queued, but not safe from a failover)."""
    stream = cluster_stream_key(key_prefix, "q", 0, 1)
    owner = _owner_of(redis_cluster, stream)
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1, replicas=2,
                                replica_timeout=0.05)  # fmt: skip
        await wb.start()
        for node in nodes.values():
            node.config_resetstat()
        with pytest.raises(StoreError, match="replicas"):
            await wb.put("k", 1)
        waits = _command_calls(nodes, "wait")
        assert waits[owner] == 1
        assert sum(waits.values()) == 1, waits
        assert (await wb.stats()).backlog == 1  # queued all the same
        await wb.remove(force=True)
        await wb.aclose(flush=False)
