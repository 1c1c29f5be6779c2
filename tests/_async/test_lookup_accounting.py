"""Every lookup is counted exactly once: a hit, a miss or a bypass, in each
tier it reached and for the cache as a whole.

A scripted workload goes through each path (L1 hit, Redis hit, miss and
load, ``get_many``, a cached function, the staleness bound refusing L1,
Redis killed until the circuit opens, a disabled cache, the embedded
cache) and each step checks the exact counts it added; every phase checks
``hits + misses + bypassed == lookups`` per tier.
"""

from __future__ import annotations

import pytest

from freshcache import L1, MISS, AsyncCache, CacheStats
from tests._async.waiting import wait_until_listening
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis


def flat(stats: CacheStats) -> dict[str, int]:
    """``{"cache:hit": n, "l1:miss": n, "redis:bypass:circuit_open": n, ...}``"""
    out: dict[str, int] = {"loads": stats.loads}
    for tier, lookups in (
        ("cache", stats.lookups), ("l1", stats.l1), ("redis", stats.redis),
    ):  # fmt: skip
        out[f"{tier}:hit"] = lookups.hits
        out[f"{tier}:miss"] = lookups.misses
        for reason, n in lookups.bypasses.items():
            out[f"{tier}:bypass:{reason}"] = n
    return out


class Steps:
    """The counts each step of a workload adds."""

    def __init__(self, cache: AsyncCache) -> None:
        self.cache = cache
        self.last = flat(cache.stats())
        self.lookups = 0  # made by the test so far

    def added(self, lookups: int) -> dict[str, int]:
        self.lookups += lookups
        now = flat(self.cache.stats())
        delta = {k: v - self.last.get(k, 0) for k, v in now.items()}
        self.last = now
        return {k: v for k, v in delta.items() if v}


def check_tiers(
    stats: CacheStats, lookups: int, *, before_tiers: int = 0, redis: bool = True
) -> None:
    """Each lookup once in the cache's totals; in L1 unless it was bypassed
    before any tier (``before_tiers``); in Redis (if any) unless L1 answered."""
    assert stats.lookups.total == lookups
    assert stats.lookups.hits == stats.l1.hits + stats.redis.hits
    assert stats.l1.hits + stats.l1.misses + stats.l1.bypassed == stats.l1.total
    assert stats.l1.total == lookups - before_tiers
    if not redis:
        assert stats.redis.total == 0
        return
    assert stats.redis.total == stats.l1.total - stats.l1.hits
    for by_namespace in stats.namespaces.values():
        assert by_namespace.redis.total == by_namespace.l1.total - by_namespace.l1.hits


async def test_each_lookup_path_counts_once_per_tier(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as server:
        async with (
            AsyncCache(server.url, prefix="acct") as writer,
            AsyncCache(server.url, prefix="acct", l1=L1(ttl=60)) as cache,
        ):
            await writer.set("user:1", {"id": 1})
            await cache.get("warm:0")  # subscribes; L1 serves once a ping is back
            await wait_until_listening(cache)
            steps = Steps(cache)
            steps.lookups = 1  # warm:0

            assert await cache.get("user:1") == {"id": 1}  # L1 miss, Redis hit
            assert steps.added(1) == {"cache:hit": 1, "l1:miss": 1, "redis:hit": 1}

            assert await cache.get("user:1") == {"id": 1}  # L1 hit
            assert steps.added(1) == {"cache:hit": 1, "l1:hit": 1}

            assert await cache.get_or_load("user:2", lambda: 2) == 2  # miss + load
            assert steps.added(1) == {
                "cache:miss": 1, "l1:miss": 1, "redis:miss": 1, "loads": 1,
            }  # fmt: skip

            assert await cache.get("user:3") is MISS  # a miss, no load
            assert steps.added(1) == {"cache:miss": 1, "l1:miss": 1, "redis:miss": 1}

            calls: list[int] = []

            @cache.cached("team:{team_id}")
            async def team(team_id: int) -> int:
                calls.append(team_id)
                return team_id

            assert await team(7) == 7  # the decorator's slow path: a load
            assert steps.added(1) == {
                "cache:miss": 1, "l1:miss": 1, "redis:miss": 1, "loads": 1,
            }  # fmt: skip
            assert await team(7) == 7  # its fast path: an L1 hit
            assert steps.added(1) == {"cache:hit": 1, "l1:hit": 1}

            # get_many: two L1 hits, one L1 miss and Redis hit (from writer),
            # one missed everywhere; a repeated key is looked up once.
            await writer.set("user:4", 4)
            found = await cache.get_many(["user:1", "user:2", "user:4", "user:5"])
            assert found == {"user:1": {"id": 1}, "user:2": 2, "user:4": 4}
            assert steps.added(4) == {
                "cache:hit": 3, "cache:miss": 1,
                "l1:hit": 2, "l1:miss": 2, "redis:hit": 1, "redis:miss": 1,
            }  # fmt: skip
            check_tiers(cache.stats(), steps.lookups)

            # The staleness bound refuses L1 (as when the bus's proof is
            # older than max_staleness): an L1 bypass, then Redis answers.
            cache.engine.bound = 0.0
            assert await cache.get("user:1") == {"id": 1}
            assert await cache.get_many(["user:2", "user:6"]) == {"user:2": 2}
            assert await cache.get_or_load("user:1", lambda: 0) == {"id": 1}
            assert steps.added(4) == {
                "cache:hit": 3, "cache:miss": 1,
                "l1:bypass:stale_bound": 4, "redis:hit": 3, "redis:miss": 1,
            }  # fmt: skip
            cache.engine.bound = 0.1
            check_tiers(cache.stats(), steps.lookups)

            # Redis killed: every lookup is still counted, none vanishes; L1
            # may serve within its bound, then every lookup bypasses Redis
            # (unavailable, then circuit_open), and the hit rate falls to 0.
            server.kill()
            for i in range(200):
                await cache.get_or_load(f"user:{i % 10}", lambda: None)
                await cache.get("user:1")
                await team(i % 5)
            await cache.get_many(["user:1", "user:2"])
            await cache.get("new:1")  # an unseen namespace: its version unknown
            added = steps.added(603)
            assert sum(v for k, v in added.items() if k.startswith("cache:")) == 603
            assert added["redis:bypass:circuit_open"] > 500
            assert added["cache:bypass:circuit_open"] > 500
            assert cache.stats().namespaces["team"].lookups.total == 202
            before_tiers = 1  # new:1 never reached a tier
            check_tiers(cache.stats(), steps.lookups, before_tiers=before_tiers)
            assert cache.stats().namespaces["new"].lookups.bypasses == {
                "circuit_open": 1
            }
            assert cache.stats().hit_rate < 0.5


async def test_a_disabled_cache_counts_every_lookup_as_a_bypass() -> None:
    async with AsyncCache(prefix="acct", enabled=False) as cache:

        @cache.cached("team:{team_id}")
        async def team(team_id: int) -> int:
            return team_id

        await cache.get("user:1")
        await cache.get_many(["user:1", "user:2"])
        await cache.get_or_load("user:1", lambda: 1)
        await team(1)
        stats = cache.stats()
        assert stats.lookups.total == 5
        assert stats.lookups.bypasses == {"disabled": 5}
        assert stats.l1.total == stats.redis.total == 0  # no tier was asked
        assert stats.loads == 2
        assert stats.namespaces["team"].lookups.bypassed == 1


async def test_the_embedded_cache_counts_l1_only() -> None:
    async with AsyncCache(prefix="acct") as cache:
        steps = Steps(cache)
        assert await cache.get_or_load("user:1", lambda: 1) == 1
        assert steps.added(1) == {"cache:miss": 1, "l1:miss": 1, "loads": 1}
        assert await cache.get("user:1") == 1
        assert await cache.get_many(["user:1", "user:2"]) == {"user:1": 1}
        assert steps.added(3) == {
            "cache:hit": 2,
            "cache:miss": 1,
            "l1:hit": 2,
            "l1:miss": 1,
        }
        check_tiers(cache.stats(), steps.lookups, redis=False)
