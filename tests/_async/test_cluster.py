"""freshcache on a Redis Cluster: the shipped contract, multi-key operations
over every node, rolling deploys (the live-version steps) and the bus.

Every test runs on the session's private three-primary cluster
(``tests/cluster.py``, fixture ``redis_cluster``), through a
``redis+cluster://`` URL. Hand-written for the async API; scripts/unasync.py
generates the sync twin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag
from freshcache._core.layout import bus_channel
from freshcache.testing.contract import AsyncCacheContract
from tests._async.waiting import WAIT, wait_until_listening
from tests.cluster import ClusterInfo, primary_clients, refused


class TestCluster(AsyncCacheContract):
    """``AsyncCache("redis+cluster://...")``: Redis Cluster only."""

    @pytest.fixture
    def make_cache(self, cluster_url: str) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, cluster_url, timeout=1.0)


class TestL1OverCluster(AsyncCacheContract):
    """``AsyncCache("redis+cluster://...", l1=L1())``: L1 in front of a cluster."""

    @pytest.fixture
    def make_cache(self, cluster_url: str) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, cluster_url, l1=L1(), timeout=1.0)


@pytest.fixture
def nodes(redis_cluster: ClusterInfo) -> Iterator[dict[int, redis.Redis]]:
    with primary_clients(redis_cluster) as direct:
        yield direct


def _stored(nodes: dict[int, redis.Redis], prefix: str) -> dict[int, set[str]]:
    """Every key of ``prefix`` on each node."""
    return {
        port: {k.decode() for k in node.scan_iter(match=f"*{prefix}*", count=1000)}
        for port, node in nodes.items()
    }


async def test_multi_key_operations_span_every_node_without_a_cross_slot_command(
    cluster_url: str, nodes: dict[int, redis.Redis], key_prefix: str
) -> None:
    keys = [f"user:{n}" for n in range(60)]
    async with AsyncCache(cluster_url, prefix=key_prefix, timeout=1.0) as cache:
        assert await cache.set_many({key: n for n, key in enumerate(keys)})
        where = _stored(nodes, key_prefix)
        data = {p: {k for k in found if ":user:" in k} for p, found in where.items()}
        assert all(data.values()), f"the keys must reach every node: {data}"
        assert sum(map(len, data.values())) == len(keys)

        assert await cache.get_many(keys) == {key: n for n, key in enumerate(keys)}

        # Tags: members from every node in one tag set (in its own slot).
        tagged = keys[:30]
        for key in tagged:
            await cache.invalidate(key)
            assert await cache.get_or_load(key, lambda: "v", tags=["team:7"]) == "v"
        assert await cache.invalidate_tags("team:7")
        after = await cache.get_many(keys)
        assert set(after) == set(keys[30:]), "exactly the tagged keys are gone"

        # Several keys at once, on several nodes.
        assert await cache.invalidate(*keys[30:40])
        assert set(await cache.get_many(keys)) == set(keys[40:])

        await cache.clear()
        assert await cache.get_many(keys) == {}
        left = set().union(*_stored(nodes, key_prefix).values())
        assert all("!" in key for key in left), f"data keys left: {left}"
        assert cache.stats().errors == {}
    assert refused(nodes, "CROSSSLOT") == 0


async def test_invalidation_and_bump_reach_every_live_version(
    cluster_url: str, nodes: dict[int, redis.Redis], key_prefix: str
) -> None:
    make = functools.partial(AsyncCache, cluster_url, prefix=key_prefix, timeout=1.0)
    async with make(version="v1") as old, make(version="v2") as new:
        await old.get("warm")  # both versions live in the registry
        keys = [f"user:{n}" for n in range(30)]
        for key in keys:
            await new.set(key, 1)
            await new.set(f"team:{key}", 1)
        await new.bump("user")  # the other version's keys under ~1: still found
        for key in keys:
            await new.set(key, 2)

        for key in keys:
            await old.invalidate(key)
        assert await new.get_many(keys) == {}, "v1's invalidation reached v2"

        assert await new.get(f"team:{keys[0]}") == 1
        assert await old.bump("team") >= 1
        async with make(version="v2") as another:  # reads the versions anew
            found = await another.get_many([f"team:{key}" for key in keys])
            assert found == {}, "v1's bump reached v2"

        assert await new.get_or_load("org:1", lambda: "o", tags=["org"]) == "o"
        assert await old.invalidate_tags("org")
        assert await new.get("org:1") is MISS, "v1's tag invalidation reached v2"
        assert old.stats().errors == {}
        assert new.stats().errors == {}
    assert refused(nodes, "CROSSSLOT") == 0


async def test_the_bus_reaches_every_process_whichever_node_owns_the_key(
    cluster_url: str, nodes: dict[int, redis.Redis], key_prefix: str
) -> None:
    make = functools.partial(
        AsyncCache, cluster_url, prefix=key_prefix, timeout=1.0, l1=L1()
    )
    keys = [f"user:{n}" for n in range(30)]  # owned by every node
    async with make() as writer, make() as reader:
        for cache in (reader, writer):
            await cache.get("warm:up")  # starts the bus
            await wait_until_listening(cache)
        for key in keys:
            await writer.set(key, "old")
            assert await reader.get(key) == "old"  # now in the reader's L1
        for key in keys:
            await writer.set(key, "new")
        flag = AsyncFlag()
        for _ in range(int(WAIT / 0.01)):
            seen = await reader.get_many(keys)
            if all(value == "new" for value in seen.values()):
                break
            await flag.wait(0.01)
        assert await reader.get_many(keys) == dict.fromkeys(keys, "new")
        assert reader.stats().errors == {}
    where = {p for p, found in _stored(nodes, key_prefix).items() if found}
    assert len(where) == len(nodes)


async def test_every_bus_message_goes_through_the_bus_channels_node(
    cluster_url: str,
    nodes: dict[int, redis.Redis],
    key_prefix: str,
) -> None:
    """Invalidations and the watermark's pings are published on one node, the
    owner of the bus channel's slot: a subscriber anywhere gets them in the
    order that node took them (docs/coherence.md, section 6a)."""
    slot = key_slot(bus_channel(key_prefix).encode())
    ranges = next(iter(nodes.values())).execute_command("CLUSTER", "SLOTS")
    (owner,) = [int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1])]
    make = functools.partial(
        AsyncCache, cluster_url, prefix=key_prefix, timeout=1.0, l1=L1()
    )
    keys = [f"user:{n}" for n in range(30)]
    async with make() as cache:
        await cache.get("warm:up")  # starts the bus, and its pings
        await wait_until_listening(cache)
        for key in keys:  # keys of every node; no loader, so no fill notice
            await cache.set(key, 1)
            await cache.invalidate(key)
        assert cache.stats().errors == {}
    published = {}
    for port, node in nodes.items():
        stats: dict[str, Any] = node.info("commandstats")
        published[port] = int(stats.get("cmdstat_publish", {}).get("calls", 0))
    assert published[owner] >= len(keys)
    assert all(calls == 0 for port, calls in published.items() if port != owner), (
        published
    )
