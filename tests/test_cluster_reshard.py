"""Resharding a Redis Cluster under traffic: the slots of the hot keys move
from one primary to another (``CLUSTER SETSLOT ... IMPORTING/MIGRATING``,
``MIGRATE`` of their keys, ``CLUSTER SETSLOT ... NODE``), one after the
other, while readers (with L1 and without), writers (commit, then
invalidate) and write-through run (``tests/traffic.py``); then the slots
move back.

Asserted: 0 caller errors on reads; 0 reads staler than the bound (a read
that began more than the bound after an invalidation returned True saw
the value before it; the bound is ``max_staleness``, 0.1 s, for the
reader with L1 and for the one without, whose concurrent callers share
reads in flight); every slot ends on its new owner;
0 keys stale once it is quiet, read by a new cache, by one without L1 and
by the reader's L1 once its bus has caught up (every invalidation that
returned True held; the ones that returned False were queued and landed).
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.crc import key_slot

from freshcache import L1, Cache
from tests.cluster import ClusterInfo, own_redis_cluster
from tests.traffic import Workload, settle, stale_reads

pytestmark = pytest.mark.redis

HOT = 30  # keys, all on the primary whose slots move
WARM_UP = 1.0  # seconds of traffic before the first slot moves
PAUSE = 0.1  # seconds between two slots' moves
PASSWORD = "cluster-reshard"  # the nodes' default user takes any


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def move_slot(cluster: ClusterInfo, slot: int, source: int, target: int) -> int:
    """Move ``slot`` from the primary at ``source`` to the one at ``target``
    the way ``redis-cli --cluster reshard`` does; returns the keys moved."""
    src, dst = _node(source), _node(target)
    moved = 0
    try:
        src_id = src.execute_command("CLUSTER MYID")
        dst_id = dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command(
                "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys
            )
            moved += len(keys)
        for port in (target, source, *cluster.ports):  # the owners first
            node = _node(port)
            try:
                node.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
            finally:
                node.close()
    finally:
        src.close()
        dst.close()
    return moved


def test_resharding_under_traffic(key_prefix: str) -> None:
    with own_redis_cluster(nodes=3) as cluster:
        url = f"redis+cluster://:{PASSWORD}@{','.join(cluster.addresses)}/"
        options = {"prefix": key_prefix, "timeout": 0.2}

        def make(**extra: object) -> Cache:
            return Cache(url, **options, **extra)  # type: ignore[arg-type]

        with make(l1=L1()) as reader, make() as plain, make() as writer:
            head = writer.engine.head
            owners = cluster.slot_owners()
            source, target = cluster.ports[0], cluster.ports[1]
            keys = [
                key
                for key in (f"item:{i}" for i in range(10_000))
                if owners[key_slot((head + key).encode())] == source
            ][:HOT]
            slots = sorted({key_slot((head + key).encode()) for key in keys})
            work = Workload(
                keys, readers={"reader": reader, "plain": plain}, writer=writer
            )
            work.start()
            time.sleep(WARM_UP)
            moved = 0
            for there, back in ((source, target), (target, source)):
                for slot in slots:
                    moved += move_slot(cluster, slot, there, back)
                    time.sleep(PAUSE)
                after = cluster.slot_owners()
                assert all(after[slot] == back for slot in slots)
            time.sleep(WARM_UP)
            work.stop()

            pending = settle(writer)
            with make() as fresh:
                caches = {"fresh": fresh, "reader": reader, "plain": plain}
                stale = stale_reads(caches, keys, work.db)
            staler = work.staler()
            sent = writer.stats().counts.get("invalidations_sent", 0)
            received = {
                "reader": reader.stats().counts.get("invalidations_received", 0),
                "plain": plain.stats().counts.get("invalidations_received", 0),
            }
            errors = {
                "reader": reader.stats().errors,
                "plain": plain.stats().errors,
                "writer": writer.stats().errors,
            }

        print(
            f"\nresharding {len(slots)} slots {source} -> {target} and back "
            f"({moved} keys migrated): {work.summary({})}; {pending} pending "
            f"after quiet; stale after quiet {len(stale)}; bus messages sent "
            f"{sent}, received {received}; errors {errors}"
        )
        assert work.read_errors == []
        assert pending == 0
        assert staler == [], staler[:10]
        assert stale == [], stale
        assert moved > 0
        assert work.invalidations[True] > 0
        assert work.written_through[True] > 0
