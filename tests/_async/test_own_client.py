"""A cache over a client (or a connection pool) the application built.

freshcache takes from it where Redis is and who connects (here: a
credential provider, a database number, ``decode_responses=True``, which
freshcache must not inherit) and keeps its own deadline and pools: the
application's client is never used or closed by it.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio
from redis.credentials import CredentialProvider

from freshcache import L1, AsyncCache
from freshcache._concurrency import asleep

pytestmark = pytest.mark.redis


class CountingCredentials(CredentialProvider):
    """The default user (no password set: any password is accepted)."""

    def __init__(self) -> None:
        self.calls = 0

    def get_credentials(self) -> tuple[str, str]:
        self.calls += 1
        return "default", "unused"


def _client_of(redis_url: str, credentials: CredentialProvider) -> redis.asyncio.Redis:
    base = redis.asyncio.Redis.from_url(redis_url)
    kwargs = base.connection_pool.connection_kwargs
    return redis.asyncio.Redis(
        host=kwargs.get("host", "127.0.0.1"),
        port=kwargs.get("port", 6379),
        db=kwargs.get("db", 0),
        credential_provider=credentials,
        decode_responses=True,  # the application's choice, not freshcache's
        socket_timeout=30,  # nor is this: the cache keeps its own deadline
    )


@pytest.mark.parametrize("kind", ["client", "pool"])
async def test_a_cache_over_the_applications_client(
    kind: str, redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    credentials = CountingCredentials()
    client = _client_of(redis_url, credentials)
    given: Any = client if kind == "client" else client.connection_pool
    writer = AsyncCache(client=given, prefix=key_prefix, l1=L1())
    reader = AsyncCache(client=given, prefix=key_prefix, l1=L1())
    try:
        assert await writer.set("user:1", {"name": "a"}) is True
        assert await reader.get("user:1") == {"name": "a"}  # bytes, not str
        assert await reader.get("user:1") == {"name": "a"}  # from L1 now
        assert await writer.invalidate("user:1") is True
        await asleep(0.2)  # past the staleness bound (0.1 s): the bus delivered
        assert await reader.get_or_load("user:1", lambda: {"name": "b"}) == {
            "name": "b"
        }
        assert reader.stats().counts.get("bus_connect") == 1  # the bus, too
        assert credentials.calls > 0  # every connection of freshcache's used it
    finally:
        await writer.aclose()
        await reader.aclose()
    # The application's client is untouched, and still its own.
    assert await client.ping() is True
    assert await client.set(f"{key_prefix}:mine", "x") is True
    assert await client.get(f"{key_prefix}:mine") == "x"  # still decodes
    await client.aclose()


async def test_what_a_cache_takes_and_refuses(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="not both"):
        AsyncCache(redis_url, client=client)
    with pytest.raises(TypeError, match="client="):
        AsyncCache(client="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]
    sentinel = redis.asyncio.Sentinel([("127.0.0.1", 26379)])
    replica = sentinel.slave_for("mymaster")  # connects only when used
    with pytest.raises(TypeError, match="not a replica's"):
        AsyncCache(client=replica)  # a primary's (master_for) is taken
    await client.aclose()
