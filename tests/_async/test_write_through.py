"""Write-through on real Redis and PostgreSQL: the cache ends equal to the database.

Each race test drives one interleaving of two writers (or a writer and a
reader) step by step, stopping them at the dangerous points (after the
commit, after the refill's SELECT). Each runs against freshcache and two
naive write-throughs the same interleavings must catch:

* ``naive_set``: commit, then ``cache.set`` the value written (the race of
  issue 5: W2 sets v2, then W1 sets v1);
* ``naive_reread``: freshcache's write-through with the lease and the L1
  generation check switched off (invalidate, re-read, store unguarded).
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest

from freshcache import L1, MISS, AsyncCache
from freshcache._concurrency import AsyncFlag, asleep
from tests._async.test_races import unprotect
from tests._async.waiting import WAIT, run_in_background, wait_until
from tests.rows import commit_new_version, read_version, version_table

KEY = "row:1"


@pytest.fixture
def table(postgres_dsn: str, key_prefix: str) -> Iterator[str]:
    with version_table(postgres_dsn, f"wt_{key_prefix}") as name:
        yield name


@pytest.fixture(params=["redis", "l1+redis", "embedded"])
async def cache(
    request: pytest.FixtureRequest, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncCache]:
    url = None if request.param == "embedded" else request.getfixturevalue("redis_url")
    l1 = L1() if request.param == "l1+redis" else None
    async with AsyncCache(url, prefix=key_prefix, l1=l1, timeout=1.0) as made:
        yield made


@pytest.fixture(params=["freshcache", "naive_set", "naive_reread"])
def variant(
    request: pytest.FixtureRequest, cache: AsyncCache, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "naive_reread":
        unprotect(cache, monkeypatch)
    return str(request.param)


class Stops:
    """Named points where a writer or reader stops until the test lets it go."""

    def __init__(self, *names: str) -> None:
        self._stops = {name: (AsyncFlag(), AsyncFlag()) for name in names}

    async def at(self, name: str) -> None:
        stop = self._stops.get(name)
        if stop is not None:
            stop[0].set()
            assert await stop[1].wait(WAIT), f"never let go at {name}"

    async def reached(self, name: str) -> None:
        assert await self._stops[name][0].wait(WAIT), f"never reached {name}"

    def go(self, name: str) -> None:
        self._stops[name][1].set()


def loader(dsn: str, table: str, stops: Stops) -> Callable[[], Any]:
    async def load() -> int:
        version = read_version(dsn, table)
        await stops.at("after_select")
        return version

    return load


async def write(
    cache: AsyncCache, variant: str, dsn: str, table: str, stops: Stops
) -> None:
    """Commit a new version, then refresh the cache the way ``variant`` does."""
    if variant == "naive_set":
        version = commit_new_version(dsn, table)
        await stops.at("after_commit")
        await stops.at("after_select")  # no SELECT: this is where it sets
        await cache.set(KEY, version)
        return
    async with cache.write_through(KEY, reload=loader(dsn, table, stops)):
        commit_new_version(dsn, table)
        await stops.at("after_commit")  # committed, not yet refreshed


async def cached_values(cache: AsyncCache) -> set[Any]:
    """What every tier of ``cache`` holds for KEY (L1 and Redis apart)."""
    seen = {await cache.get(KEY)}
    full = f"{cache.engine.head}{KEY}"
    if cache.engine.l2 is not None:
        hit = await cache.engine.l2.get(full)
        seen.add(MISS if hit is MISS else hit[0].value)
    return seen


async def check(
    cache: AsyncCache, dsn: str, table: str, variant: str, caught_by: set[str]
) -> None:
    truth = read_version(dsn, table)
    held = await cached_values(cache)
    if variant in caught_by:
        assert held & {truth - 1}, f"{variant} should have cached the older value"
    else:
        assert held == {truth}, f"cache holds {held}, the database {truth}"


async def test_the_later_commit_wins_when_the_earlier_writer_refreshes_last(
    cache: AsyncCache, variant: str, table: str, postgres_dsn: str
) -> None:
    """W1 commits, then W2 commits and refreshes, then W1 refreshes."""
    assert await cache.get_or_load(KEY, loader(postgres_dsn, table, Stops())) == 1
    w1 = Stops("after_commit")
    first = await run_in_background(
        lambda: write(cache, variant, postgres_dsn, table, w1)
    )
    await w1.reached("after_commit")  # W1 committed version 2
    await write(cache, variant, postgres_dsn, table, Stops())  # W2: version 3
    w1.go("after_commit")
    await first.join(WAIT)
    await check(cache, postgres_dsn, table, variant, caught_by={"naive_set"})


async def test_a_refill_that_read_before_a_newer_commit_is_not_stored(
    cache: AsyncCache, variant: str, table: str, postgres_dsn: str
) -> None:
    """W1's refill SELECTs version 2; W2 commits 3 and refreshes; W1 fills."""
    assert await cache.get_or_load(KEY, loader(postgres_dsn, table, Stops())) == 1
    w1 = Stops("after_select")
    first = await run_in_background(
        lambda: write(cache, variant, postgres_dsn, table, w1)
    )
    await w1.reached("after_select")
    await write(cache, variant, postgres_dsn, table, Stops())
    w1.go("after_select")
    await first.join(WAIT)
    caught = {"naive_set", "naive_reread"}
    await check(cache, postgres_dsn, table, variant, caught_by=caught)


async def test_a_fill_during_w2s_refresh_is_not_stored(
    cache: AsyncCache, variant: str, table: str, postgres_dsn: str
) -> None:
    """W1's refill SELECTs version 2; W2 commits 3 and invalidates; W1 fills
    while W2's own refill is still reading; then W2 fills."""
    assert await cache.get_or_load(KEY, loader(postgres_dsn, table, Stops())) == 1
    w1, w2 = Stops("after_select"), Stops("after_select")
    first = await run_in_background(
        lambda: write(cache, variant, postgres_dsn, table, w1)
    )
    await w1.reached("after_select")
    second = await run_in_background(
        lambda: write(cache, variant, postgres_dsn, table, w2)
    )
    await w2.reached("after_select")  # W2 committed, invalidated, read 3
    w1.go("after_select")
    await first.join(WAIT)  # W1's fill comes after W2's invalidation
    w2.go("after_select")
    await second.join(WAIT)
    # The naive variants pass this one too: the later writer stores last.
    await check(cache, postgres_dsn, table, variant, caught_by=set())


async def test_a_reader_that_read_the_old_row_before_the_commit_stores_nothing(
    cache: AsyncCache, variant: str, table: str, postgres_dsn: str
) -> None:
    reader_stops = Stops("after_select")
    results: list[Any] = []

    async def read() -> None:
        results.append(
            await cache.get_or_load(KEY, loader(postgres_dsn, table, reader_stops))
        )

    reader = await run_in_background(read)
    await reader_stops.reached("after_select")  # the reader read version 1
    await write(cache, variant, postgres_dsn, table, Stops())  # commits 2
    reader_stops.go("after_select")
    await reader.join(WAIT)
    assert results == [1]
    await check(cache, postgres_dsn, table, variant, caught_by={"naive_reread"})


@pytest.mark.parametrize("writer", ["freshcache", "naive_finally"])
async def test_a_rolled_back_write_leaves_the_cache_untouched(
    cache: AsyncCache, writer: str, table: str, postgres_dsn: str
) -> None:
    assert await cache.get_or_load(KEY, lambda: read_version(postgres_dsn, table)) == 1
    full = f"{cache.engine.head}{KEY}"
    l2 = cache.engine.l2
    stored = None if l2 is None else await l2._client.get(full)
    sent = cache.stats().counts.get("invalidations_sent", 0)

    def update_then_fail() -> None:
        with psycopg.connect(postgres_dsn) as conn, conn.transaction():
            conn.execute(f"UPDATE {table} SET version = 2 WHERE id = 1")
            raise RuntimeError("the application aborts the transaction")

    async def freshcache_write() -> None:
        async with cache.write_through(KEY, reload=lambda: 0, tags=["t"]):
            update_then_fail()

    async def naive_write() -> None:  # sets what it tried to write, whatever happened
        try:
            update_then_fail()
        finally:
            await cache.set(KEY, 2)

    with pytest.raises(RuntimeError):
        await (freshcache_write if writer == "freshcache" else naive_write)()
    assert read_version(postgres_dsn, table) == 1  # rolled back
    if writer == "freshcache":
        assert await cache.get(KEY) == 1
        assert cache.stats().counts.get("invalidations_sent", 0) == sent
        assert cache.stats().loads == 1
        if l2 is not None:
            assert await l2._client.get(full) == stored  # the same bytes
    else:
        assert await cache.get(KEY) == 2, "the naive writer should have cached 2"


async def test_write_through_invalidates_tags_and_refills_with_the_readers_tags(
    cache: AsyncCache, table: str, postgres_dsn: str
) -> None:
    await cache.set("team:7:summary", "old", tags=["team:7"])
    async with cache.write_through(
        KEY,
        tags=["team:7"],
        reload=lambda: read_version(postgres_dsn, table),
        reload_tags=["team:7"],
    ) as written:
        commit_new_version(postgres_dsn, table)
    assert written.value == 2
    assert written.landed
    assert await cache.get("team:7:summary") is MISS
    assert await cache.get(KEY) == 2
    await cache.invalidate_tags("team:7")  # the refill carries the readers' tag
    assert await cache.get(KEY) is MISS


async def test_write_through_refuses_what_it_cannot_do(cache: AsyncCache) -> None:
    with pytest.raises(ValueError):
        cache.write_through("a", "b", reload=lambda: 1)
    with pytest.raises(ValueError):
        cache.write_through()
    with pytest.raises(TypeError):
        cache.write_through("a", tags="team:7")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # before the transaction, not after it
        cache.write_through("a{b}")
    with pytest.raises(TypeError):
        cache.write_through(7)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["freshcache", "naive_set", "naive_reread"])
async def test_two_processes_with_l1_end_equal_to_the_database(
    kind: str, redis_url: str, key_prefix: str, redis_cleanup: None,
    table: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """W1 (process a) refills from a read older than W2's commit (process b)."""
    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as a,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as b,
    ):
        if kind == "naive_reread":
            unprotect(a, monkeypatch)
        load = loader(postgres_dsn, table, Stops())
        assert await a.get_or_load(KEY, load) == 1
        assert await b.get_or_load(KEY, load) == 1
        w1 = Stops("after_select")
        first = await run_in_background(lambda: write(a, kind, postgres_dsn, table, w1))
        await w1.reached("after_select")
        await write(b, kind, postgres_dsn, table, Stops())  # commits 3
        w1.go("after_select")
        await first.join(WAIT)
        async with AsyncCache(redis_url, prefix=key_prefix) as plain:
            in_redis = await cached_values(plain)
        if kind == "freshcache":
            assert in_redis == {3}
            assert await a.get(KEY) == 3
            assert await b.get(KEY) == 3
        else:
            assert in_redis == {2}, f"{kind} should have left version 2 in Redis"


async def test_many_writers_and_readers_in_two_processes_end_equal_to_the_database(
    redis_url: str, key_prefix: str, redis_cleanup: None,
    table: str, postgres_dsn: str,
) -> None:  # fmt: skip
    """Not a driven interleaving: random pauses at the same points, as a net."""
    rng = random.Random(5)

    async def pause() -> None:
        await asleep(rng.random() * 0.003)

    async def load() -> int:
        version = read_version(postgres_dsn, table)
        await pause()
        return version

    async def writes(cache: AsyncCache) -> None:
        for _ in range(8):
            async with cache.write_through(KEY, reload=load):
                commit_new_version(postgres_dsn, table)
                await pause()

    async def reads(cache: AsyncCache) -> None:
        for _ in range(30):
            await cache.get_or_load(KEY, load)
            await pause()

    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as a,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as b,
    ):
        workers = [
            await run_in_background(functools.partial(work, c))
            for c in (a, b)
            for work in (writes, writes, reads)
        ]
        for worker in workers:
            await worker.join(WAIT)
        truth = read_version(postgres_dsn, table)
        assert truth == 1 + 4 * 8
        async with AsyncCache(redis_url, prefix=key_prefix) as plain:
            assert await cached_values(plain) <= {truth, MISS}
        for cache in (a, b):  # once the last write's bus message reached it

            async def current(cache: AsyncCache = cache) -> bool:
                return bool(await cache.get_or_load(KEY, load) == truth)

            await wait_until(current)
