"""``cache.writes``: a decorated write refreshes the cached readers after it returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from freshcache import L1, MISS, AsyncCache
from tests._async.test_races import unprotect
from tests._async.test_write_through import Stops, cached_values
from tests._async.waiting import WAIT, run_in_background
from tests.rows import commit_new_version, read_version, version_table


@pytest.fixture
def table(postgres_dsn: str, key_prefix: str) -> Iterator[str]:
    with version_table(postgres_dsn, f"wd_{key_prefix}") as name:
        yield name


@pytest.fixture(params=["redis", "l1+redis", "embedded"])
async def cache(
    request: pytest.FixtureRequest, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncCache]:
    url = None if request.param == "embedded" else request.getfixturevalue("redis_url")
    l1 = L1() if request.param == "l1+redis" else None
    async with AsyncCache(url, prefix=key_prefix, l1=l1, timeout=1.0) as made:
        yield made


class Rows:
    """A cached reader and a decorated writer of row 1; each load takes the
    next ``Stops`` queued in ``loads`` (none: it does not stop)."""

    def __init__(self, cache: AsyncCache, dsn: str, table: str) -> None:
        self.loads: list[Stops] = []
        self.commits = 0

        @cache.cached("row:{row_id}", tags=["rows"])
        async def get_row(row_id: int) -> int:
            stops = self.loads.pop(0) if self.loads else Stops()
            version = read_version(dsn, table)
            await stops.at("after_select")
            return version

        @cache.writes(get_row, tags=["table:{table_name}"])
        async def bump_row(row_id: int, table_name: str, fail: bool = False) -> int:
            version = commit_new_version(dsn, table)
            if fail:
                raise RuntimeError("after the commit: nothing is refreshed")
            self.commits += 1
            return version

        self.get_row = get_row
        self.bump_row = bump_row


async def test_a_write_refreshes_its_readers_and_tags(
    cache: AsyncCache, table: str, postgres_dsn: str
) -> None:
    rows = Rows(cache, postgres_dsn, table)
    assert await rows.get_row(1) == 1
    await cache.set("summary", "old", tags=["table:t"])
    assert await rows.bump_row(1, "t") == 2
    assert await cache.get("summary") is MISS
    assert await cache.get("row:1") == 2  # refilled, not just invalidated
    await cache.invalidate_tags("rows")  # with the reader's own tags
    assert await cache.get("row:1") is MISS


async def test_a_write_that_raises_refreshes_nothing(
    cache: AsyncCache, table: str, postgres_dsn: str
) -> None:
    rows = Rows(cache, postgres_dsn, table)
    assert await rows.get_row(1) == 1
    with pytest.raises(RuntimeError):
        await rows.bump_row(1, "t", fail=True)
    assert await cache.get("row:1") == 1
    assert cache.stats().loads == 1


@pytest.mark.parametrize("variant", ["freshcache", "naive_reread"])
async def test_a_refill_that_read_before_a_newer_commit_is_not_stored(
    cache: AsyncCache, table: str, postgres_dsn: str, variant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if variant == "naive_reread":
        unprotect(cache, monkeypatch)
    rows = Rows(cache, postgres_dsn, table)
    assert await rows.get_row(1) == 1
    w1 = Stops("after_select")
    rows.loads.append(w1)
    first = await run_in_background(lambda: rows.bump_row(1, "t"))
    await w1.reached("after_select")  # W1 committed 2; its refill read 2
    await rows.bump_row(1, "t")  # W2 commits 3 and refreshes
    w1.go("after_select")
    await first.join(WAIT)
    held: set[Any] = await cached_values(cache)
    if variant == "freshcache":
        assert held == {3}
    else:
        assert 2 in held, "the unguarded refill should have stored version 2"


def test_a_reader_argument_the_writer_lacks_is_refused(cache: AsyncCache) -> None:
    @cache.cached("row:{row_id}")
    async def get_row(row_id: int) -> int:
        return 1

    with pytest.raises(TypeError):

        @cache.writes(get_row)
        async def write(other_id: int) -> None:
            pass
