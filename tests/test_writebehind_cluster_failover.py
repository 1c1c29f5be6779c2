"""Write-behind through a Redis Cluster failover: what an acknowledged put
survives.

Four primaries with a replica each (``tests/cluster.py``,
``cluster-node-timeout`` 1000 ms); four runs, each on a queue whose one
partition lives on another primary. A producer thread puts keys as fast as
it can; once 300 puts have returned, the primary that holds the queue's
stream is killed (SIGKILL) and the producer stops at its first error. In
two of the runs the primary's replica is first made to fall behind (stopped
with SIGSTOP and its link cut, for up to half a second, then continued
right after the kill), which is what makes a failover lose writes on one
machine; on a quiet loopback it hardly ever does. Once the replica is
promoted, every acknowledged write is looked for in the stream, a worker
drains the queue, and each key's cached value is compared with the
database's.

Asserted with ``replicas=1`` (each put's append waits, on its own
connection to the stream's primary, for ``WAIT 1``), with and without the
stalled replica: 0 acknowledged writes lost, all in the database after
the drain, no key cached with a value that is not the database's. Without
the ``WAIT`` on a cluster, the stalled run lost 51 of 52 writes
acknowledged during the stall. Reported, not asserted, with the default
``replicas=0``: how many acknowledged writes the failover lost, and how
many keys then stayed cached with a value the database never got (with
the stalled replica: 49 of 50 lost, 37 such keys, in one run).

Two more tests stop a replica to force a put into a window between its
steps. One makes a put raise after its append (its ``WAIT`` times out):
the write is queued, and the key's older value must not be served (if the
first step only marked the key: ``'old' is MISS`` fails). The other forces
the one order of two puts of a key that matters, the put with the lower
id storing its value last: the cache must keep the higher id's value,
which the database keeps (without the id check in the store step: ``'A'
== 'B'`` fails).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
import redis
from redis.cluster import ClusterNode

from freshcache import MISS, Cache, CallableSink, StoreError, Write
from freshcache._core.layout import cluster_stream_key
from tests.cluster import ClusterInfo, own_redis_cluster
from tests.servers import RedisProcess

pytestmark = pytest.mark.redis

AT_LEAST = 300  # puts acknowledged before the kill
STALL = 0.5  # seconds the replica is stopped before the kill, at most
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


def _replica_of(cluster: ClusterInfo, primary: RedisProcess) -> RedisProcess:
    with redis.Redis(host="127.0.0.1", port=primary.port) as client:
        info = client.info("replication")
    port = int(info["slave0"]["port"])
    return next(node for node in cluster.nodes if node.port == port)


def _run(
    cluster: ClusterInfo, url: str, prefix: str, name: str, replicas: int,
    *, stall: bool = False,
) -> dict[str, int]:  # fmt: skip
    """One run: put, kill the stream's primary, count. Returns the figures.
    ``stall``: just before the kill, the primary's replica is stopped
    (SIGSTOP) and its link cut (``CLIENT KILL TYPE replica`` on the
    primary), for up to ``STALL`` seconds, so that it misses what the
    primary acknowledges meanwhile; it continues (SIGCONT) right after the
    kill and is promoted."""
    stream = cluster_stream_key(prefix, name, 0, 1)
    victim = cluster.primary_for(stream)
    replica = _replica_of(cluster, victim)
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
        before = len(versions)
        if stall:
            replica.process.send_signal(signal.SIGSTOP)
            with redis.Redis(host="127.0.0.1", port=victim.port) as link:
                link.client_kill_filter(_type="replica")  # the link is cut
            try:
                until = time.monotonic() + STALL
                while time.monotonic() < until and len(versions) < before + 50:
                    time.sleep(0.01)
                victim.kill()
            finally:
                replica.process.send_signal(signal.SIGCONT)
        else:
            victim.kill()
        during = len(versions) - before
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

        def backlog() -> int:
            """The queue's backlog; a call that still meets the old slot map
            fails (redis-py reads it again after the failure): ask again."""
            deadline = time.monotonic() + FAILOVER
            while True:
                try:
                    return wb.stats().backlog
                except StoreError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)

        worker = wb.worker(CallableSink(apply), block=0)
        try:
            deadline = time.monotonic() + FAILOVER
            while backlog() and time.monotonic() < deadline:
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
        "acknowledged while the replica stalled": during if stall else 0,
        "lost": len(lost),
        "behind in the database": len(behind),
        "cached, not the database's": foreign,
    }


def test_an_acknowledged_put_survives_a_failover_with_replicas_1(
    key_prefix: str,
) -> None:
    with own_redis_cluster(nodes=4, replicas=1) as cluster:
        url = f"redis+cluster://{','.join(cluster.addresses)}/"
        names: dict[int, str] = {}  # one queue per primary: each run kills one
        for n in range(10_000):
            stream = cluster_stream_key(key_prefix, f"q{n}", 0, 1)
            names.setdefault(cluster.primary_for(stream).port, f"q{n}")
            if len(names) == 4:
                break
        safe, fast, stalled_safe, stalled_fast = names.values()
        figures = {
            "replicas=1": _run(cluster, url, key_prefix, safe, 1),
            "replicas=0": _run(cluster, url, key_prefix, fast, 0),
            "replicas=1, replica stalled": _run(
                cluster, url, key_prefix, stalled_safe, 1, stall=True
            ),
            "replicas=0, replica stalled": _run(
                cluster, url, key_prefix, stalled_fast, 0, stall=True
            ),
        }
    print()
    for mode, found in figures.items():
        print(f"{mode}: {found}")
    for mode in ("replicas=1", "replicas=1, replica stalled"):
        found = figures[mode]
        assert found["acknowledged"] >= AT_LEAST
        assert found["lost"] == 0, mode
        assert found["behind in the database"] == 0, mode
        assert found["cached, not the database's"] == 0, mode
    assert figures["replicas=0"]["acknowledged"] >= AT_LEAST


@pytest.fixture(scope="module")
def replicated() -> Iterator[ClusterInfo]:
    """Three primaries with a replica each, for the tests that stop one."""
    with own_redis_cluster(nodes=3, replicas=1) as cluster:
        yield cluster


def test_a_put_that_raised_after_its_append_leaves_no_older_value_cached(
    replicated: ClusterInfo, key_prefix: str
) -> None:
    """A put whose append went through but whose replica never confirmed it
    (the replica stopped): ``put`` raises, the write is queued all the
    same, and its value was never stored. The older value must not be
    served meanwhile (the put's first step dropped it), nor after the
    worker applied the write (it would be, to its TTL, if that step only
    marked the key)."""
    cluster = replicated
    url = f"redis+cluster://{','.join(cluster.addresses)}/"
    stream = cluster_stream_key(key_prefix, "raised", 0, 1)
    replica = _replica_of(cluster, cluster.primary_for(stream))
    with Cache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="raised", partitions=1, replicas=1,
                                replica_timeout=0.3)  # fmt: skip
        wb.start()
        cache.set("user:1", "old")
        replica.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(StoreError, match="replicas"):
                wb.put("user:1", "new")
        finally:
            replica.process.send_signal(signal.SIGCONT)
        assert wb.stats().backlog == 1  # queued all the same
        assert cache.get("user:1") is MISS
        rows: dict[str, object] = {}
        worker = wb.worker(
            CallableSink(lambda ws: rows.update({w.key: w.value for w in ws})),
            block=0,
        )
        worker.run(until_idle=True)
        worker.close()
        assert rows == {"user:1": "new"}
        assert cache.get("user:1") != "old"
        wb.close(flush=False)


def test_a_put_whose_store_comes_last_does_not_hide_a_newer_write(
    replicated: ClusterInfo, key_prefix: str
) -> None:
    """Two puts of one key on a cluster, their steps interleaved on purpose:
    put A appends first (the lower id) but waits for its replica, which is
    stopped; meanwhile put B appends (the higher id) and stores its value;
    then the replica continues and A stores last. The database keeps B (the
    version guard), so the cache must show B: A's store, which comes last,
    must not overwrite it (it would, if stores were not ordered by id)."""
    cluster = replicated
    url = f"redis+cluster://{','.join(cluster.addresses)}/"
    stream = cluster_stream_key(key_prefix, "q", 0, 1)
    primary = cluster.primary_for(stream)
    replica = _replica_of(cluster, primary)
    with (
        Cache(url, prefix=key_prefix, timeout=1.0) as one,
        Cache(url, prefix=key_prefix, timeout=1.0) as two,
    ):
        slow = one.write_behind(name="q", partitions=1, replicas=1,
                                replica_timeout=20.0)  # fmt: skip
        fast = two.write_behind(name="q", partitions=1)
        slow.start()
        fast.start()
        direct = redis.Redis(host="127.0.0.1", port=primary.port)
        versions: dict[str, int] = {}
        replica.process.send_signal(signal.SIGSTOP)
        try:
            writer = threading.Thread(
                target=lambda: versions.update(a=slow.put("hot", "A"))
            )
            writer.start()
            deadline = time.monotonic() + 10
            while not direct.xlen(stream):  # A appended, and waits
                assert time.monotonic() < deadline
                time.sleep(0.005)
            versions["b"] = fast.put("hot", "B")  # appends, stores
            assert one.get("hot") == "B"
        finally:
            replica.process.send_signal(signal.SIGCONT)
            direct.close()
        writer.join(30)
        assert not writer.is_alive()
        assert versions["a"] < versions["b"]
        assert one.get("hot") == "B"
        assert two.get("hot") == "B"
        slow.close(flush=False)
        fast.close(flush=False)
