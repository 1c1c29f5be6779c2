"""Any bytes on the bus: nothing published on the channel can stop a listener.

Every process subscribes to ``{prefix}:!bus``; anyone who can PUBLISH there
(a bug, another tool, an attacker with a Redis login) can send anything.
The listener drops what does not decode, counts it (``errors["bus_decode"]``)
and goes on applying the messages after it.
"""

from __future__ import annotations

import random

import pytest
import redis

from freshcache import L1, AsyncCache
from freshcache._concurrency import AsyncFlag
from tests._async.waiting import WAIT, wait_for_count, wait_until_listening

pytestmark = pytest.mark.redis

_RANDOM = random.Random(13)
BAD = [
    b'{"v":1,"o":"x","n":[["a",Infinity]]}',  # int(inf): OverflowError
    b'{"v":1,"o":"x","n":[["a",-Infinity]]}',
    b'{"v":1,"o":"x","n":[["a",NaN]]}',
    b'{"v":1,"o":"x","n":[["a",1e400]]}',
    b'{"v":1,"o":"x","n":[["a",-1]]}',
    b'{"v":1,"o":"x","n":[["a",99999999999999999999999]]}',
    b'{"v":1,"o":"x","n":[["a"]]}',
    b'{"v":1,"o":"x","n":5}',
    b'{"v":1,"o":"x","n":[[{"a":1},1]]}',
    b'{"v":1,"o":"x","k":[1,2]}',
    b'{"v":1,"o":"x","k":5}',
    b'{"v":1,"o":"x","t":[{"a":1}]}',
    b'{"v":1,"o":"x","l":[null]}',
    b'{"v":1,"o":"x","e":5}',
    b'{"v":1,"o":"x","e":["only-a-name"]}',
    b'{"v":1,"o":null}',
    b'{"v":1,"o":["x"]}',
    b'{"v":1}',
    b"[" * 100_000,  # deep enough to exhaust the parser
    b"\xff\xfe\xfd",
    b"",
    b"null",
    b"1e400",
    *(_RANDOM.randbytes(_RANDOM.randrange(1, 200)) for _ in range(30)),
]


async def test_no_bytes_on_the_bus_stop_a_listener(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with (
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as writer,
        AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as reader,
    ):
        got = AsyncFlag()
        received: list[object] = []

        @reader.events.on("after")
        async def after(payload: object) -> None:
            received.append(payload)
            got.set()

        for cache in (reader, writer):
            await cache.get("warm:up")  # starts the bus
            await wait_until_listening(cache)
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            for data in BAD:
                await client.publish(f"{key_prefix}:!bus", data)
        finally:
            await client.aclose()
        await writer.events.publish("after", 1)  # sent after every bad message
        assert await got.wait(WAIT), "the listener died"
        assert received == [1]
        errors = reader.stats().errors
        assert errors.get("bus_decode", 0) >= len(BAD) - 1, errors
        assert errors.get("bus_apply", 0) == 0
        assert errors.get("bus_listener", 0) == 0
        # And it still applies invalidations: the reader's L1 copy goes.
        assert await reader.get_or_load("user:1", lambda: "old") == "old"
        seen = reader.stats().counts.get("invalidations_received", 0)
        await writer.invalidate("user:1")
        await wait_for_count(reader, "invalidations_received", seen + 1)
        assert await reader.get_or_load("user:1", lambda: "new") == "new"
