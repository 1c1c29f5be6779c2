"""The cache contract for AsyncCache, as a test class to subclass.

Hand-written for the async API; scripts/unasync.py generates the sync twin.
Import both from ``freshcache.testing.contract``. Public names only: a
configuration is tested exactly as its users use it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio  # unasync: skip

from freshcache import MISS, AsyncCache, UnstableKeyError
from freshcache.testing import FakeClock

__all__ = ["AsyncCacheContract"]


@dataclasses.dataclass
class Team:
    id: int
    name: str


@dataclasses.dataclass
class User:
    id: int
    name: str
    team: Team
    joined: dt.date


class Opaque:
    """A value no serializer encodes: not JSON, not msgpack, and pickle is refused."""

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("an Opaque value cannot be serialized")


async def _area(width: int, height: int = 1) -> int:
    return width * height


class AsyncCacheContract:
    """What every AsyncCache configuration promises, as pytest tests.

    Subclass it as ``class TestMyCache(AsyncCacheContract)`` and override the
    ``make_cache`` fixture: it returns a callable that builds a new, unopened
    cache from your configuration plus the keyword options the contract
    passes, ``prefix=`` and ``clock=`` (and ``version=`` in one test)::

        @pytest.fixture
        def make_cache(self) -> Callable[..., AsyncCache]:
            return functools.partial(AsyncCache, "redis://localhost", l1=L1())

    Requirements, or the contract does not hold:

    * the cache reads time from the ``clock`` it is given (a ``FakeClock``
      the TTL tests advance) and keeps ``ttl_jitter=0`` (the default), so
      that a value is gone exactly when its TTL is over;
    * ``strict=False`` (the default): an unserializable value is returned
      and not cached;
    * an ``L1`` with room for a few entries (a test holds at most four);
    * the tests read back within a second of real time: Redis also expires
      entries on its own clock (hard TTL = ttl + stale_ttl), which the fake
      clock does not move.

    Each test gets a key prefix of its own from the ``prefix`` fixture. The
    ``cache`` fixture opens the cache and, after the test, clears it
    (``clear()``) and closes it; ``clear`` keeps namespace versions and the
    tag epoch, which the contract does not write. To delete the prefix
    yourself as well, override ``prefix`` and request your clean-up fixture
    from ``make_cache``.

    The async tests carry ``pytest.mark.asyncio`` and the ``cache`` fixture is
    a ``pytest_asyncio`` fixture, so the class runs in pytest-asyncio's strict
    and auto modes alike.
    """

    pytestmark = pytest.mark.asyncio  # unasync: skip

    # -- the hooks: override make_cache; prefix and clock if you must -------

    @pytest.fixture
    def make_cache(self) -> Callable[..., AsyncCache]:
        """A callable building a new AsyncCache from the given options."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the make_cache fixture: "
            "return a callable that builds the cache from your configuration and "
            "the keyword options it is given (prefix=, clock=, version=)"
        )

    @pytest.fixture
    def prefix(self) -> str:
        """A key prefix unique to this test."""
        return f"fctest{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The clock the cache must read; the TTL tests advance it."""
        return FakeClock()

    @pytest_asyncio.fixture
    async def cache(
        self, make_cache: Callable[..., AsyncCache], prefix: str, clock: FakeClock
    ) -> AsyncIterator[AsyncCache]:
        made = make_cache(prefix=prefix, clock=clock)
        if not isinstance(made, AsyncCache):
            raise TypeError(
                f"make_cache returned {type(made).__name__}, not AsyncCache"
            )
        async with made:
            try:
                yield made
            finally:
                await made.clear()

    # -- reads and values ------------------------------------------------

    async def test_get_missing_returns_miss(self, cache: AsyncCache) -> None:
        assert await cache.get("user:1") is MISS
        assert await cache.get("user:1", "fallback") == "fallback"

    @pytest.mark.parametrize("value", [None, False, 0, "", [], {}, 0.0])
    async def test_falsy_values_are_hits(self, cache: AsyncCache, value: Any) -> None:
        assert await cache.set("k", value) is True
        got = await cache.get("k")
        assert got is not MISS
        assert got == value
        assert type(got) is type(value)

    async def test_rich_values_round_trip_exactly(self, cache: AsyncCache) -> None:
        value = {
            "tuple": (1, "a", (2,)),
            "set": {1, 2},
            "bytes": b"\x00\xff",
            "naive": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
            "aware": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "date": dt.date(2024, 1, 2),
            "decimal": Decimal("1.10"),
            "uuid": uuid.UUID(int=7),
            "big": 2**64 + 1,
            "negzero": -0.0,
            "inf": math.inf,
        }
        await cache.set("rich", value)
        got = await cache.get("rich")
        assert got == value
        assert {k: type(v) for k, v in got.items()} == {
            k: type(v) for k, v in value.items()
        }
        assert math.copysign(1.0, got["negzero"]) == -1.0
        nan = await cache.set("nan", math.nan)
        assert nan is True
        assert math.isnan(await cache.get("nan"))

    async def test_get_many_returns_hits_only(self, cache: AsyncCache) -> None:
        assert await cache.set_many({"x:1": 1, "x:2": None}) is True
        assert await cache.get_many(["x:1", "x:2", "x:3"]) == {"x:1": 1, "x:2": None}

    # -- read-modify-writes: add, incr, touch ----------------------------

    async def test_add_stores_only_where_nothing_is(
        self, cache: AsyncCache, clock: FakeClock
    ) -> None:
        assert await cache.add("k", "first", ttl=10) is True
        assert await cache.add("k", "second") is False
        assert await cache.get("k") == "first"
        assert await cache.add("none", None) is True
        assert await cache.add("none", 1) is False  # a cached None is there
        clock.advance(10.1)  # an expired value is nothing
        assert await cache.add("k", "third") is True
        assert await cache.get("k") == "third"

    async def test_add_of_an_unserializable_value_stores_nothing(
        self, cache: AsyncCache
    ) -> None:
        assert await cache.add("k", Opaque()) is False
        assert await cache.get("k") is MISS
        assert await cache.add("k", 1) is True

    async def test_incr_adds_and_keeps_the_expiry(
        self, cache: AsyncCache, clock: FakeClock
    ) -> None:
        await cache.set("n", 41, ttl=10)
        assert await cache.incr("n") == 42
        assert await cache.incr("n", -50) == -8
        assert await cache.get("n") == -8
        clock.advance(10.1)
        assert await cache.get("n") is MISS

    async def test_incr_refuses_what_is_not_a_cached_int(
        self, cache: AsyncCache
    ) -> None:
        with pytest.raises(KeyError):
            await cache.incr("absent")
        for value in (None, "1", 1.0, True):
            await cache.set("v", value)
            with pytest.raises(TypeError):
                await cache.incr("v")
            assert await cache.get("v") == value

    async def test_touch_gives_a_new_lifetime(
        self, cache: AsyncCache, clock: FakeClock
    ) -> None:
        await cache.set("k", ["v"], ttl=10)
        assert await cache.touch("k", ttl=30) is True
        clock.advance(20)
        assert await cache.get("k") == ["v"]
        assert await cache.touch("k", ttl=None) is True
        clock.advance(3600)
        assert await cache.get("k") == ["v"]
        assert await cache.touch("absent", ttl=5) is False

    # -- time ------------------------------------------------------------

    async def test_soft_ttl_expires_on_the_clock(
        self, cache: AsyncCache, clock: FakeClock
    ) -> None:
        await cache.set("k", "v", ttl=10)
        clock.advance(9.9)
        assert await cache.get("k") == "v"
        clock.advance(0.2)
        assert await cache.get("k") is MISS

    async def test_ttl_forms(self, cache: AsyncCache, clock: FakeClock) -> None:
        await cache.set("forever", 1, ttl=None)
        await cache.set("td", 2, ttl=dt.timedelta(seconds=5))
        await cache.set("float", 3, ttl=0.5)
        clock.advance(1)
        assert await cache.get("forever") == 1
        assert await cache.get("td") == 2
        assert await cache.get("float") is MISS
        clock.advance(10 * 365 * 24 * 3600)
        assert await cache.get("forever") == 1

    @pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, True, "10"])
    async def test_bad_ttl_is_rejected(self, cache: AsyncCache, ttl: Any) -> None:
        with pytest.raises((ValueError, TypeError)):
            await cache.set("k", 1, ttl=ttl)
        with pytest.raises((ValueError, TypeError)):
            cache.cached("k", ttl=ttl)

    # -- loading ---------------------------------------------------------

    async def test_get_or_load_loads_once_then_hits(self, cache: AsyncCache) -> None:
        calls: list[int] = []

        def loader() -> dict[str, int]:
            calls.append(1)
            return {"id": 1}

        assert await cache.get_or_load("user:1", loader) == {"id": 1}
        assert await cache.get_or_load("user:1", loader) == {"id": 1}
        assert len(calls) == 1
        stats = cache.stats()
        assert stats.loads == 1
        assert stats.hit_rate == 0.5

    async def test_get_or_load_accepts_async_loaders(self, cache: AsyncCache) -> None:
        async def loader() -> str:
            return "loaded"

        assert await cache.get_or_load("k", loader) == "loaded"
        assert await cache.get("k") == "loaded"

    async def test_loader_error_propagates_and_caches_nothing(
        self, cache: AsyncCache
    ) -> None:
        def loader() -> int:
            raise LookupError("row not found")

        with pytest.raises(LookupError):
            await cache.get_or_load("k", loader)
        assert await cache.get("k") is MISS
        assert cache.stats().load_errors == 1

    async def test_cached_none_is_not_reloaded(self, cache: AsyncCache) -> None:
        calls: list[int] = []

        def loader() -> dict[str, int] | None:  # a row that is not there
            calls.append(1)
            return None

        assert await cache.get_or_load("k", loader) is None
        assert await cache.get_or_load("k", loader) is None
        assert calls == [1]

    async def test_unserializable_value_is_returned_not_cached(
        self, cache: AsyncCache
    ) -> None:
        value = Opaque()
        assert await cache.get_or_load("k", lambda: value) is value
        assert await cache.get("k") is MISS
        assert await cache.set("k", value) is False
        assert cache.stats().errors["serialize"] == 2

    # -- invalidation and keys -------------------------------------------

    async def test_invalidate_and_delete(self, cache: AsyncCache) -> None:
        await cache.set_many({"a": 1, "b": 2, "c": 3})
        await cache.invalidate("a", "b")
        assert await cache.get_many(["a", "b", "c"]) == {"c": 3}
        assert await cache.delete("c") is True
        assert await cache.delete("c") is False

    async def test_version_prefix_separates_deploys(
        self,
        cache: AsyncCache,
        make_cache: Callable[..., AsyncCache],
        prefix: str,
        clock: FakeClock,
    ) -> None:
        await cache.set("k", "old")
        async with make_cache(prefix=prefix, clock=clock, version="v2") as next_deploy:
            assert await next_deploy.get("k") is MISS

    async def test_keys_are_injective(self, cache: AsyncCache) -> None:
        await cache.set(cache.key("pair", "a:b", "c"), 1)
        await cache.set(cache.key("pair", "a", "b:c"), 2)
        await cache.set(cache.key("n", 1), "int")
        await cache.set(cache.key("n", "1"), "str")
        assert await cache.get(cache.key("pair", "a:b", "c")) == 1
        assert await cache.get(cache.key("pair", "a", "b:c")) == 2
        assert await cache.get(cache.key("n", 1)) == "int"
        assert await cache.get(cache.key("n", "1")) == "str"
        with pytest.raises(UnstableKeyError):
            cache.key("n", Opaque())

    @pytest.mark.parametrize("bad", ["", "a{b}", 1, None])
    async def test_bad_raw_keys_are_rejected(self, cache: AsyncCache, bad: Any) -> None:
        with pytest.raises((TypeError, ValueError)):
            await cache.get(bad)

    # -- the decorator ---------------------------------------------------

    async def test_decorator_hits_and_invalidates(self, cache: AsyncCache) -> None:
        calls: list[int] = []

        @cache.cached("user:{user_id}", ttl=60)
        async def get_user(user_id: int, verbose: bool = False) -> dict[str, int]:
            calls.append(user_id)
            return {"id": user_id}

        assert get_user.key(7) == "user:7"
        assert await get_user(7) == {"id": 7}
        assert await get_user(user_id=7, verbose=True) == {"id": 7}
        assert calls == [7]
        await get_user.invalidate(7)
        assert await get_user(7) == {"id": 7}
        assert calls == [7, 7]
        assert await cache.get("user:7") == {"id": 7}

    async def test_decorator_revives_annotated_dataclasses(
        self, cache: AsyncCache
    ) -> None:
        @cache.cached("user:{user_id}")
        async def get_user(user_id: int) -> User:
            return User(user_id, "Ada", Team(3, "core"), dt.date(2020, 1, 1))

        first = await get_user(1)
        second = await get_user(1)
        assert second == first
        assert type(second) is User
        assert type(second.team) is Team

    async def test_default_template_uses_qualified_name_and_arguments(
        self, cache: AsyncCache
    ) -> None:
        area = cache.cached()(_area)
        assert await area(2, 3) == 6
        assert await area(2) == 2
        assert area.key(2, 3) != area.key(3, 2)
        assert area.key(2, 3) == f"{__name__}._area:width=2:height=3"

    async def test_default_template_refuses_functions_without_a_unique_name(
        self, cache: AsyncCache
    ) -> None:
        async def local(x: int) -> int:  # each call of this test makes another
            return x

        with pytest.raises(UnstableKeyError, match="namespace="):
            cache.cached()(local)
        named = cache.cached(namespace="local")(local)
        assert await named(1) == 1
        assert named.key(1) == "local:x=1"

    # -- stats -----------------------------------------------------------

    async def test_stats_on_a_fresh_cache(self, cache: AsyncCache) -> None:
        stats = cache.stats()
        assert stats.hit_rate == 0.0
        assert stats.lookups.total == 0

    async def test_stats_count_hits_and_misses_by_namespace(
        self, cache: AsyncCache
    ) -> None:
        await cache.set("user:1", 1)
        await cache.get("user:1")
        await cache.get("user:2")
        await cache.get("team:1")
        stats = cache.stats()
        assert (stats.lookups.hits, stats.lookups.misses) == (1, 2)
        assert stats.lookups.bypassed == 0
        by_namespace = {
            ns: (s.lookups.hits, s.lookups.misses) for ns, s in stats.namespaces.items()
        }
        assert by_namespace == {"user": (1, 1), "team": (0, 1)}
        # each tier reached: the hit in one, every lookup once in the first
        first = stats.l1 if stats.l1.total else stats.redis
        assert first.total == 3
