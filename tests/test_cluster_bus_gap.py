"""Invalidations lost between cluster nodes, the subscriber's connection
staying up: the reader's L1 must not serve what they invalidated.

On a Redis Cluster a PUBLISH runs on the bus channel's node, which forwards
it to every other node over its cluster-bus link to that node. Here every
link to the reader's node goes through a proxy (the node announces the
proxy's port as its cluster-bus port), and the proxy drops what passes
while it is cut: what the channel's node forwards meanwhile is lost, as
when a node dies before forwarding, or a link is reset, and a listener on
the reader's node never hears of it, its own connection untouched. Its
pings, sent through the channel's node too, are lost as well: the first
one back afterwards finds older ones missing (a gap), and the listener
drops L1.

Asserted, over several rounds, each invalidating a key whose old value is
in the reader's L1 while the link is cut: once the reader has caught up
(its watermark passed the end of the cut), it never returns the old value;
at least one round lost the invalidation on the way (the reader's
``invalidations_received`` did not move), so the check was exercised; and
gaps were counted. With the gap check switched off (``Pings.back`` never
reporting one), the reader returned the old value in every round.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from freshcache import L1, MISS, Cache
from freshcache._core.layout import bus_channel
from tests.cluster import CLUSTER_BUS_OFFSET, ClusterInfo, own_redis_cluster
from tests.proxy import DelayProxy, delay_proxy
from tests.traffic import caught_up, listening_on

pytestmark = pytest.mark.redis

ROUNDS = 4
CUT = 0.4  # seconds the links to the reader's node drop everything
SWITCH_TIMEOUT = 20.0  # seconds for the nodes to move to the proxy


def _through(cluster: ClusterInfo, port: int, proxy: DelayProxy) -> None:
    """Make the node at ``port`` announce ``proxy`` as its cluster-bus port,
    and wait until every other node connects to it there (each node drops
    its link and makes it again when the announced port changes)."""
    node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        node.config_set("cluster-announce-bus-port", proxy.port)
    finally:
        node.close()
    deadline = time.monotonic() + SWITCH_TIMEOUT
    others = [p for p in cluster.ports if p != port]
    while time.monotonic() < deadline:
        views = [
            subprocess.run(
                ["redis-cli", "-p", str(other), "cluster", "nodes"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout  # redis-py's parsed reply leaves the bus port out
            for other in others
        ]  # fmt: skip
        if all(f":{port}@{proxy.port}" in view for view in views):
            return
        time.sleep(0.1)
    raise AssertionError("the nodes never moved to the proxy")


def test_invalidations_lost_between_nodes_are_never_served(key_prefix: str) -> None:
    with own_redis_cluster(nodes=3) as cluster:
        url = f"redis+cluster://{','.join(cluster.addresses)}/"
        channel = bus_channel(key_prefix)
        sender = cluster.primary_for(channel)  # every bus PUBLISH runs here
        other = next(node for node in cluster.nodes if node.port != sender.port)
        with delay_proxy(other.port + CLUSTER_BUS_OFFSET) as proxy:
            _through(cluster, other.port, proxy)

            def make(**extra: object) -> Cache:
                return Cache(url, prefix=key_prefix, timeout=1.0, **extra)  # type: ignore[arg-type]

            reader = listening_on(other.port, lambda: make(l1=L1()), channel)
            served_old: list[str] = []
            rounds: list[tuple[str, int, object]] = []
            lost = 0
            with reader, make() as writer:
                for n in range(ROUNDS):
                    key = f"k{n}"
                    assert reader.get_or_load(key, lambda: "old") == "old"
                    caught_up(reader)
                    hits = reader.stats().l1.hits
                    assert reader.get(key) == "old"
                    assert reader.stats().l1.hits == hits + 1  # L1
                    received = reader.stats().counts.get("invalidations_received", 0)
                    proxy.blackhole = True
                    try:
                        time.sleep(CUT / 4)
                        assert writer.invalidate(key)  # after the commit of "new"
                        time.sleep(CUT)
                    finally:
                        proxy.blackhole = False
                    caught_up(reader)  # a ping sent after the cut came back
                    got = reader.stats().counts.get("invalidations_received", 0)
                    lost += got == received
                    seen = reader.get(key)
                    rounds.append((key, got - received, seen))
                    if seen == "old":
                        served_old.append(key)
                gaps = reader.stats().counts.get("bus_gap", 0)

        print(
            f"\nrounds (key, messages received during the round, read after): "
            f"{rounds}; invalidation lost in {lost} of {ROUNDS}; gaps {gaps}; "
            f"old values served {served_old}"
        )
        assert served_old == []
        assert all(seen is MISS for _, _, seen in rounds)
        assert lost >= 1
        assert gaps >= 1
