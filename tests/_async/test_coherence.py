"""L1 over Redis across processes (two caches stand for two processes): tags,
namespace versions, events, what L1 returns, and how long it keeps things."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag
from freshcache.testing import FakeClock
from tests._async.waiting import (
    WAIT,
    run_in_background,
    wait_for_count,
    wait_until,
    wait_until_current,
    wait_until_listening,
)


@pytest.fixture
async def pair(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[tuple[AsyncCache, AsyncCache]]:
    """Two caches over one Redis, each with its own L1: two processes."""
    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as a,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as b,
    ):
        await a.get("warm:up")
        await b.get("warm:up")
        await wait_for_count(a, "bus_connect", 1)
        await wait_for_count(b, "bus_connect", 1)
        yield a, b


async def test_an_invalidation_reaches_the_other_l1(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    received = b.stats().counts.get("invalidations_received", 0)
    await a.set("user:1", "v1")
    await wait_for_count(b, "invalidations_received", received + 1)  # a's message
    assert await b.get("user:1") == "v1"
    assert await b.get("user:1") == "v1"
    assert b.stats().l1.hits >= 1  # now served from b's L1
    await a.set("user:1", "v2")  # read-your-writes in a at once...
    assert await a.get("user:1") == "v2"

    async def b_sees_v2() -> bool:
        return bool(await b.get("user:1") == "v2")

    await wait_until(b_sees_v2)  # ...and in b within the bus latency
    await a.invalidate("user:1")

    async def b_sees_nothing() -> bool:
        return await b.get("user:1") is MISS

    await wait_until(b_sees_nothing)
    assert b.stats().counts["invalidations_received"] >= 2


async def test_invalidation_removes_one_key_not_the_whole_l1(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    received = b.stats().counts.get("invalidations_received", 0)
    await a.set_many({"k:1": 1, "k:2": 2})
    await wait_for_count(b, "invalidations_received", received + 1)
    assert await b.get_many(["k:1", "k:2"]) == {"k:1": 1, "k:2": 2}
    await a.invalidate("k:1")
    await wait_for_count(b, "invalidations_received", received + 2)
    hits_before = b.stats().l1.hits
    assert await b.get("k:2") == 2
    assert b.stats().l1.hits == hits_before + 1  # k:2 stayed in b's L1


async def test_tags_from_arguments_and_results(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    loads: list[int] = []

    @a.cached(
        "team_members:{team_id}",
        tags=["team:{team_id}", lambda members: [f"user:{m}" for m in members]],
    )
    async def team_members(team_id: int) -> list[int]:
        loads.append(team_id)
        return [1, 2] if team_id == 7 else [3]

    assert await team_members(7) == [1, 2]
    assert await team_members(8) == [3]
    assert await b.get("team_members:7") == [1, 2]  # into b's L1
    await b.invalidate_tags("user:2")  # a member of team 7 changed
    assert await b.get("team_members:7") is MISS

    async def a_dropped_it() -> bool:
        return a.engine.l1.get(f"{a.engine.head}team_members:7") is MISS

    await wait_until(a_dropped_it)  # the bus reached a's L1
    assert await team_members(7) == [1, 2]  # reloaded in a
    assert await team_members(8) == [3]  # untouched
    assert loads == [7, 8, 7]
    await a.invalidate_tags("team:8")
    assert await b.get("team_members:8") is MISS


async def test_a_tag_index_outlives_its_longest_lived_member(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """The known bug: resetting the tag set's TTL to the last member's."""
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("long", 1, ttl=3600, tags=["t"])
        await cache.set("short", 2, ttl=1, tags=["t"])
        raw = redis.Redis.from_url(redis_url)
        ttl = raw.pttl(f"{key_prefix}:v1:!tag:t")
        assert ttl > 3500 * 1000, "the tag set would expire before 'long'"
        await cache.set("forever", 3, ttl=None, tags=["t"])
        assert raw.pttl(f"{key_prefix}:v1:!tag:t") == -1  # persistent now
        raw.close()
        await cache.invalidate_tags("t")
        assert await cache.get_many(["long", "short", "forever"]) == {}


async def test_bump_orphans_a_namespace_everywhere(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    await a.set("search:books", ["old"])
    await a.set("user:1", "kept")
    assert await b.get("search:books") == ["old"]
    assert await a.bump("search") == 1

    async def b_sees_new_version() -> bool:
        return await b.get("search:books") is MISS

    await wait_until(b_sees_new_version)
    assert await a.get("search:books") is MISS
    assert await b.get("user:1") == "kept"  # other namespaces untouched
    await b.set("search:books", ["new"])
    assert await a.get("search:books") == ["new"]
    assert await a.bump("search") == 2


async def test_a_fresh_process_reads_the_current_namespace_version(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as old:
        await old.set("search:q", "v0 value")
        await old.bump("search")
        await old.set("search:q", "v1 value")
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(), timeout=1.0
    ) as started_later:
        assert await started_later.get("search:q") == "v1 value"


async def test_per_entity_versions_live_in_the_key(key_prefix: str) -> None:
    """The seed's `cache_version` column: the template takes the version."""
    async with AsyncCache(prefix=key_prefix) as cache:

        @cache.cached("user:{user_id}:{version}")
        async def user(user_id: int, version: int) -> dict[str, int]:
            return {"id": user_id, "version": version}

        assert await user(1, 3) == {"id": 1, "version": 3}
        assert user.key(1, 4) != user.key(1, 3)


async def test_events_fan_out_and_a_raising_handler_is_contained(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    seen_a: list[Any] = []
    seen_b: list[Any] = []

    @a.events.on("user_updated")
    def on_a(event: Any) -> None:
        seen_a.append(event)

    @b.events.on("user_updated")
    def broken(event: Any) -> None:
        raise RuntimeError("handler bug")

    @b.events.on("user_updated")
    async def on_b(event: Any) -> None:  # unasync: skip
        seen_b.append(event)  # unasync: skip

    @b.events.on("user_updated")  # unasync: keep
    def on_b_sync(event: Any) -> None:  # unasync: keep
        seen_b.append(event)  # unasync: keep

    await b.set("user:1", "cached")
    await a.events.publish("user_updated", {"user_id": 1})
    assert seen_a == [{"user_id": 1}]  # the publisher's own handlers run at once

    async def b_handled() -> bool:
        return len(seen_b) >= 1

    await wait_until(b_handled)
    assert seen_b[0] == {"user_id": 1}
    assert b.stats().errors["event_handler"] >= 1
    await a.events.publish("user_updated", {"user_id": 2})  # the listener lives on

    async def b_handled_again() -> bool:
        return {"user_id": 2} in seen_b

    await wait_until(b_handled_again)
    with pytest.raises(TypeError):
        await a.events.publish("user_updated", {"not json": object()})


async def test_l1_returns_the_cached_object_by_default(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        await cache.get("warm:up")
        await wait_for_count(cache, "bus_connect", 1)  # (a connect flushes L1)
        await cache.get("warm:up")  # starts the bus
        await wait_until_listening(cache)
        await cache.set("k", {"items": [1]})
        first = await cache.get("k")
        assert await cache.get("k") is first  # same object: read-only by contract


async def test_l1_copy_mode_isolates_callers(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(copy=True), timeout=1.0
    ) as cache:
        await cache.get("warm:up")  # starts the bus
        await wait_until_listening(cache)
        await cache.set("k", {"items": [1]})
        first = await cache.get("k")
        first["items"].append(2)  # a caller mutates what it got
        assert await cache.get("k") == {"items": [1]}
        assert cache.stats().l1.hits >= 1


async def test_l1_never_outlives_freshness_or_its_cap(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    clock = FakeClock()
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(ttl=5), clock=clock, timeout=1.0
    ) as cache:
        await cache.get("warm:up")
        await wait_for_count(cache, "bus_connect", 1)
        await cache.set("short", 1, ttl=2)
        await cache.set("long", 2, ttl=600)
        clock.advance(2.5)
        assert await cache.get("short") is MISS  # never past the value's TTL
        clock.advance(3)  # 5.5 s: past L1's own cap
        hits = cache.stats().redis.hits
        assert await cache.get("long") == 2
        assert cache.stats().redis.hits == hits + 1  # from Redis, not L1


async def test_without_a_bus_l1_serves_nothing(
    redis_url: str, key_prefix: str, redis_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No subscription, no pings back, no watermark: every read goes to Redis."""
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(ttl=30), timeout=1.0
    ) as cache:
        monkeypatch.setattr(cache.engine.bus, "start", lambda: None)  # never subscribes
        await cache.set("k", 1)
        assert not cache.engine.bus.connected
        for _ in range(3):
            assert await cache.get("k") == 1
        stats = cache.stats()
        assert stats.l1.hits == 0
        assert stats.redis.hits == 3
        assert stats.l1.bypasses["stale_bound"] >= 3


async def test_l1_stops_serving_once_the_watermark_is_older_than_the_bound(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """On the cache's own clock: a watermark older than ``max_staleness``
    (here the pings stop) makes L1 refuse; a ping back lets it serve again."""
    clock = FakeClock()
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(max_staleness=0.5), clock=clock,
        timeout=1.0,
    ) as cache:  # fmt: skip
        await cache.get("warm:up")
        await wait_until_listening(cache)
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        assert await cache.get("k") == 1
        hits = cache.stats().l1.hits
        assert hits >= 1
        bus = cache.engine.bus
        bus.watermark = clock.monotonic() - 0.6  # as if no ping came back since
        assert await cache.get("k") == 1
        assert cache.stats().l1.hits == hits  # refused: Redis
        assert cache.stats().l1.bypasses["stale_bound"] >= 1
        await wait_until_current(cache)  # the next ping back
        assert await cache.get("k") == 1
        assert cache.stats().l1.hits == hits + 1


@pytest.mark.parametrize("grace", [0.0, 2.0])
async def test_serve_stale_when_down_is_bounded_and_counted(
    redis_url: str, key_prefix: str, redis_cleanup: None, grace: float
) -> None:
    """With the bus down, L1 serves at most ``serve_stale_when_down`` past the
    bound (counted), and nothing past it; by default, nothing at all."""
    clock = FakeClock()
    l1 = L1(max_staleness=0.5, serve_stale_when_down=grace)
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=l1, clock=clock, timeout=1.0
    ) as cache:
        await cache.get("warm:up")
        await wait_until_listening(cache)
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        assert await cache.get("k") == 1
        memory = cache.stats().l1.hits
        assert memory >= 1
        bus = cache.engine.bus
        bus.connected = False  # as the listener marks a dropped connection
        clock.advance(1.0)  # the watermark is now 1 s old: past the bound
        assert await cache.get("k") == 1
        stats = cache.stats()
        if grace:
            assert stats.l1.hits == memory + 1
            assert stats.counts["l1_stale_when_down"] >= 1
        else:
            assert stats.l1.hits == memory
            assert "l1_stale_when_down" not in stats.counts
        clock.advance(2.0)  # 3 s: past the bound plus the grace
        assert await cache.get("k") == 1
        assert cache.stats().l1.hits == stats.l1.hits
        bus.connected = True


async def test_l1_hits_cost_no_round_trip(pair: tuple[AsyncCache, AsyncCache]) -> None:
    """Namespace versions are cached too (version 0 included)."""
    a, _ = pair

    @a.cached("user:{user_id}")
    async def user(user_id: int) -> int:
        return user_id

    await user(1)
    await user(1)
    before = a.stats()
    for _ in range(10):
        assert await user(1) == 1
    after = a.stats()
    assert after.l1.hits == before.l1.hits + 10
    assert after.latency == before.latency  # not one Redis operation


async def test_clear_reaches_every_process(pair: tuple[AsyncCache, AsyncCache]) -> None:
    a, b = pair
    await a.set("k", 1)
    assert await b.get("k") == 1
    await a.clear()

    async def b_cleared() -> bool:
        return b.engine.l1.get(f"{a.engine.head}k") is MISS

    await wait_until(b_cleared)
    assert await b.get("k") is MISS


async def test_clear_keeps_namespace_versions_and_revokes_fills_in_flight(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """``clear()`` removes data, not bookkeeping: a namespace version never
    goes back (a process knowing version 1 would ignore a bump to 1 again),
    and a loader that read before the clear cannot store after it."""
    reading, go = AsyncFlag(), AsyncFlag()

    async def old_row() -> str:
        reading.set()
        assert await go.wait(WAIT)
        return "old"

    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        assert await cache.bump("s") == 1
        await cache.set("s:1", "v1")
        reader = await run_in_background(lambda: cache.get_or_load("k", old_row))
        assert await reading.wait(WAIT)  # it holds the lease and read "old"
        await cache.clear()
        go.set()
        await reader.join(WAIT)
        assert await cache.get("k") is MISS  # its fill was revoked
        assert await cache.get("s:1") is MISS
        assert await cache.bump("s") == 2  # the counter survived the clear
