"""Deterministic race tests for C1: no value loaded before an invalidation is stored.

Each test drives one interleaving step by step with flags. Each runs twice:
against freshcache, and with its protection switched off (the lease and the
L1 generation check bypassed), where the same interleaving must leave a
stale value behind, so the test is known to catch the race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
import redis

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag
from freshcache._inproc.generations import Generations
from tests._async.waiting import (
    WAIT,
    run_in_background,
    wait_for_count,
    wait_until_listening,
)


@pytest.fixture
def table(postgres_dsn: str, key_prefix: str) -> Any:
    name = f"race_{key_prefix}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, version int)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 1)")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def read_version(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT version FROM {table} WHERE id = 1").fetchone()
        assert row is not None
        return int(row[0])


def commit_new_version(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"UPDATE {table} SET version = version + 1 WHERE id = 1 RETURNING version"
        ).fetchone()
        assert row is not None
        return int(row[0])


def unprotect(cache: AsyncCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch C1's protections off: the naive cache-aside the tests must catch."""
    tiers = cache.engine

    async def no_lease(
        full: str, namespace: str, tagged: bool, **_: Any
    ) -> tuple[str | None, int, bool]:
        return "naive", 0, False

    async def fill_anyway(
        full: str, token: Any, epoch: int, data: bytes, hard: Any, tags: Any,
        notice: Any,
    ) -> bool:  # fmt: skip
        assert tiers.l2 is not None
        await tiers.l2.put(full, data, hard)
        return True

    def store(
        self: Generations, key: str, snapshot: Any, put: Callable[[], None],
        **_: Any,
    ) -> bool:  # fmt: skip
        put()
        return True

    monkeypatch.setattr(tiers, "_lease", no_lease)
    if tiers.leases is not None:
        monkeypatch.setattr(tiers.leases, "fill", fill_anyway)
    monkeypatch.setattr(Generations, "store_if_unchanged", store)


@pytest.fixture(params=["freshcache", "naive"])
def protected(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "freshcache")


@pytest.fixture(params=["redis", "l1+redis", "embedded"])
async def cache(
    request: pytest.FixtureRequest, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncCache]:
    url = None if request.param == "embedded" else request.getfixturevalue("redis_url")
    l1 = L1() if request.param == "l1+redis" else None
    async with AsyncCache(url, prefix=key_prefix, l1=l1, timeout=1.0) as made:
        yield made


async def test_a_slow_loader_never_stores_a_row_read_before_an_invalidation(
    cache: AsyncCache,
    table: str,
    postgres_dsn: str,
    protected: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not protected:
        unprotect(cache, monkeypatch)
    loaded_old, go = AsyncFlag(), AsyncFlag()
    results: list[Any] = []

    async def slow_loader() -> int:
        version = read_version(postgres_dsn, table)  # 1: reads the old row
        loaded_old.set()
        assert await go.wait(WAIT)
        return version

    async def reader() -> None:
        results.append(await cache.get_or_load("user:1", slow_loader))

    worker = await run_in_background(reader)
    assert await loaded_old.wait(WAIT)
    assert commit_new_version(postgres_dsn, table) == 2  # the writer commits...
    await cache.invalidate("user:1")  # ...then invalidates
    go.set()  # the reader's loader returns the old row
    await worker.join(WAIT)
    assert results == [1]  # the caller gets what its loader returned

    cached = await cache.get("user:1")
    if protected:
        assert cached is MISS, "a value loaded before the invalidation was stored"
        assert await cache.get_or_load("user:1", lambda: 2) == 2
    else:
        assert cached == 1, "the naive cache-aside should have stored the stale row"


async def test_an_invalidation_during_the_redis_read_is_not_undone_by_l1(
    redis_url: str, key_prefix: str, redis_cleanup: None, protected: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as reader_cache,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as writer_cache,
    ):
        if not protected:
            unprotect(reader_cache, monkeypatch)
        await writer_cache.set("user:1", "old")
        read_done, go = AsyncFlag(), AsyncFlag()
        l2 = reader_cache.engine.l2
        assert l2 is not None
        real_get = l2.get

        async def slow_get(full: str) -> Any:
            hit = await real_get(full)  # returns "old"
            read_done.set()
            assert await go.wait(WAIT)
            return hit

        await reader_cache.get("warm:up")  # start its bus listener
        await wait_until_listening(reader_cache)
        monkeypatch.setattr(l2, "get", slow_get)
        results: list[Any] = []

        async def read() -> None:
            results.append(await reader_cache.get("user:1"))

        worker = await run_in_background(read)
        assert await read_done.wait(WAIT)
        received = reader_cache.stats().counts.get("invalidations_received", 0)
        await writer_cache.set("user:1", "new")  # invalidates every other L1
        await wait_for_count(reader_cache, "invalidations_received", received + 1)
        go.set()
        await worker.join(WAIT)
        monkeypatch.setattr(l2, "get", real_get)
        assert results == ["old"]  # a read that began before the write
        in_l1 = reader_cache.engine.l1.get(f"{key_prefix}:v1:user:1")
        if protected:
            assert in_l1 is MISS, "L1 kept a value older than the invalidation"
            assert await reader_cache.get("user:1") == "new"
        else:
            assert in_l1 is not MISS
            assert in_l1.value == "old"


async def test_a_tag_invalidation_during_the_load_prevents_the_fill(
    cache: AsyncCache, protected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not protected:
        unprotect(cache, monkeypatch)
    loaded_old, go = AsyncFlag(), AsyncFlag()

    async def slow_loader() -> dict[str, Any]:
        loaded_old.set()
        assert await go.wait(WAIT)
        return {"team": 7, "members": [1, 2]}

    async def reader() -> None:
        await cache.get_or_load(
            "team_members:7",
            slow_loader,
            tags=["team:7", lambda team: [f"user:{m}" for m in team["members"]]],
        )

    worker = await run_in_background(reader)
    assert await loaded_old.wait(WAIT)
    await cache.invalidate_tags("user:2")  # a tag only the result names
    go.set()
    await worker.join(WAIT)
    cached = await cache.get("team_members:7")
    if protected:
        assert cached is MISS, "a fill raced a tag invalidation and won"
    else:
        assert cached == {"team": 7, "members": [1, 2]}


async def test_a_lost_lease_fails_closed(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """The lease vanished (eviction, restart): the value is returned, not stored."""
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        raw = redis.Redis.from_url(redis_url)

        async def loader() -> str:
            raw.delete("{" + f"{key_prefix}:v1:user:1" + "}:lease")
            return "loaded"

        assert await cache.get_or_load("user:1", loader) == "loaded"
        raw.close()
        assert await cache.get("user:1") is MISS
        assert cache.stats().counts["fill_skipped:lease_lost"] == 1


async def test_a_waiter_past_its_deadline_loads_by_itself_without_storing(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """A lease held past lease_ttl by someone who never fills."""
    async with AsyncCache(
        redis_url, prefix=key_prefix, timeout=1.0, lease_ttl=0.3
    ) as cache:
        raw = redis.Redis.from_url(redis_url)
        lease = "{" + f"{key_prefix}:v1:user:1" + "}:lease"
        raw.set(lease, "someone-else", px=60_000)
        assert await cache.get_or_load("user:1", lambda: "mine") == "mine"
        assert await cache.get("user:1") is MISS
        counts = cache.stats().counts
        assert counts["lease_busy"] == 1
        assert counts["lease_wait_timeout"] == 1
        assert raw.get(lease) == b"someone-else"  # not ours to touch
        raw.close()


async def test_a_fill_in_flight_across_a_resubscribe_is_dropped(
    redis_url: str, key_prefix: str, redis_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Messages sent while the bus was away are lost: a read that began before
    the resubscribe must not fill L1 with what it read."""
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        await cache.get("warm:up")
        await wait_until_listening(cache)
        await cache.set("user:1", "old")
        cache.engine.flush_local()
        l2 = cache.engine.l2
        assert l2 is not None
        real_get = l2.get

        async def get_across_a_resubscribe(full: str) -> Any:
            hit = await real_get(full)
            cache.engine.bus_connected()  # the bus came back meanwhile
            return hit

        monkeypatch.setattr(l2, "get", get_across_a_resubscribe)
        assert await cache.get("user:1") == "old"
        monkeypatch.setattr(l2, "get", real_get)
        assert cache.engine.l1.get(f"{key_prefix}:v1:user:1") is MISS


async def test_a_write_overtaken_by_a_newer_one_does_not_stay_in_l1(
    redis_url: str, key_prefix: str, redis_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as a,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as c,
    ):
        for cache in (a, c):
            await cache.get("warm:up")
            await wait_until_listening(cache)
        l2 = a.engine.l2
        assert l2 is not None
        real_put_many = l2.put_many
        written, go = AsyncFlag(), AsyncFlag()

        async def slow_put_many(items: Any) -> None:
            await real_put_many(items)  # v1 lands in Redis...
            written.set()
            assert await go.wait(WAIT)  # ...and a's L1 fill waits

        monkeypatch.setattr(l2, "put_many", slow_put_many)
        worker = await run_in_background(lambda: a.set("user:1", "v1"))
        assert await written.wait(WAIT)
        received = a.stats().counts.get("invalidations_received", 0)
        await c.set("user:1", "v2")  # a newer write lands after it
        await wait_for_count(a, "invalidations_received", received + 1)
        go.set()
        await worker.join(WAIT)
        monkeypatch.setattr(l2, "put_many", real_put_many)
        assert await a.get("user:1") == "v2"
