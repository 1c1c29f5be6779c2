"""Invalidations that cannot reach Redis are queued and retried (DESIGN §4).

Each test starts its own redis-server (tests/servers.py) and pauses
(SIGSTOP: it keeps the old value, answers nothing) or kills it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from freshcache import L1, MISS, AsyncCache, StoreError, TransientStoreError
from freshcache._concurrency import AsyncFlag
from freshcache._inproc.invalidation_queue import Batch
from tests._async.waiting import WAIT, run_in_background, wait_until
from tests.rows import commit_new_version, read_version, version_table
from tests.servers import RedisProcess, own_redis_server

pytestmark = pytest.mark.redis


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server() as started:
        yield started


@pytest.fixture
def table(postgres_dsn: str, key_prefix: str) -> Iterator[str]:
    with version_table(postgres_dsn, f"retry_{key_prefix}") as name:
        yield name


async def until_redis_answers(cache: AsyncCache) -> None:
    """Until the breaker lets calls through again (a write that lands)."""

    async def answered() -> bool:
        return bool(await cache.set("probe", 1))

    await wait_until(answered)


@pytest.mark.parametrize("bypass", [True, False], ids=["freshcache", "no_bypass"])
async def test_a_write_through_during_an_outage_lands_when_redis_returns(
    server: RedisProcess, table: str, postgres_dsn: str, bypass: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The commit stands, the invalidation is queued; until it lands this
    process serves nothing it covers (``no_bypass`` shows the stale value it
    would serve); once Redis takes it, another process reads the new row."""
    raw = redis.Redis.from_url(server.url)

    def load() -> int:
        return read_version(postgres_dsn, table)

    async with (
        AsyncCache(server.url, prefix="wt", l1=L1(), timeout=0.05) as writer,
        AsyncCache(server.url, prefix="wt", l1=L1(), timeout=0.05) as other,
    ):
        assert await writer.get_or_load("row:1", load) == 1
        assert await other.get_or_load("row:1", load) == 1
        retry = writer.engine.invalidator.retry
        real_try = retry._try
        tried, go = AsyncFlag(), AsyncFlag()

        async def held_try(batch: Batch) -> bool:
            tried.set()
            assert await go.wait(WAIT)
            return await real_try(batch)

        monkeypatch.setattr(retry, "_try", held_try)
        if not bypass:
            monkeypatch.setattr(writer.engine.pending, "covers", lambda *_: False)

        server.stop()
        async with writer.write_through("row:1", reload=load) as written:
            assert commit_new_version(postgres_dsn, table) == 2
        assert written.value == 2  # from the database: Redis did not answer
        assert not written.landed
        assert writer.stats().pending_invalidations == 1
        assert writer.stats().counts["write_through_queued"] == 1
        server.cont()

        await until_redis_answers(writer)
        assert raw.get("wt:v1:row:1") is not None  # Redis still holds version 1
        if bypass:
            assert await writer.get_or_load("row:1", load) == 2
            assert await writer.get("row:1") is MISS
            assert writer.stats().counts["pending_bypass"] >= 1
        else:  # (a read may still fail open, a miss, while Redis catches up)

            async def serves_the_stale_1() -> bool:
                return bool(await writer.get("row:1") == 1)

            await wait_until(serves_the_stale_1)
        # Another process is told nothing until the retry lands (the bound).

        async def other_reads_the_old_row() -> bool:
            return bool(await other.get("row:1") == 1)

        await wait_until(other_reads_the_old_row)

        assert await tried.wait(WAIT)
        go.set()

        async def drained() -> bool:
            return writer.stats().pending_invalidations == 0

        await wait_until(drained)
        assert raw.get("wt:v1:row:1") is None
        assert writer.stats().counts["invalidations_retried"] >= 1

        async def other_reads_the_new_row() -> bool:
            return bool(await other.get_or_load("row:1", load) == 2)

        await wait_until(other_reads_the_new_row)
        assert await writer.get_or_load("row:1", load) == 2
    raw.close()


async def test_a_write_through_lands_on_a_redis_restarted_with_its_old_data(
    request: pytest.FixtureRequest, table: str, postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """kill -9, then Redis comes back from its AOF still holding version 1;
    the queued invalidation lands on the new server."""
    request.getfixturevalue("redis_url")

    def load() -> int:
        return read_version(postgres_dsn, table)

    with own_redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(server.url, prefix="wt", l1=L1(), timeout=0.05) as cache:
            assert await cache.get_or_load("row:1", load) == 1
            retry = cache.engine.invalidator.retry
            real_try, go = retry._try, AsyncFlag()

            async def held_try(batch: Batch) -> bool:
                assert await go.wait(WAIT)
                return await real_try(batch)

            monkeypatch.setattr(retry, "_try", held_try)
            server.kill()
            async with cache.write_through("row:1", reload=load) as written:
                commit_new_version(postgres_dsn, table)
            assert not written.landed
            assert await cache.get_or_load("row:1", load) == 2
            server.restart()
            assert raw.get("wt:v1:row:1") is not None  # the old value is back
            go.set()

            async def drained() -> bool:
                return cache.stats().pending_invalidations == 0

            await wait_until(drained)
            assert raw.get("wt:v1:row:1") is None
            async with AsyncCache(server.url, prefix="wt") as other:
                assert await other.get_or_load("row:1", load) == 2
        raw.close()


async def test_keys_tags_and_bumps_are_queued_and_retried(
    server: RedisProcess,
) -> None:
    raw = redis.Redis.from_url(server.url)
    # A staleness bound longer than the test: the namespace versions stay
    # current while Redis is paused, so both invalidate("user:1") resolve to
    # the same key and coalesce (past the bound, a call made later would be
    # queued by namespace instead, resolved when it lands).
    l1 = L1(max_staleness=60)
    async with AsyncCache(server.url, prefix="q", l1=l1, timeout=0.05) as cache:
        await cache.set("user:1", "old")
        await cache.set("team:7:summary", "old", tags=["team:7"])
        assert await cache.bump("search") == 1
        server.stop()
        assert await cache.invalidate("user:1") is False  # queued, not raised
        assert await cache.invalidate_tags("team:7") is False
        with pytest.raises(StoreError):  # a bump has no version to return
            await cache.bump("search")
        assert await cache.invalidate("user:1") is False  # coalesced
        assert cache.stats().pending_invalidations == 3
        assert cache.stats().errors["transient"] >= 1
        assert cache.stats().counts["invalidation_gave_up"] >= 3  # budgets spent
        assert cache.stats().oldest_pending_seconds >= 1.0  # queued that long ago
        server.cont()

        async def drained() -> bool:
            return cache.stats().pending_invalidations == 0

        await wait_until(drained)
        stats = cache.stats()
        assert stats.oldest_pending_seconds == 0.0
        assert stats.latency["invalidation_to_land"].count == 1
        assert raw.get("q:v1:user:1") is None
        assert raw.get("q:v1:team:7:summary") is None
        assert raw.get("q:v1:!ns:search") == b"2"
    raw.close()


async def test_a_key_whose_namespace_version_is_unknown_is_resolved_on_retry(
    server: RedisProcess,
) -> None:
    raw = redis.Redis.from_url(server.url)
    async with AsyncCache(server.url, prefix="u", timeout=0.05) as cache:
        assert await cache.bump("user") == 1
        await cache.set("user:1", "old")  # stored under user~1
        stored = [k for k in raw.keys("u:v1:user*") if b"lease" not in k]
        assert len(stored) == 1
        cache.engine.versions.forget()  # as a bus disconnect does
        server.stop()
        assert await cache.invalidate("user:1") is False
        server.cont()

        async def drained() -> bool:
            return cache.stats().pending_invalidations == 0

        await wait_until(drained)
        assert raw.get(stored[0]) is None
    raw.close()


async def test_what_never_lands_is_reported_on_close(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AsyncCache(server.url, prefix="lost", timeout=0.05)
    await cache.set("user:1", "old")
    server.kill()
    assert await cache.invalidate("user:1") is False
    with caplog.at_level(logging.ERROR, logger="freshcache"):
        await cache.aclose()
    assert cache.stats().counts["invalidations_abandoned"] == 1
    assert any("could not reach Redis" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["get", "get_many"])
async def test_a_read_across_the_retry_landing_does_not_return_the_old_value(
    method: str, redis_url: str, key_prefix: str, redis_cleanup: None,
    monkeypatch: Any,
) -> None:  # fmt: skip
    """A read that began while the key's invalidation was queued got Redis's
    old value; the retry lands (emptying the queue) before the read checks
    it: the value may predate the retry, so the read goes to the source.
    (``get_many`` skipped the check: it returned the old value.)"""
    database = {"k": "old"}
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("k", "old")
        l2 = cache.engine.l2
        assert l2 is not None
        real_invalidate, real_read = l2.invalidate, getattr(l2, method)
        fails = [1]

        async def invalidate_once_failing(keys: Any) -> int:
            if fails.pop() if fails else False:
                raise TransientStoreError("Redis paused")
            return await real_invalidate(keys)

        monkeypatch.setattr(l2, "invalidate", invalidate_once_failing)
        async with cache.write_through("k") as wrote:
            database["k"] = "new"  # the commit
        assert not wrote.landed  # queued
        read, go = AsyncFlag(), AsyncFlag()

        async def read_then_pause(keys: Any) -> Any:
            hit = await real_read(keys)  # "old": the retry has not landed
            read.set()
            assert await go.wait(WAIT)
            return hit

        monkeypatch.setattr(l2, method, read_then_pause)
        results: list[Any] = []

        async def reader() -> None:
            if method == "get":
                results.append(await cache.get_or_load("k", lambda: database["k"]))
            else:
                results.append(await cache.get_many(["k"]))

        worker = await run_in_background(reader)
        assert await read.wait(WAIT)

        async def drained() -> bool:
            return cache.stats().pending_invalidations == 0

        await wait_until(drained)  # the retry landed meanwhile
        go.set()
        await worker.join(WAIT)
        # get_or_load loads "new"; get_many misses (its caller loads "new")
        assert results == (["new"] if method == "get" else [{}])
