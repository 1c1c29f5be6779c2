"""The live view: ``publish_stats`` snapshots, ``inspect`` and ``cache.live``
on the shared Redis. Hand-written for the async API; scripts/unasync.py
generates the sync twin (whose publisher is a thread)."""

from __future__ import annotations

import redis

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag
from freshcache._core.layout import stats_key
from freshcache._inproc.live import parse_snapshot
from tests._async.waiting import run_in_background, wait_until
from tests.servers import own_redis_server


def _raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


async def test_a_tick_publishes_one_snapshot_with_a_ttl(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(), publish_stats=100.0, timeout=1.0
    ) as cache:
        await cache.set("user:1", {"n": 1})
        await cache.get("user:1")
        await cache.get("team:9")
        publisher = cache.engine.publisher
        assert publisher is not None
        await publisher.tick()
        name = cache.engine.process_name()
        raw = _raw(redis_url)
        try:
            key = stats_key(key_prefix, name)
            assert 0 < raw.pttl(key) <= 300_000  # three periods
            snapshot = parse_snapshot(raw.get(key) or b"")
        finally:
            raw.close()
        assert snapshot is not None
        assert snapshot.process == name
        assert snapshot.head == f"{key_prefix}:v1:"
        assert snapshot.period == 100.0
        mine = cache.stats()
        assert snapshot.stats.lookups == mine.lookups
        assert set(snapshot.stats.namespaces) == {"user", "team"}
        assert snapshot.l1_entries == 1
        assert snapshot.bus_connected is not None


async def test_publishing_starts_with_the_first_read_and_a_closed_cache_expires(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    reader = AsyncCache(redis_url, prefix=key_prefix, timeout=1.0)
    cache = AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(), publish_stats=0.1, timeout=1.0
    )
    await cache.get("user:1")  # starts the bus, and the publisher with it

    async def published() -> bool:
        return len((await reader.live.processes())[0]) == 1

    await wait_until(published)
    await cache.aclose()

    async def gone() -> bool:  # its key's TTL (three periods) ran out
        return (await reader.live.processes())[0] == []

    await wait_until(gone)
    await reader.aclose()


async def test_publishing_failures_are_counted_never_raised(key_prefix: str) -> None:
    cache = AsyncCache(
        "redis://127.0.0.1:1/0", prefix=key_prefix, l1=L1(), publish_stats=1.0
    )
    publisher = cache.engine.publisher
    assert publisher is not None
    await publisher.tick()  # nothing listens on port 1
    assert cache.stats().errors.get("live_publish", 0) >= 1
    await cache.aclose()


async def test_the_embedded_cache_does_not_publish_but_inspects_its_l1() -> None:
    async with AsyncCache(publish_stats=1.0) as cache:
        assert cache.engine.publisher is None
        await cache.set("user:1", "v", tags=["team:1"])
        info = await cache.inspect("user:1")
        assert info.l1 is not None
        assert info.l1.present
        assert info.l1.tags == ("team:1",)
        assert not info.in_redis
        assert info.value is MISS


async def test_inspect_reads_header_tags_version_lease_and_pending_write(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(
        redis_url, prefix=key_prefix, l1=L1(), timeout=1.0, lease_ttl=60
    ) as cache:
        await cache.bump("user")
        await cache.set("user:1", {"secret": 1}, ttl=100, stale_ttl=10, tags=["t:1"])
        before = cache.stats()
        info = await cache.inspect("user:1")
        assert cache.stats().lookups == before.lookups  # not a lookup
        assert info.full_key == f"{key_prefix}:v1:user~1:1"
        assert info.namespace_version == 1
        assert info.in_redis
        assert info.redis_ttl is not None
        assert 100 < info.redis_ttl <= 110
        header = info.header
        assert header is not None
        assert (header.codec, header.check, header.compressed) == (
            "json", "crc-32", False,
        )  # fmt: skip
        assert header.fresh_until is not None
        assert header.stale_until is not None
        assert header.fresh_until - header.created_at == 100
        assert header.stale_until - header.fresh_until == 10
        assert info.tags == ("t:1",)
        assert info.undecodable is None
        assert info.value is MISS
        assert "secret" not in repr(info)
        assert (await cache.inspect("user:1", with_value=True)).value == {"secret": 1}
        assert info.l1 is not None

        release = AsyncFlag()
        loading = AsyncFlag()

        async def slow() -> str:
            loading.set()
            await release.wait(30)
            return "loaded"

        worker = await run_in_background(lambda: cache.get_or_load("slow:1", slow))

        async def loading_now() -> bool:
            return loading.is_set()

        await wait_until(loading_now)
        held = await cache.inspect("slow:1")
        assert held.lease_holder == cache.engine.process_name()
        assert held.lease_age is not None
        assert held.lease_age >= 0
        assert not held.in_redis
        release.set()
        await worker.join(30)
        assert (await cache.inspect("slow:1")).lease_holder is None

        wb = cache.write_behind(name="q")
        await wb.put("wb:1", "queued")
        pending = await cache.inspect("wb:1")
        assert pending.write_pending is not None
        assert pending.write_pending_age is not None
        await wb.aclose(flush=False)


async def test_inspect_reports_foreign_bytes(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("user:1", "one", tags=["t"])
        raw = _raw(redis_url)
        try:
            raw.set(f"{key_prefix}:v1:user:2", b"\x00not an envelope")
            copied = raw.get(f"{key_prefix}:v1:user:1")  # another key's envelope
            raw.set(f"{key_prefix}:v1:user:3", copied or b"")
        finally:
            raw.close()
        foreign = await cache.inspect("user:2")
        assert (foreign.in_redis, foreign.undecodable, foreign.header) == (
            True, "magic", None,
        )  # fmt: skip
        moved = await cache.inspect("user:3")
        assert moved.undecodable == "key_check"
        assert moved.header is not None  # its header still reads
        assert moved.tags == ("t",)
        assert (await cache.inspect("user:4")).in_redis is False


async def test_inspect_through_the_live_view_asks_every_publishing_process(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(
            redis_url, prefix=key_prefix, l1=L1(), publish_stats=0.1, timeout=1.0
        ) as a,
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as reader,
    ):
        await a.set("user:1", "v")  # in a's L1 (its own write)
        await a.get("user:1")

        async def published() -> bool:
            return len((await reader.live.processes())[0]) == 1

        await wait_until(published)
        info = await reader.live.inspect("user:1", wait=30)
        assert info.l1 is None  # the reader has no L1
        view = info.processes[a.engine.process_name()]
        assert view.present
        assert view.fresh
        assert await reader.live.keys() == ["user:1"]
        assert await reader.live.keys("team") == []


async def test_a_tick_is_one_set_and_one_hgetall(key_prefix: str) -> None:
    """On a Redis of the test's own: N ticks send N SETs and N HGETALLs (no
    open inspect request), and nothing else that writes."""
    with own_redis_server() as server:
        async with AsyncCache(
            server.url, prefix=key_prefix, l1=L1(), publish_stats=100.0, timeout=1.0
        ) as cache:
            # No read: the publishing loop (and the bus) never start, so the
            # ticks below are the only ones.
            publisher = cache.engine.publisher
            assert publisher is not None
            raw = _raw(server.url)
            try:
                raw.config_resetstat()
                for _ in range(5):
                    await publisher.tick()
                calls = {
                    name.removeprefix("cmdstat_"): int(stats["calls"])
                    for name, stats in raw.info("commandstats").items()
                }
            finally:
                raw.close()
        assert calls.get("set") == 5
        assert calls.get("hgetall") == 5
        assert not {"hset", "pexpire", "del", "unlink"} & set(calls)
