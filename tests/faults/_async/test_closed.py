"""Closing a cache is final: every later call raises ``CacheClosedError``.

Before, a closed cache reconnected silently on its next call and went on
working, without the background task that retries queued invalidations: an
invalidation queued after the close was never retried.
"""

from __future__ import annotations

from typing import Any

import pytest

from freshcache import L1, AsyncCache, CacheClosedError

pytestmark = pytest.mark.redis


async def _calls(cache: AsyncCache) -> list[Any]:
    @cache.cached("user:{user_id}")
    async def user(user_id: int) -> str:
        return "row"

    return [
        lambda: cache.get("user:1"),
        lambda: cache.get_many(["user:1", "user:2"]),
        lambda: cache.get_or_load("user:1", lambda: "row"),
        lambda: cache.set("user:1", "row"),
        lambda: cache.set_many({"user:1": "row"}),
        lambda: cache.delete("user:1"),
        lambda: cache.invalidate("user:1"),
        lambda: cache.invalidate_tags("team:1"),
        lambda: cache.bump("user"),
        lambda: cache.clear(),
        lambda: cache.events.publish("changed", 1),
        lambda: user(1),
        lambda: user.invalidate(1),
    ]


@pytest.mark.parametrize("tiers", ["embedded", "redis", "l1+redis"])
async def test_every_call_after_close_raises(
    tiers: str, redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    url = None if tiers == "embedded" else redis_url
    l1 = None if tiers == "redis" else L1()
    cache = AsyncCache(url, prefix=key_prefix, l1=l1, timeout=1.0)
    calls = await _calls(cache)
    for call in calls:  # every call works while open (and fills L1)
        await call()
    await cache.aclose()
    for call in calls:
        with pytest.raises(CacheClosedError):
            await call()
    await cache.aclose()  # closing twice is harmless
