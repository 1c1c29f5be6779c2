"""Across processes (two caches stand for two processes): callers that find the
fill lease taken wait for the holder's fill instead of loading too."""

from __future__ import annotations

import time
from typing import Any

import redis

from freshcache import L1, AsyncCache
from freshcache._concurrency import AsyncFlag
from tests._async.waiting import (
    WAIT,
    run_in_background,
    wait_for_count,
    wait_until,
    wait_until_listening,
)


async def test_a_waiter_gets_the_holders_fill_without_loading(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as holder,
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as waiter,
    ):
        for cache in (holder, waiter):
            await cache.get("warm:up")
            await wait_until_listening(cache)
        loading, go = AsyncFlag(), AsyncFlag()

        async def slow_loader() -> str:
            loading.set()
            assert await go.wait(WAIT)
            return "from the holder"

        async def hold() -> None:
            await holder.get_or_load("hot", slow_loader)

        worker = await run_in_background(hold)
        assert await loading.wait(WAIT)  # the holder has the lease now
        results: list[Any] = []

        async def wait_for_it() -> None:
            results.append(await waiter.get_or_load("hot", lambda: "waiter loaded"))

        waiting = await run_in_background(wait_for_it)
        await wait_for_count(waiter, "lease_busy", 1)  # it found the lease taken
        go.set()
        await worker.join(WAIT)
        await waiting.join(WAIT)
        assert results == ["from the holder"]
        counts = waiter.stats().counts
        assert counts["lease_busy"] == 1
        assert counts["lease_wait_served"] == 1
        assert waiter.stats().loads == 0


async def test_a_dead_holders_lease_is_taken_over_after_its_ttl(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        raw = redis.Redis.from_url(redis_url)
        lease = "{" + f"{key_prefix}:v1:hot" + "}:lease"
        raw.set(lease, "holder-that-died", px=300)  # killed mid-load
        started = time.monotonic()
        assert await cache.get_or_load("hot", lambda: "taken over") == "taken over"
        waited = time.monotonic() - started
        assert 0.25 < waited < 0.3 + 2.0  # bounded by the lease, not forever
        assert cache.stats().counts["lease_takeover"] == 1
        assert await cache.get("hot") == "taken over"  # and it stored the fill
        assert raw.pttl(lease) == -2  # no lease left behind
        raw.close()


class JoinCounter(dict):  # type: ignore[type-arg]
    """Stands in for a single flight's table of calls: counts the lookups that
    found a call in flight, i.e. the callers that joined one."""

    joined = 0

    def get(self, key: Any, default: Any = None) -> Any:
        found = super().get(key, default)
        if found is not None:
            self.joined += 1
        return found


async def wait_for_joiners(counter: JoinCounter, n: int) -> None:
    async def joined() -> bool:
        return counter.joined >= n

    await wait_until(joined)


async def test_a_miss_during_a_load_here_joins_it_without_reading_redis(
    redis_url: str, key_prefix: str, redis_cleanup: None, monkeypatch: Any
) -> None:
    """In a stampede, the callers of one process share the leader's load and
    its one read of the result: none of them reads Redis on its own."""
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.get("warm:up")
        await wait_until_listening(cache)
        store = cache.engine.l2
        assert store is not None
        original = store.get
        reads: list[str] = []

        async def get(full: str) -> Any:
            reads.append(full)
            return await original(full)

        monkeypatch.setattr(store, "get", get)
        loading, go = AsyncFlag(), AsyncFlag()
        calls: list[int] = []

        async def slow_loader() -> str:
            calls.append(1)
            loading.set()
            assert await go.wait(WAIT)
            return "loaded once"

        results: list[Any] = []

        async def call() -> None:
            results.append(await cache.get_or_load("hot", slow_loader))

        joins = JoinCounter()
        monkeypatch.setattr(cache.engine.flights, "_calls", joins)
        leader = await run_in_background(call)
        assert await loading.wait(WAIT)  # the leader read its miss, and loads
        followers = [await run_in_background(call) for _ in range(5)]
        await wait_for_joiners(joins, 5)
        go.set()
        for worker in [leader, *followers]:
            await worker.join(WAIT)
        assert results == ["loaded once"] * 6
        assert len(calls) == 1
        assert len(reads) == 1, reads  # the leader's miss; nobody else read


async def test_concurrent_reads_of_one_key_share_one_redis_read(
    redis_url: str, key_prefix: str, redis_cleanup: None, monkeypatch: Any
) -> None:
    """Callers of one key in one process share one Redis GET (each is still
    counted as a hit); a later caller reads again."""
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("hot", "cached")
        await wait_until_listening(cache)  # a (re)subscribe detaches flights
        store = cache.engine.l2
        assert store is not None
        original = store.get
        reading, go = AsyncFlag(), AsyncFlag()
        reads: list[str] = []

        async def get(full: str) -> Any:
            reads.append(full)
            reading.set()
            assert await go.wait(WAIT)
            return await original(full)

        monkeypatch.setattr(store, "get", get)
        hits = cache.stats().redis.hits
        results: list[Any] = []

        async def call() -> None:
            results.append(await cache.get_or_load("hot", lambda: "loaded"))

        joins = JoinCounter()
        monkeypatch.setattr(cache.engine.flights, "_calls", joins)
        leader = await run_in_background(call)
        assert await reading.wait(WAIT)  # the leader's GET is under way
        followers = [await run_in_background(call) for _ in range(5)]
        await wait_for_joiners(joins, 5)
        go.set()
        for worker in [leader, *followers]:
            await worker.join(WAIT)
        assert results == ["cached"] * 6
        assert len(reads) == 1, reads
        assert cache.stats().redis.hits == hits + 6
        assert cache.stats().loads == 0
        assert await cache.get_or_load("hot", lambda: "loaded") == "cached"
        assert len(reads) == 2  # the flight ended: a new caller reads anew


async def test_a_burst_on_an_unknown_namespace_reads_its_version_once(
    redis_url: str, key_prefix: str, redis_cleanup: None, monkeypatch: Any
) -> None:
    """After a start or a resubscribe no namespace version is known: a burst
    of callers shares one read of it (one each overflowed the pool, and a
    caller that could not read it bypassed the cache to the loader)."""
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.get("warm:up")
        await wait_until_listening(cache)
        store = cache.engine.l2
        assert store is not None
        original = store.version
        reading, go = AsyncFlag(), AsyncFlag()
        reads: list[str] = []

        async def version(namespace: str) -> int:
            reads.append(namespace)
            reading.set()
            # longer than the steps below may take together (each has WAIT;
            # in one loaded full run the leader's WAIT ran out before them)
            assert await go.wait(WAIT * 3)
            return await original(namespace)

        monkeypatch.setattr(store, "version", version)
        joins = JoinCounter()
        monkeypatch.setattr(cache.engine.versions._reads, "_calls", joins)
        results: list[Any] = []

        async def call() -> None:
            results.append(await cache.get_or_load("team:7", lambda: "loaded"))

        leader = await run_in_background(call)
        assert await reading.wait(WAIT)
        followers = [await run_in_background(call) for _ in range(5)]
        await wait_for_joiners(joins, 5)
        go.set()
        for worker in [leader, *followers]:
            await worker.join(WAIT)
        assert results == ["loaded"] * 6
        assert reads == ["team"]
        assert cache.stats().loads == 1


async def _stampede(
    cache: AsyncCache, key: str, *, fail: bool, monkeypatch: Any
) -> list[Any]:
    """Six callers of ``key`` at once: one loads (slowly), five join it."""
    loading, go = AsyncFlag(), AsyncFlag()

    async def slow_loader() -> str:
        loading.set()
        assert await go.wait(WAIT)
        if fail:
            raise LookupError("the database said no")
        return "loaded once"

    results: list[Any] = []

    async def call() -> None:
        try:
            results.append(await cache.get_or_load(key, slow_loader))
        except LookupError as exc:
            results.append(str(exc))

    joins = JoinCounter()
    monkeypatch.setattr(cache.engine.flights, "_calls", joins)
    leader = await run_in_background(call)
    assert await loading.wait(WAIT)
    followers = [await run_in_background(call) for _ in range(5)]
    await wait_for_joiners(joins, 5)
    go.set()
    for worker in [leader, *followers]:
        await worker.join(WAIT)
    return results


async def test_callers_that_join_a_load_are_counted_and_get_its_error(
    redis_url: str, key_prefix: str, redis_cleanup: None, monkeypatch: Any
) -> None:
    """Six callers share one load; each is one lookup in the stats (a miss
    in L1, in Redis and in the cache), whether the load returns or raises."""
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        await cache.get("warm:up")
        await wait_until_listening(cache)
        for fail, expected in ((False, "loaded once"), (True, "the database said no")):
            before = cache.stats()
            results = await _stampede(
                cache, f"hot:{fail}", fail=fail, monkeypatch=monkeypatch
            )
            assert results == [expected] * 6
            after = cache.stats()
            assert after.loads - before.loads == 1
            assert after.lookups.misses - before.lookups.misses == 6
            assert after.l1.misses - before.l1.misses == 6
            assert after.redis.misses - before.redis.misses == 6
            assert after.lookups.total - before.lookups.total == 6
