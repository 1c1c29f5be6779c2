"""freshcache under Redis Sentinel: the shipped contract on a set-up of the
test's own (a primary, 2 replicas, 3 sentinels), ``client=`` with an
application's Sentinel pool, and the error classes of a failover (a demoted
primary's READONLY reply). Failover under traffic: ``test_sentinel_failover.py``.

Hand-written for the async API; scripts/unasync.py generates the sync twin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio.sentinel

from freshcache import L1, MISS, AsyncCache
from freshcache.testing.contract import AsyncCacheContract
from tests import servers
from tests.sentinel import SERVICE, SentinelSet, own_redis_sentinel


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[SentinelSet]:
    """One set-up for the module (nothing here fails it over)."""
    with own_redis_sentinel() as found:
        yield found


class TestSentinel(AsyncCacheContract):
    """``AsyncCache("redis+sentinel://...")``: Redis only, through Sentinel."""

    @pytest.fixture
    def make_cache(self, sentinel_set: SentinelSet) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, sentinel_set.url(), timeout=1.0)


class TestL1OverSentinel(AsyncCacheContract):
    """An in-process tier in front of Redis through Sentinel (the bus too)."""

    @pytest.fixture
    def make_cache(self, sentinel_set: SentinelSet) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, sentinel_set.url(), l1=L1(), timeout=1.0)


class TestSentinelClient(AsyncCacheContract):
    """``AsyncCache(client=sentinel.master_for(...))``: the application's pool."""

    @pytest.fixture
    def make_cache(self, sentinel_set: SentinelSet) -> Callable[..., AsyncCache]:
        manager = redis.asyncio.sentinel.Sentinel(
            sentinel_set.sentinel_addresses,
            sentinel_kwargs={"password": sentinel_set.sentinel_password},
            password=sentinel_set.password,
        )
        primary = manager.master_for(SERVICE)
        return functools.partial(AsyncCache, client=primary, timeout=1.0)


async def test_writes_go_to_the_primary_sentinel_names(
    sentinel_set: SentinelSet, key_prefix: str
) -> None:
    async with AsyncCache(sentinel_set.url(), prefix=key_prefix, timeout=1.0) as cache:
        assert await cache.set("k", 1)
        assert "sentinel" in repr(cache.engine.l2.endpoint)  # type: ignore[union-attr]
    primary = sentinel_set.primary()
    with sentinel_set.client(primary.port) as client:
        assert [k for k in client.scan_iter(match=f"{key_prefix}*") if b":k" in k]


async def test_the_endpoint_never_shows_a_password(sentinel_set: SentinelSet) -> None:
    async with AsyncCache(sentinel_set.url(), prefix="p", timeout=1.0) as cache:
        endpoint = cache.engine.l2.endpoint  # type: ignore[union-attr]
        shown = repr(endpoint) + endpoint.where + repr(endpoint.sentinel)
        assert sentinel_set.password not in shown
        assert str(sentinel_set.sentinel_password) not in shown


async def test_wrong_sentinel_password_is_a_counted_failure_not_a_crash(
    sentinel_set: SentinelSet, key_prefix: str
) -> None:
    """Sentinels that refuse us: no primary is found; reads fall back to the
    loader (a transient error, counted as no_primary)."""
    url = sentinel_set.url(sentinel_password=False)
    async with AsyncCache(url, prefix=key_prefix, timeout=0.5) as cache:
        assert await cache.get_or_load("k", lambda: 7) == 7
        assert not await cache.set("k", 1)
        errors = cache.stats().errors
    assert errors.get("transient", 0) >= 1
    assert errors.get("failover:no_primary", 0) >= 1


async def test_replica_pool_is_refused(sentinel_set: SentinelSet) -> None:
    manager = redis.asyncio.sentinel.Sentinel(sentinel_set.sentinel_addresses)
    with pytest.raises(TypeError, match="not a replica's"):
        AsyncCache(client=manager.slave_for(SERVICE))


async def test_invalidation_waits_for_a_replica(
    sentinel_set: SentinelSet, key_prefix: str
) -> None:
    """An invalidation that returned True is on a replica already: the
    replicas' INFO shows every write the primary had by then."""
    async with AsyncCache(sentinel_set.url(), prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("k", 1)
        assert await cache.invalidate("k")
        with sentinel_set.client(sentinel_set.primary().port) as client:
            written = client.info("replication")["master_repl_offset"]
        acked = []
        for node in sentinel_set.nodes:
            with sentinel_set.client(node.port) as client:
                info = client.info("replication")
            if info["role"] == "slave":
                acked.append(info["slave_repl_offset"])
        assert max(acked) >= written - 200  # at most a PING of the primary's


async def test_invalidation_without_enough_replicas_is_queued(
    sentinel_set: SentinelSet, key_prefix: str
) -> None:
    """``invalidation_replicas=3`` with 2 replicas: never confirmed, so the
    invalidation returns False (queued for retry), counted, but has run on
    the primary (reads there no longer see the value)."""
    url = sentinel_set.url() + "&invalidation_replicas=3"
    async with AsyncCache(url, prefix=key_prefix, timeout=0.2) as cache:
        await cache.set("k", 1)
        assert not await cache.invalidate("k")
        stats = cache.stats()
        assert await cache.get("k") is MISS
    assert stats.errors.get("failover:unreplicated", 0) >= 1
    assert stats.pending_invalidations >= 1


async def test_readonly_reply_is_transient(key_prefix: str) -> None:
    """A primary demoted under a plain URL answers READONLY: a transient
    error (retried, counted as failover:readonly), never a configuration
    error, and the invalidation is queued, not dropped."""
    with servers.own_redis_server() as primary, servers.own_redis_server() as old:
        with redis.Redis(port=old.port) as demote:  # the sync client, both twins
            demote.replicaof("127.0.0.1", primary.port)
        async with AsyncCache(old.url, prefix=key_prefix, timeout=0.5) as cache:
            assert not await cache.set("k", 1)
            assert not await cache.invalidate("k")
            errors = cache.stats().errors
    assert errors.get("config", 0) == 0
    assert errors.get("transient", 0) >= 2
    assert errors.get("failover:readonly", 0) >= 2
