"""freshcache's own configurations run the shipped contract, and what is not in it.

The contract is ``freshcache.testing.contract`` (users subclass it too); here it
runs on the embedded default, on Redis, and on an L1 over Redis, each L1
also in copy mode. Hand-written
for the async API; scripts/unasync.py generates the sync twin.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from freshcache import L1, AsyncCache, SerializationError
from freshcache.testing.contract import AsyncCacheContract


class TestEmbedded(AsyncCacheContract):
    """``AsyncCache()``: one in-process tier, no server."""

    @pytest.fixture
    def make_cache(self) -> Callable[..., AsyncCache]:
        return AsyncCache


@pytest.mark.redis
class TestRedis(AsyncCacheContract):
    """``AsyncCache(url)``: Redis only."""

    @pytest.fixture
    def prefix(self, key_prefix: str) -> str:
        return key_prefix  # the one redis_cleanup deletes

    @pytest.fixture
    def make_cache(
        self, redis_url: str, redis_cleanup: None
    ) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, redis_url, timeout=1.0)


@pytest.mark.redis
class TestL1OverRedis(AsyncCacheContract):
    """``AsyncCache(url, l1=L1())``: an in-process tier in front of Redis."""

    @pytest.fixture
    def prefix(self, key_prefix: str) -> str:
        return key_prefix

    @pytest.fixture
    def make_cache(
        self, redis_url: str, redis_cleanup: None
    ) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, redis_url, l1=L1(), timeout=1.0)


@pytest.mark.redis
class TestCopyingL1OverRedis(AsyncCacheContract):
    """``AsyncCache(url, l1=L1(copy=True))``: the L1 keeps envelopes and
    decodes a copy on every hit (revived to the caller's type like Redis)."""

    @pytest.fixture
    def prefix(self, key_prefix: str) -> str:
        return key_prefix

    @pytest.fixture
    def make_cache(
        self, redis_url: str, redis_cleanup: None
    ) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, redis_url, l1=L1(copy=True), timeout=1.0)


class TestCopyingEmbedded(AsyncCacheContract):
    """``AsyncCache(l1=L1(copy=True))``: the embedded tier in copy mode."""

    @pytest.fixture
    def make_cache(self) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, l1=L1(copy=True))


class Opaque:
    pass


async def test_memory_url_is_the_embedded_default(key_prefix: str) -> None:
    async with (
        AsyncCache("memory://", prefix=key_prefix) as by_url,
        AsyncCache(prefix=key_prefix) as default,
    ):
        assert repr(by_url) == repr(default)
        assert "redis" not in repr(by_url)


async def test_strict_mode_raises_on_unserializable(key_prefix: str) -> None:
    async with AsyncCache(prefix=key_prefix, strict=True) as strict:
        with pytest.raises(SerializationError):
            await strict.set("k", Opaque())


async def test_decorator_refuses_the_other_color(key_prefix: str) -> None:
    def plain(x: int) -> int:
        return x

    async def coroutine(x: int) -> int:  # unasync: keep
        return x

    async with AsyncCache(prefix=key_prefix) as cache:
        wrong: Any = plain if inspect.iscoroutinefunction(cache.get) else coroutine
        with pytest.raises(TypeError):
            cache.cached("p:{x}")(wrong)
