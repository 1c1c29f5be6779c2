"""Stale-while-revalidate and early refresh: a stale read never waits on the
loader, and one background refresh brings the fresh value."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag
from freshcache.testing import FakeClock
from tests._async.waiting import (
    WAIT,
    wait_until,
    wait_until_current,
    wait_until_listening,
)


@pytest.fixture(params=["embedded", "redis", "l1+redis"])
async def cache(
    request: pytest.FixtureRequest, key_prefix: str, fake_clock: FakeClock
) -> AsyncIterator[AsyncCache]:
    if request.param == "embedded":
        made = AsyncCache(prefix=key_prefix, clock=fake_clock, ttl=10, stale_ttl=60)
    else:
        request.getfixturevalue("redis_cleanup")
        url = request.getfixturevalue("redis_url")
        l1 = L1() if request.param == "l1+redis" else None
        made = AsyncCache(
            url, prefix=key_prefix, clock=fake_clock, ttl=10, stale_ttl=60,
            l1=l1, timeout=1.0,
        )  # fmt: skip
    async with made:
        yield made


async def test_a_stale_read_returns_at_once_and_refreshes_once(
    cache: AsyncCache, fake_clock: FakeClock
) -> None:
    calls: list[int] = []
    release = AsyncFlag()

    async def loader() -> str:
        calls.append(1)
        if len(calls) == 1:
            return "v1"
        assert await release.wait(WAIT)  # the refresh is slow
        return "v2"

    assert await cache.get_or_load("k", loader) == "v1"
    fake_clock.advance(11)  # past fresh_until, inside the stale window
    for _ in range(20):  # nobody waits on the slow refresh
        assert await cache.get_or_load("k", loader) == "v1"
    release.set()

    async def refreshed() -> bool:
        return bool(await cache.get_or_load("k", loader) == "v2")

    await wait_until(refreshed)
    assert len(calls) == 2  # exactly one refresh
    counts = cache.stats().counts
    assert counts["swr_served_stale"] >= 20


async def test_plain_get_never_returns_a_stale_value(
    cache: AsyncCache, fake_clock: FakeClock
) -> None:
    await cache.set("k", "old")
    fake_clock.advance(11)
    assert await cache.get("k") is MISS  # get has no loader: fresh values only


async def test_a_failing_refresh_keeps_serving_stale_and_counts_it(
    cache: AsyncCache, fake_clock: FakeClock
) -> None:
    def loader() -> str:
        raise LookupError("database down")

    await cache.set("k", "stale but good")
    fake_clock.advance(11)
    assert await cache.get_or_load("k", loader) == "stale but good"

    async def failed() -> bool:
        return cache.stats().errors.get("refresh", 0) >= 1

    await wait_until(failed)
    assert await cache.get_or_load("k", loader) == "stale but good"


async def test_early_refresh_runs_before_expiry(
    key_prefix: str, fake_clock: FakeClock
) -> None:
    """XFetch with a huge beta: every hit of a value with a recompute time
    starts a refresh, in the background."""
    async with AsyncCache(
        prefix=key_prefix, clock=fake_clock, ttl=10, xfetch_beta=1e9
    ) as cache:
        calls: list[int] = []

        def loader() -> int:
            calls.append(1)
            fake_clock.advance(0.01)  # a measurable recompute time
            return len(calls)

        assert await cache.get_or_load("k", loader) == 1
        assert await cache.get_or_load("k", loader) == 1  # served, and refreshes

        async def refreshed() -> bool:
            return len(calls) >= 2

        await wait_until(refreshed)
        assert cache.stats().counts["early_refresh"] >= 1


@pytest.mark.parametrize("tiers", ["embedded", "l1+redis"])
async def test_the_decorators_l1_hit_path_refreshes_early_too(
    tiers: str, request: pytest.FixtureRequest, key_prefix: str, fake_clock: FakeClock
) -> None:
    """A hot key served from L1 by the decorator's fast path still rolls
    XFetch's dice near expiry (and never before ``early_refresh_from``)."""
    url = None
    if tiers == "l1+redis":
        request.getfixturevalue("redis_cleanup")
        url = request.getfixturevalue("redis_url")
    calls: list[int] = []
    async with AsyncCache(
        url, prefix=key_prefix, clock=fake_clock, l1=L1(), timeout=1.0
    ) as cache:

        @cache.cached("hot:{n}", ttl=100)
        async def hot(n: int) -> int:
            calls.append(n)
            fake_clock.advance(1.0)  # takes a second to compute: delta = 1 s
            return len(calls)

        assert await hot(1) == 1
        fake_clock.advance(100 - 1 - 8)  # 8 s before expiry: chance < 0.1 %
        for _ in range(200):
            assert await hot(1) == 1
        assert calls == [1]  # too early: the fast path never rolled
        fake_clock.advance(7.5)  # 0.5 s before expiry: ~60 % per read
        for _ in range(50):
            assert await hot(1) == 1
            if cache.stats().counts.get("early_refresh"):
                break

        async def refreshed() -> bool:
            return len(calls) == 2

        await wait_until(refreshed)
        assert await hot(1) == 2  # the new value, and still before expiry


async def test_close_drains_a_refresh_in_flight(
    key_prefix: str, fake_clock: FakeClock
) -> None:
    done: list[Any] = []
    cache = AsyncCache(prefix=key_prefix, clock=fake_clock, ttl=10, stale_ttl=60)

    async def slow() -> str:
        flag = AsyncFlag()
        await flag.wait(0.2)
        done.append(1)
        return "fresh"

    await cache.set("k", "stale")
    fake_clock.advance(11)
    assert await cache.get_or_load("k", slow) == "stale"
    await cache.aclose()
    assert done == [1]  # close waited for the refresh


async def test_close_gives_up_on_a_refresh_that_hangs(
    key_prefix: str, fake_clock: FakeClock
) -> None:
    """``close`` waits for a background refresh at most ``lease_ttl``, then
    gives up on it (the thread twin must not hang, or block exit)."""
    release = AsyncFlag()
    finished: list[str] = []
    cache = AsyncCache(
        prefix=key_prefix, clock=fake_clock, ttl=10, stale_ttl=60, lease_ttl=0.2
    )

    async def hang() -> str:
        await release.wait(WAIT)
        finished.append("refresh")
        return "fresh"

    await cache.set("k", "stale")
    fake_clock.advance(11)
    assert await cache.get_or_load("k", hang) == "stale"
    await cache.aclose()
    assert finished == []  # close returned while the refresh still hung
    release.set()


async def test_not_found_is_cached_briefly(
    cache: AsyncCache, fake_clock: FakeClock
) -> None:
    """Negative caching: a missing row does not stampede the database."""
    lookups: list[int] = []

    async def find_user() -> dict[str, int] | None:
        lookups.append(1)
        return None if len(lookups) == 1 else {"id": 7}

    assert await cache.get_or_load("user:7", find_user, negative_ttl=2) is None
    assert await cache.get_or_load("user:7", find_user, negative_ttl=2) is None
    assert len(lookups) == 1  # "not found" was cached
    fake_clock.advance(2.5)  # its own short TTL, not the cache's 10 s
    assert await cache.get_or_load("user:7", find_user, negative_ttl=2) == {"id": 7}
    assert len(lookups) == 2


async def test_a_refresh_that_starts_after_another_ones_fill_does_not_load(
    redis_url: str, key_prefix: str, redis_cleanup: None, fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Two processes read the stale entry; the first refreshes, fills and
    releases the lease before the second's refresh takes it. The second sees
    the new entry and skips: one refresh cluster-wide, not two."""
    options: dict[str, Any] = {
        "prefix": key_prefix, "clock": fake_clock, "ttl": 10, "stale_ttl": 60,
        "timeout": 1.0, "xfetch_beta": 0.0,
    }  # fmt: skip
    async with (
        AsyncCache(redis_url, **options) as first,
        AsyncCache(redis_url, **options) as second,
    ):
        calls: list[int] = []

        async def loader() -> str:
            calls.append(1)
            return f"v{len(calls)}"

        assert await first.get_or_load("k", loader) == "v1"
        fake_clock.advance(11)  # stale in both "processes"
        store = second.engine.l2
        assert store is not None
        original = store.acquire
        go = AsyncFlag()

        async def late_acquire(full: str, ttl: float) -> str | None:
            assert await go.wait(WAIT)  # the second's refresh takes the lease late
            return await original(full, ttl)

        monkeypatch.setattr(store, "acquire", late_acquire)
        assert await second.get_or_load("k", loader) == "v1"  # stale, at once
        assert await first.get_or_load("k", loader) == "v1"  # stale; refreshes

        async def refreshed() -> bool:
            return bool(await first.get("k") == "v2")

        await wait_until(refreshed)
        go.set()  # now the second's refresh takes the (free) lease

        async def skipped() -> bool:
            counts = second.stats().counts
            return bool(counts.get("refresh_skipped:refreshed", 0) == 1)

        await wait_until(skipped)
        assert len(calls) == 2  # the first load and one refresh
        assert await second.get_or_load("k", loader) == "v2"


async def test_over_redis_l1_serves_a_stale_entry_and_takes_the_other_refresh(
    redis_url: str, key_prefix: str, redis_cleanup: None, fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With L1 over Redis, a stale read is an L1 hit (no Redis read) that
    starts the refresh; when another process refreshed first, this process
    drops its stale copy and its next read brings the new value."""
    options: dict[str, Any] = {
        "prefix": key_prefix, "clock": fake_clock, "ttl": 10, "stale_ttl": 60,
        "timeout": 1.0, "xfetch_beta": 0.0, "l1": L1(),
    }  # fmt: skip
    async with (
        AsyncCache(redis_url, **options) as first,
        AsyncCache(redis_url, **options) as second,
    ):
        calls: list[int] = []

        async def loader() -> str:
            calls.append(1)
            return f"v{len(calls)}"

        @second.cached("item:{n}")
        async def item(n: int) -> str:
            return await loader()

        for cache in (first, second):  # a (re)subscribe flushes L1: be up first
            await cache.get("warm:up")
            await wait_until_listening(cache)

        assert await first.get_or_load("item:1", loader) == "v1"
        assert await item(1) == "v1"  # now in the second's L1 too
        fake_clock.advance(11)  # stale everywhere
        await wait_until_current(second)  # a ping back on the advanced clock
        store = second.engine.l2
        assert store is not None
        reads: list[str] = []
        original_get, original_acquire = store.get, store.acquire
        go = AsyncFlag()

        async def counted_get(full: str) -> Any:
            reads.append(full)
            return await original_get(full)

        async def late_acquire(full: str, ttl: float) -> str | None:
            assert await go.wait(WAIT)  # the second's refresh takes the lease late
            return await original_acquire(full, ttl)

        monkeypatch.setattr(store, "get", counted_get)
        monkeypatch.setattr(store, "acquire", late_acquire)
        for _ in range(5):
            assert await item(1) == "v1"  # stale, from L1, at once
        assert reads == []
        assert await first.get_or_load("item:1", loader) == "v1"  # it refreshes

        async def refreshed() -> bool:
            return bool(await first.get("item:1") == "v2")

        await wait_until(refreshed)
        go.set()

        async def caught_up() -> bool:
            return bool(await item(1) == "v2")

        await wait_until(caught_up)
        assert len(calls) == 2  # the first load and one refresh
        assert second.stats().counts.get("refresh_skipped:refreshed") == 1
