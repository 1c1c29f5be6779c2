"""Against a real Redis: cached functions without a unique name never share
values, raw keys cannot name freshcache's bookkeeping or alias a bumped
namespace, and foreign bytes in a namespace version never raise.
Hand-written for the async API; scripts/unasync.py generates the sync twin."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
import redis

from freshcache import L1, MISS, AsyncCache, UnstableKeyError

pytestmark = pytest.mark.redis


@pytest.fixture
async def cache(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncCache]:
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as c:
        yield c


async def _plus(n: int, x: int) -> int:
    return x + n


async def test_anonymous_cached_functions_never_share_values(
    cache: AsyncCache,
) -> None:
    made = []
    for n in (10, 11):  # closures made in a loop: one qualname

        async def add(x: int, n: int = n) -> int:
            return x + n

        made.append(add)
    partials = [functools.partial(_plus, 10), functools.partial(_plus, 11)]
    for func in [*made, *partials]:
        with pytest.raises(UnstableKeyError, match="namespace="):
            cache.cached()(func)  # refused when decorated, not when called
    first = cache.cached(namespace="plus10")(made[0])
    second = cache.cached(namespace="plus11")(made[1])
    assert await first(0) == 10
    assert await second(0) == 11
    assert await first(0) == 10  # from the cache: its own value
    assert first.key(0) != second.key(0)
    by_template = cache.cached("p11:{x}")(partials[1])
    assert await by_template(0) == 11
    assert await first(0) == 10


class Shard:
    def __init__(self, region: str) -> None:
        self.region = region

    def __cache_key__(self) -> str:
        return self.region

    async def size(self, x: int) -> str:
        return f"{self.region}:{x}"


async def test_a_methods_self_is_part_of_its_key(cache: AsyncCache) -> None:
    size = cache.cached()(Shard.size)
    eu, us = Shard("eu"), Shard("us")
    assert await size(eu, 1) == "eu:1"
    assert await size(us, 1) == "us:1"  # not eu's value
    assert await size(eu, 1) == "eu:1"
    bound = cache.cached()(us.size)
    assert bound.key(1) == size.key(us, 1)
    assert await bound(1) == "us:1"


@pytest.mark.parametrize(
    "key", ["!ns:user", "!epoch", "!tag:team:1", "user~1:5", "{user}:lease", ":1"]
)
async def test_raw_keys_cannot_name_bookkeeping(cache: AsyncCache, key: str) -> None:
    with pytest.raises(ValueError, match=r"namespace|hash tags"):
        await cache.set(key, 1)
    with pytest.raises(ValueError, match=r"namespace|hash tags"):
        await cache.get(key)
    with pytest.raises(ValueError, match=r"namespace|hash tags"):
        await cache.get_or_load(key, lambda: 1)
    with pytest.raises(ValueError, match=r"namespace|hash tags"):
        await cache.invalidate(key)
    assert await cache.get("user:1") is MISS  # the version read still works


async def test_raw_keys_cannot_alias_a_bumped_namespace(cache: AsyncCache) -> None:
    await cache.set("user:5", "old")
    assert await cache.bump("user") == 1
    assert await cache.get("user:5") is MISS
    with pytest.raises(ValueError, match="namespace"):
        await cache.set("user~1:5", "forged")
    await cache.set("user:5", "new")
    assert await cache.get("user:5") == "new"
    # A namespace escaped as cache.key escapes it is its own namespace.
    key = cache.key("user~1", 5)
    assert key == "user%7E1:5"
    await cache.set(key, "other")
    assert await cache.get("user:5") == "new"
    assert await cache.get(key) == "other"


async def test_foreign_bytes_in_a_namespace_version_never_raise(
    cache: AsyncCache, redis_url: str, key_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{key_prefix}:v1:!ns:user", b"\x80secret-bytes")
    finally:
        client.close()
    assert await cache.get("user:1") is MISS
    calls = []

    async def load() -> int:
        calls.append(1)
        return 7

    assert await cache.get_or_load("user:1", load) == 7
    assert await cache.get_or_load("user:1", load) == 7
    assert len(calls) == 2  # bypassed: the version is unknown, nothing stored
    assert cache.stats().errors["decode:version"] >= 1
    assert await cache.set("user:1", 1) is False
    assert await cache.get("team:1") is MISS  # other namespaces unaffected
    assert await cache.set("team:1", 1) is True
    assert await cache.get("team:1") == 1
