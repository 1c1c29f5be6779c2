"""A rolling deploy: caches of two versions of one prefix on one Redis.

Each cache stands for one process; ``v1`` and ``v2`` store the same relative
key under two heads (``prefix:v1:`` and ``prefix:v2:``), each in its own
format. An invalidation made under either version must reach both copies,
and a value cached under one version is never returned under the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis

from freshcache import L1, MISS, AsyncCache, CallableSink, Write
from freshcache._concurrency import AsyncFlag
from tests._async.waiting import WAIT, wait_until_listening

ITEMS = 10
OTHERS = 3


def shaped(version: str, value: int) -> dict[str, Any]:
    """The value as version ``version`` caches it (each version its own format)."""
    return {"format": version, "value": value}


class Side:
    """One process of one version, reading through its cache from ``db``."""

    def __init__(self, cache: AsyncCache, version: str, db: dict[str, int]) -> None:
        self.cache = cache
        self.version = version
        self.db = db

    def loader(self, key: str) -> Any:
        return lambda: shaped(self.version, self.db[key])

    async def read(self, key: str) -> Any:
        tags = [f"grp:{key}"]
        got = await self.cache.get_or_load(key, self.loader(key), tags=tags)
        assert got["format"] == self.version, f"{self.version} read {got} for {key}"
        return got


@pytest.fixture
async def sides(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[list[Side]]:
    """v1 and v2, each with L1 over Redis and without L1: four processes."""
    db: dict[str, int] = {f"item:{i}": 0 for i in range(ITEMS)}
    db.update({f"{ns}:{i}": 0 for ns in ("other", "misc") for i in range(OTHERS)})
    async with (
        AsyncCache(redis_url, prefix=key_prefix, version="v1", l1=L1()) as a1,
        AsyncCache(redis_url, prefix=key_prefix, version="v1") as b1,
        AsyncCache(redis_url, prefix=key_prefix, version="v2", l1=L1()) as a2,
        AsyncCache(redis_url, prefix=key_prefix, version="v2") as b2,
    ):
        for cache in (a1, b1, a2, b2):
            await cache.get("warm:up")
            await wait_until_listening(cache)
        yield [
            Side(a1, "v1", db),
            Side(b1, "v1", db),
            Side(a2, "v2", db),
            Side(b2, "v2", db),
        ]


async def quiet(sides: list[Side]) -> None:
    """Until every process has applied every bus message sent so far (its
    watermark passed now): what follows reads what the bus settled."""
    flag = AsyncFlag()
    engines = [side.cache.engine for side in sides]
    since = engines[0].mono()
    for _ in range(int(WAIT / 0.01)):
        if all(e.bus.watermark > since for e in engines):
            return
        await flag.wait(0.01)
    raise AssertionError("the bus never settled")


async def stale_keys(sides: list[Side]) -> list[str]:
    """Every key read in every process, compared with the source of truth."""
    stale = []
    for side in sides:
        for key, value in side.db.items():
            if (await side.read(key))["value"] != value:
                stale.append(f"{side.version}:{key}")
    return stale


async def test_invalidations_from_either_version_reach_both(
    sides: list[Side],
) -> None:
    a1, b1, a2, b2 = sides
    db = a1.db
    for _ in range(2):  # cached in every tier, L1 included
        for side in sides:
            for key in db:
                await side.read(key)
    assert await stale_keys(sides) == []

    def change(*keys: str) -> None:
        for key in keys:
            db[key] += 1

    change("item:0")  # writes: each side stores its own format
    assert await a1.cache.set("item:0", shaped("v1", db["item:0"]))
    change("item:1")
    assert await b2.cache.set("item:1", shaped("v2", db["item:1"]))
    change("item:2", "item:3")  # key invalidation and delete
    assert await a2.cache.invalidate("item:2")
    assert await b1.cache.delete("item:3")
    change("item:4", "item:5")  # tags
    assert await a1.cache.invalidate_tags("grp:item:4")
    assert await b2.cache.invalidate_tags("grp:item:5")
    change(*(k for k in db if k.startswith(("other:", "misc:"))))  # bumps
    assert await b1.cache.bump("other") == 1
    assert await a2.cache.bump("misc") == 1
    change("item:6")  # write-through, with and without a reload
    async with a2.cache.write_through("item:6", reload=a2.loader("item:6")):
        pass
    change("item:7")
    async with b1.cache.write_through("item:7"):
        pass

    await quiet(sides)
    assert await stale_keys(sides) == []
    await quiet(sides)  # and again, now that every tier was refilled
    assert await stale_keys(sides) == []


async def test_a_write_drops_the_other_versions_copy_and_is_never_served_there(
    sides: list[Side],
) -> None:
    for writer in sides:
        for side in sides:
            if side.version == writer.version:
                continue
            # the writer's own value under the other version's key: never served
            assert await writer.cache.set("item:0", shaped(writer.version, 5))
            await quiet(sides)
            assert await side.cache.get("item:0") is MISS
            assert (await side.read("item:0"))["value"] == 0


async def test_a_version_that_lapsed_clears_its_keys_before_reading(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """Every v1 process stops; the registry's entry of v1 expires. v2's
    invalidations no longer reach v1's keys; when v1 comes back (a rollback)
    it must not serve them."""
    db = {"item:1": 0}
    r = redis.Redis.from_url(redis_url)
    try:
        async with AsyncCache(redis_url, prefix=key_prefix, version="v1") as old:
            await Side(old, "v1", db).read("item:1")
            assert r.hget(f"{key_prefix}:!live", "v1") is not None  # registered
        seconds, micros = r.time()  # as if it expired a second ago
        r.hset(f"{key_prefix}:!live", "v1", seconds * 1000 + micros // 1000 - 1000)
        async with AsyncCache(redis_url, prefix=key_prefix, version="v2") as v2:
            db["item:1"] = 1
            assert await v2.invalidate("item:1")
        assert r.exists(f"{key_prefix}:v1:item:1") == 1  # v1 was not live
        async with AsyncCache(redis_url, prefix=key_prefix, version="v1") as back:
            assert (await Side(back, "v1", db).read("item:1"))["value"] == 1
            assert back.stats().counts.get("version_lapsed") == 1
            assert r.hget(f"{key_prefix}:!lapsed", "v1") is None  # cleared
    finally:
        r.close()


async def test_a_write_behind_write_reaches_the_other_version_once_applied(
    sides: list[Side],
) -> None:
    a1 = sides[0]
    rows: dict[str, Any] = {}

    def apply(writes: Sequence[Write]) -> None:
        for w in writes:
            rows[w.key] = w.value
            a1.db[w.key] = w.value["value"]

    for side in sides:
        await side.read("item:1")
    wb = a1.cache.write_behind(name="q")
    try:
        await wb.put("item:1", shaped("v1", 7))
        worker = wb.worker(CallableSink(apply), block=0)
        try:
            await worker.run(until_idle=True)
        finally:
            await worker.aclose()
    finally:
        await wb.aclose()
    assert rows == {"item:1": shaped("v1", 7)}
    await quiet(sides)
    assert await stale_keys(sides) == []
