"""Write-behind through a Redis Cluster failover: what an acknowledged put
survives.

Three primaries with a replica each (``tests/cluster.py``,
``cluster-node-timeout`` 1000 ms). A producer thread puts keys into a
one-partition queue as fast as it can; once a few hundred puts have
returned, the primary that holds the queue's stream is killed (SIGKILL)
and the producer stops at its first error. Once the replica is promoted,
every acknowledged write is looked for in the stream, a worker drains the
queue, and each key's cached value is compared with what the database got.

Asserted with ``replicas=1`` (each put's append waits, on its own
connection to the stream's primary, for ``WAIT 1``): 0 acknowledged writes
lost, every one of them in the database after the drain, and no cached
value the database lacks. Reported, not asserted, with the default
``replicas=0`` (asynchronous replication): how many acknowledged writes
the failover lost, and how many keys then showed a value the database
never got.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import redis
from redis.cluster import ClusterNode

from freshcache import MISS, Cache, CallableSink, StoreError, Write
from freshcache._core.layout import cluster_stream_key
from tests.cluster import ClusterInfo, own_redis_cluster

pytestmark = pytest.mark.redis

AT_LEAST = 300  # puts acknowledged before the kill
FAILOVER = 30.0  # seconds the replica may take to be promoted


def _entry_id(version: int) -> str:
    return f"{version // 1_000_000}-{version % 1_000_000}"


def _wait_for_new_owner(cluster: ClusterInfo, key: str, old: int) -> int:
    deadline = time.monotonic() + FAILOVER
    while time.monotonic() < deadline:
        try:
            owner = cluster.primary_for(key)
        except (RuntimeError, StopIteration):
            owner = None
        if owner is not None and owner.port != old and owner.process.poll() is None:
            return owner.port
        time.sleep(0.1)
    raise AssertionError(f"no replica took over {key!r} within {FAILOVER} s")


def _run(
    cluster: ClusterInfo, url: str, prefix: str, name: str, replicas: int
) -> dict[str, int]:
    """One run: put, kill the stream's primary, count. Returns the figures."""
    stream = cluster_stream_key(prefix, name, 0, 1)
    victim = cluster.primary_for(stream)
    acked: dict[str, tuple[int, int]] = {}  # key -> its newest (version, value)
    versions: list[int] = []  # of every acknowledged put
    errors: list[BaseException] = []
    stop = threading.Event()
    enough = threading.Event()
    with Cache(url, prefix=prefix, timeout=1.0) as cache:
        wb = cache.write_behind(
            name=name, partitions=1, replicas=replicas, replica_timeout=2.0,
            timeout=2.0,
        )  # fmt: skip
        wb.start()

        def produce() -> None:
            n = 0
            while not stop.is_set():
                key = f"{name}:{n % 400}"
                try:
                    version = wb.put(key, n)
                except StoreError as exc:
                    errors.append(exc)
                    return
                acked[key] = (version, n)
                versions.append(version)
                n += 1
                if n >= AT_LEAST:
                    enough.set()

        producer = threading.Thread(target=produce, name="producer")
        producer.start()
        assert enough.wait(120), "the producer never got going"
        victim.kill()
        stop.set()
        producer.join(60)
        assert not producer.is_alive()
        _wait_for_new_owner(cluster, stream, victim.port)

        direct = redis.RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.alive()],
            decode_responses=True,
        )
        try:
            deadline = time.monotonic() + FAILOVER
            while True:  # until the promoted replica answers for the slot
                try:
                    present = {i for i, _ in direct.xrange(stream, "-", "+")}
                    break
                except redis.RedisError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
        finally:
            direct.close()
        lost = [v for v in versions if _entry_id(v) not in present]

        rows: dict[str, tuple[int, object]] = {}

        def apply(writes: Sequence[Write]) -> None:
            for w in writes:
                if w.key not in rows or rows[w.key][0] < w.version:
                    rows[w.key] = (w.version, w.value)

        worker = wb.worker(CallableSink(apply), block=0)
        try:
            deadline = time.monotonic() + FAILOVER
            while wb.stats().backlog and time.monotonic() < deadline:
                worker.run(until_idle=True)
        finally:
            worker.close()
        behind = [k for k, (v, _) in acked.items() if rows.get(k, (0,))[0] < v]
        foreign = 0  # cached values that are not the database's
        for key in {f"{name}:{n}" for n in range(400)}:
            cached = cache.get(key)
            if cached is not MISS and (key not in rows or rows[key][1] != cached):
                foreign += 1
        wb.close(flush=False)
    return {
        "acknowledged": len(versions),
        "lost": len(lost),
        "behind in the database": len(behind),
        "cached, not the database's": foreign,
    }


def test_an_acknowledged_put_survives_a_failover_with_replicas_1(
    key_prefix: str,
) -> None:
    with own_redis_cluster(nodes=3, replicas=1) as cluster:
        url = f"redis+cluster://{','.join(cluster.addresses)}/"
        first = cluster.primary_for(cluster_stream_key(key_prefix, "safe", 0, 1))
        fast = next(  # the default's queue: on a primary that keeps its replica
            name for name in (f"fast{n}" for n in range(1000))
            if cluster.primary_for(cluster_stream_key(key_prefix, name, 0, 1))
            is not first
        )  # fmt: skip
        safe = _run(cluster, url, key_prefix, "safe", replicas=1)
        print(f"\nreplicas=1: {safe}")
        default = _run(cluster, url, key_prefix, fast, replicas=0)
        print(f"replicas=0: {default}")
    assert safe["acknowledged"] >= AT_LEAST
    assert safe["lost"] == 0
    assert safe["behind in the database"] == 0
    assert safe["cached, not the database's"] == 0
    assert default["acknowledged"] >= AT_LEAST
