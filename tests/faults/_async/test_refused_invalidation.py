"""An invalidation Redis refuses for good is not retried forever.

A tag set overwritten with a string (WRONGTYPE), an epoch that is not a
number, an ACL that forbids a command: retrying cannot help. Before, such an
invalidation stayed queued forever, retried every 250 ms, and while it was
queued this process's L1 took no fills. Now it escalates to a flush of the
cache's keys, which removes whatever it would have removed.
"""

from __future__ import annotations

import pytest
import redis

from freshcache import L1, MISS, AsyncCache
from tests._async.waiting import wait_for_count

pytestmark = pytest.mark.redis


async def test_a_refused_tag_invalidation_escalates_to_a_flush(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    raw = redis.Redis.from_url(redis_url)
    try:
        async with AsyncCache(
            redis_url, prefix=key_prefix, l1=L1(), timeout=1.0
        ) as cache:
            assert await cache.set("user:1", "old", tags=["team:1"]) is True
            assert await cache.set("user:2", "other") is True
            tag_set = f"{key_prefix}:v1:!tag:team:1"
            assert raw.type(tag_set) == b"set"
            raw.delete(tag_set)
            raw.set(tag_set, "not a set")  # SMEMBERS now answers WRONGTYPE
            assert await cache.invalidate_tags("team:1") is False  # queued
            await wait_for_count(cache, "invalidations_escalated", 1)
            await wait_for_count(cache, "invalidations_retried", 1)
            assert cache.stats().pending_invalidations == 0
            assert await cache.get("user:1") is MISS  # flushed, never stale
            assert raw.exists(f"{key_prefix}:v1:user:1") == 0
            # L1 fills again: a set is served from L1.
            assert await cache.set("user:3", "new") is True
            before = cache.stats().l1.hits
            assert await cache.get("user:3") == "new"
            assert cache.stats().l1.hits == before + 1
    finally:
        raw.close()
