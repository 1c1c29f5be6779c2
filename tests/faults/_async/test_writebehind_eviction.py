"""Write-behind under ``volatile-lru``, with Redis really evicting.

``write_behind(allow_eviction=True)`` accepts a ``volatile-*`` policy: the
queue's streams have no TTL, so only keys with one are evicted; the cache
entry and its pending-write mark have one. With the worker stopped, other
keys push Redis into eviction, the mark and the entry go, and a reader
caches the database's older row. Before, the worker's commit left that row
cached until its TTL (3,600 s); now the commit drops it.
"""

from __future__ import annotations

import pytest
import redis

from freshcache import AsyncCache, CallableSink, Write
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

LIMIT = 4 * 1024 * 1024


async def test_an_evicted_mark_leaves_no_old_row_after_the_commit(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server(
        "--maxmemory", str(LIMIT), "--maxmemory-policy", "volatile-lru"
    ) as server:
        database = {"user:1": "old"}
        async with AsyncCache(server.url, prefix="ev", timeout=1.0) as cache:
            wb = cache.write_behind(name="q", allow_eviction=True)
            await wb.put("user:1", "new")
            raw = redis.Redis.from_url(server.url)
            try:
                for i in range(400):  # volatile keys until ours are evicted
                    raw.set(f"filler:{i}", "x" * 50_000, ex=3600)
                    if not raw.exists("{ev:v1:user:1}:wb", "ev:v1:user:1"):
                        break
                assert raw.exists("{ev:v1:user:1}:wb", "ev:v1:user:1") == 0
                assert (
                    raw.xlen("ev:!wb:q:p" + "0")
                    + raw.xlen("ev:!wb:q:p1")
                    + (raw.xlen("ev:!wb:q:p2") + raw.xlen("ev:!wb:q:p3"))
                    == 1
                )  # the queue itself is never evicted
                raw.delete(*[f"filler:{i}" for i in range(400)])  # room again
            finally:
                raw.close()
            # The worker's lag: the reader caches the database's older row.
            assert (
                await cache.get_or_load("user:1", lambda: database["user:1"]) == "old"
            )
            assert await cache.get("user:1") == "old"

            def apply(writes: list[Write]) -> None:
                database.update({w.key: w.value for w in writes})

            worker = wb.worker(CallableSink(apply), block=0)
            await worker.run(until_idle=True)
            await worker.aclose()
            assert database["user:1"] == "new"
            assert (
                await cache.get_or_load("user:1", lambda: database["user:1"]) == "new"
            )
            await wb.aclose()
