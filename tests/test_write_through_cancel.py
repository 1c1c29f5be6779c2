"""asyncio only: a write-through cancelled after its commit still invalidates.

(Threads are not cancelled, so this test has no sync twin.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from freshcache import AsyncCache
from freshcache._concurrency import AsyncShield
from tests._async.waiting import WAIT, wait_until


@pytest.mark.parametrize("shielded", [True, False], ids=["freshcache", "unshielded"])
async def test_a_cancellation_during_the_refresh_does_not_lose_the_invalidation(
    redis_url: str, key_prefix: str, redis_cleanup: None, shielded: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    raw = redis.Redis.from_url(redis_url)
    full = f"{key_prefix}:v1:row:1"
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        await cache.set("row:1", "old")
        l2 = cache.engine.l2
        assert l2 is not None
        real_invalidate = l2.invalidate
        started, go = asyncio.Event(), asyncio.Event()

        async def slow_invalidate(fulls: Any) -> int:
            started.set()
            await go.wait()  # a slow round trip; the caller is cancelled here
            return await real_invalidate(fulls)

        monkeypatch.setattr(l2, "invalidate", slow_invalidate)
        if not shielded:

            async def plain(work: Any) -> Any:
                return await work()

            monkeypatch.setattr(AsyncShield, "run", staticmethod(plain))

        async def request_handler() -> None:
            async with cache.write_through("row:1"):
                pass  # the transaction committed here

        task = asyncio.ensure_future(request_handler())
        await asyncio.wait_for(started.wait(), WAIT)
        task.cancel()  # e.g. the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        if shielded:

            async def deleted() -> bool:
                return raw.get(full) is None

            await wait_until(deleted)
        else:
            await asyncio.sleep(0)
            assert raw.get(full) is not None, "unshielded, the invalidation is lost"
    raw.close()
