"""A Redis Cluster failover under traffic: on three primaries with one
replica each (``tests/cluster.py``, ``cluster-node-timeout`` 1000 ms), the
primary that owns the hot keys (and the bus channel) is killed (SIGKILL)
5 s into 20 s of reads (with L1 and without), writes (commit, then
invalidate), write-through and write-behind (``tests/traffic.py``); its
replica is promoted.

Asserted: 0 caller errors on reads (they fall back to the loader); 0 reads
staler than the bound once the new primary serves (a read that began more
than the bound after an invalidation returned True saw the value before
it; the bound is ``max_staleness``, 0.1 s, for the reader with L1 and for
the one without, whose concurrent callers share reads in flight); 0 keys stale
once it is quiet, read by a new cache, by one without L1 and by the
reader's L1 once its bus caught up (every invalidation that returned True
held on the promoted replica; the ones that returned False were queued
and landed: ``pending_invalidations`` back to 0); 0 acknowledged
write-behind writes lost with ``replicas=1`` (those lost with the default
are reported); the bus still works afterwards (an L1 in another cache,
whose listener was on the killed node, resubscribes on another node,
serves again, and sees a later write). Reported (and bounded loosely): the
time from the kill until a cache without L1 serves a hit from Redis again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from freshcache import L1, MISS, Cache
from freshcache._core.layout import bus_channel
from tests._sync.waiting import WAIT, wait_until_current
from tests.cluster import ClusterInfo, own_redis_cluster
from tests.traffic import Workload, listening_on, settle, stale_reads

pytestmark = pytest.mark.redis

HOT = 40  # keys, all owned by the primary that is killed
KILL_AT = 5.0  # seconds into the traffic
TRAFFIC = 20.0  # seconds of traffic in all
PASSWORD = "cluster-failover"  # the nodes' default user takes any


def test_cluster_failover_under_traffic(key_prefix: str) -> None:
    with own_redis_cluster(nodes=3, replicas=1) as cluster:
        url = f"redis+cluster://:{PASSWORD}@{','.join(cluster.addresses)}/"
        options = {"prefix": key_prefix, "timeout": 0.2}
        channel = bus_channel(key_prefix)
        victim = cluster.primary_for(channel)

        def make(**extra: object) -> Cache:
            return Cache(url, **options, **extra)  # type: ignore[arg-type]

        # The observer's listener is on the node that will be killed.
        observer = listening_on(victim.port, lambda: make(l1=L1()), channel)
        # Write-behind's client authenticates the RESP2 way, which a node
        # without a password refuses when the URL carries one: no password.
        queued = Cache(
            f"redis+cluster://{','.join(cluster.addresses)}/",
            **options,  # type: ignore[arg-type]
        )
        with (
            observer, queued, make(l1=L1()) as reader, make() as plain,
            make() as writer,
        ):  # fmt: skip
            head = writer.engine.head
            owners = cluster.slot_owners()
            keys = [
                key
                for key in (f"item:{i}" for i in range(10_000))
                if owners[key_slot((head + key).encode())] == victim.port
            ][:HOT]
            assert len(keys) == HOT
            seen_key = keys[0]
            probe = next(
                key
                for key in (f"probe:{i}" for i in range(10_000))
                if owners[key_slot((head + key).encode())] == victim.port
            )  # on the node that is killed too
            writer.set(probe, "here")
            assert observer.get_or_load(seen_key, lambda: 0) == 0
            queues = {
                "default": queued.write_behind(name="default"),
                "strict": queued.write_behind(name="strict", replicas=1),
            }
            work = Workload(  # seen_key: the bus check's own
                keys[1:], readers={"reader": reader, "plain": plain}, writer=writer,
                queues=queues,
            )  # fmt: skip
            work.start()
            time.sleep(KILL_AT)
            victim.kill()
            killed = time.monotonic()
            served_again: float | None = None
            while time.monotonic() - killed < TRAFFIC - KILL_AT:
                if served_again is None and plain.get(probe) == "here":
                    served_again = time.monotonic() - killed
                time.sleep(0.02)
            work.stop()
            promoted = cluster.primary_for(channel).port

            # Quiet: the queued invalidations land, the queues drain.
            pending = settle(writer)
            lost = work.drain()
            with make() as fresh:
                caches = {"fresh": fresh, "reader": reader, "plain": plain}
                stale = stale_reads(caches, keys[1:], work.db)
            up = killed + (served_again or 0.0)
            staler_after = work.staler(after=up)

            # The bus after the failover: the observer's listener moved to a
            # live node, its watermark comes back (so its L1 may serve), and a
            # later write reaches its L1.
            wait_until_current(observer)
            resubscribed = observer.stats().counts.get("bus_connect", 0)
            before = observer.get_or_load(seen_key, lambda: 0)
            l1_hits = observer.stats().l1.hits
            l1_served = (
                observer.get(seen_key) == before == 0
                and observer.stats().l1.hits == l1_hits + 1
            )
            assert writer.invalidate(seen_key)  # the row is 1 now
            bus_seen = False
            for _ in range(int(WAIT / 0.01)):
                if observer.get_or_load(seen_key, lambda: 1) == 1:
                    bus_seen = True
                    break
                time.sleep(0.01)
            errors = {
                "reader": reader.stats().errors,
                "plain": plain.stats().errors,
                "writer": writer.stats().errors,
                "observer": observer.stats().errors,
            }

        print(
            f"\ncluster failover {victim.port} -> {promoted}: Redis hits again "
            f"{served_again if served_again is None else round(served_again, 2)} "
            f"s after the kill (the new primary up at {up:.2f}); "
            f"{work.summary(lost, after=up)}; {pending} pending after quiet; "
            f"stale after quiet {len(stale)}; observer bus_connect "
            f"{resubscribed}, L1 served {l1_served}, saw the later write "
            f"{bus_seen}; errors {errors}"
        )
        assert work.read_errors == []
        assert pending == 0
        assert staler_after == [], staler_after[:10]
        assert stale == [], stale
        assert lost["strict"] == []
        assert work.acked["strict"]
        assert resubscribed >= 2
        assert l1_served
        assert bus_seen
        assert served_again is not None
        assert served_again < TRAFFIC - KILL_AT
        assert work.invalidations[True] > 0
        assert work.written_through[True] > 0
        assert promoted != victim.port


# -- an invalidation waits for a replica of each primary it touched -----------


@pytest.fixture(scope="module")
def replica_cluster() -> Iterator[ClusterInfo]:
    """Three primaries with one replica each, shared by the tests below (none
    kills a node)."""
    with own_redis_cluster(nodes=3, replicas=1) as cluster:
        yield cluster


def _url(cluster: ClusterInfo, query: str = "") -> str:
    return f"redis+cluster://:{PASSWORD}@{','.join(cluster.addresses)}/{query}"


def _waits(cluster: ClusterInfo) -> dict[int, int]:
    """``WAIT`` calls per node since its stats were last reset."""
    calls = {}
    for port in cluster.ports:
        node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            stats = node.info("commandstats")
        finally:
            node.close()
        calls[port] = int(stats.get("cmdstat_wait", {}).get("calls", 0))
    return calls


def _reset_stats(cluster: ClusterInfo) -> None:
    for port in cluster.ports:
        node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            node.config_resetstat()
        finally:
            node.close()


def _replica_of(cluster: ClusterInfo, port: int) -> int:
    for node in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1)
        try:
            info = client.info("replication")
        finally:
            client.close()
        if info.get("role") == "slave" and int(info["master_port"]) == port:
            return node.port
    raise AssertionError(f"no replica of {port}")


def test_an_invalidation_is_on_a_replica_when_it_returns(
    replica_cluster: ClusterInfo, key_prefix: str
) -> None:
    """By default each primary an invalidation's deletions went to is asked
    for one replica (``WAIT 1``) on the connection that deleted; the key is
    then gone on that replica too. Tag invalidations wait the same way."""
    _reset_stats(replica_cluster)
    keys = [f"user:{n}" for n in range(12)]  # owned by every primary
    with Cache(_url(replica_cluster), prefix=key_prefix, timeout=1.0) as cache:
        head = cache.engine.head
        for key in keys:
            assert cache.set(key, 1, tags=["team"])
        assert cache.invalidate(*keys[:6])
        owners = {replica_cluster.primary_for(head + key).port for key in keys[:6]}
        waits = _waits(replica_cluster)
        assert all(waits[port] >= 1 for port in owners), (owners, waits)
        for key in keys[:6]:
            port = _replica_of(
                replica_cluster, replica_cluster.primary_for(head + key).port
            )
            replica = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            try:
                replica.execute_command("READONLY")
                assert replica.exists(head + key) == 0
            finally:
                replica.close()
        before = sum(_waits(replica_cluster).values())
        assert cache.invalidate_tags("team")
        assert sum(_waits(replica_cluster).values()) > before
        # A replica slower than the wait (a loaded machine) makes an attempt
        # fail and be retried: nothing else may go wrong.
        assert set(cache.stats().errors) <= {"transient", "failover:unreplicated"}


def test_a_bump_is_on_a_replica_when_it_returns(
    replica_cluster: ClusterInfo, key_prefix: str
) -> None:
    """A bump waits like an invalidation: its ``INCR`` is followed by
    ``WAIT 1`` on its primary, and the replica holds the new namespace
    version when ``bump`` returns (a failover would otherwise send readers
    back to the keys it orphaned)."""
    _reset_stats(replica_cluster)
    with Cache(_url(replica_cluster), prefix=key_prefix, timeout=1.0) as cache:
        version = cache.bump("user")
        counter = f"{cache.engine.head}!ns:user"
        primary = replica_cluster.primary_for(counter).port
        assert _waits(replica_cluster)[primary] >= 1
        replica = redis.Redis(
            host="127.0.0.1", port=_replica_of(replica_cluster, primary),
            socket_timeout=1,
        )  # fmt: skip
        try:
            replica.execute_command("READONLY")
            assert int(replica.get(counter) or 0) == version
        finally:
            replica.close()
        # A replica slower than the wait (a loaded machine) makes an attempt
        # fail and be retried: nothing else may go wrong.
        assert set(cache.stats().errors) <= {"transient", "failover:unreplicated"}


def test_too_few_replicas_queue_the_invalidation(
    replica_cluster: ClusterInfo, key_prefix: str
) -> None:
    """``invalidation_replicas=2`` with one replica per primary: never
    confirmed, so the invalidation returns False (queued for retry) and is
    counted, but has run on the primary."""
    url = _url(replica_cluster, "?invalidation_replicas=2")
    with Cache(url, prefix=key_prefix, timeout=0.2) as cache:
        cache.set("k", 1)
        assert not cache.invalidate("k")
        stats = cache.stats()
        assert cache.get("k") is MISS
    assert stats.errors.get("failover:unreplicated", 0) >= 1
    assert stats.pending_invalidations >= 1


def test_invalidation_replicas_0_does_not_wait(
    replica_cluster: ClusterInfo, key_prefix: str
) -> None:
    _reset_stats(replica_cluster)
    url = _url(replica_cluster, "?invalidation_replicas=0")
    with Cache(url, prefix=key_prefix, timeout=1.0) as cache:
        cache.set("k", 1)
        assert cache.invalidate("k")
        assert cache.get("k") is MISS
    assert sum(_waits(replica_cluster).values()) == 0
