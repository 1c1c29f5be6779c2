"""A disabled cache (``enabled=False``): the same API, every read a load,
every write a no-op, and never a connection to Redis.

The Redis URL of most tests points at a socket that listens but never
answers: after each test, nothing has knocked on it.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from freshcache import L1, MISS, AsyncCache, CacheClosedError
from freshcache._concurrency import AsyncFlag
from tests._async.waiting import WAIT, run_in_background

BYPASS = "disabled"


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    name: str


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A redis:// URL whose port listens and never answers; the test fails
    if anything connected to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # no connection waiting
            server.accept()[0].close()


@pytest.fixture(params=["redis", "l1+redis", "embedded"])
async def cache(
    request: pytest.FixtureRequest, silent_url: str
) -> AsyncIterator[AsyncCache]:
    url = None if request.param == "embedded" else silent_url
    l1 = L1() if request.param == "l1+redis" else None
    async with AsyncCache(url, l1=l1, enabled=False) as made:
        yield made


def bypasses(cache: AsyncCache) -> int:
    return cache.stats().lookups.bypasses.get(BYPASS, 0)


async def test_nothing_is_built_that_could_connect(cache: AsyncCache) -> None:
    assert cache.enabled is False
    assert cache.engine.l1 is None
    assert cache.engine.l2 is None
    assert cache.engine.leases is None
    assert "disabled" in repr(cache)


async def test_reads_miss_and_count_bypasses(cache: AsyncCache) -> None:
    assert await cache.set("user:1", {"id": 1}) is False
    assert await cache.get("user:1") is MISS
    assert await cache.get("user:1", None) is None
    assert await cache.get("user:1", returns=User) is MISS
    assert await cache.get_many(["user:1", "user:2", "user:1"]) == {}
    stats = cache.stats()
    assert stats.lookups.bypasses == {BYPASS: 5}  # each distinct key looked up
    assert stats.lookups.total == 5  # counted: a bypass, not traffic gone
    assert stats.hit_rate == 0.0
    assert (stats.lookups.hits, stats.lookups.misses) == (0, 0)
    assert stats.l1.total == stats.redis.total == 0  # no tier was asked


async def test_get_or_load_loads_on_every_call(cache: AsyncCache) -> None:
    calls: list[int] = []

    def load() -> dict[str, int]:
        calls.append(1)
        return {"id": 7}

    async def aload() -> str:
        calls.append(1)
        return "async"

    for _ in range(3):
        assert await cache.get_or_load("team:7", load, ttl=60) == {"id": 7}
    assert await cache.get_or_load("team:8", aload) == "async"
    assert len(calls) == 4
    stats = cache.stats()
    assert stats.loads == 4
    assert stats.load_errors == 0
    assert bypasses(cache) == 4


async def test_no_negative_caching(cache: AsyncCache) -> None:
    calls: list[int] = []

    def missing_row() -> None:
        calls.append(1)

    for _ in range(2):
        assert await cache.get_or_load("user:99", missing_row, negative_ttl=5) is None
    assert len(calls) == 2


async def test_loader_value_comes_back_as_on_an_enabled_miss(
    cache: AsyncCache,
) -> None:
    """On a miss the loader's own value is returned (``returns`` revives only
    cached data): the same object here."""
    ada = User(1, "Ada")
    assert await cache.get_or_load("user:1", lambda: ada, returns=User) is ada


async def test_loader_errors_propagate_every_time(cache: AsyncCache) -> None:
    def broken() -> int:
        raise LookupError("database down")

    for _ in range(2):
        with pytest.raises(LookupError, match="database down"):
            await cache.get_or_load("user:1", broken)
    stats = cache.stats()
    assert stats.loads == 2
    assert stats.load_errors == 2
    assert bypasses(cache) == 2


async def test_no_single_flight(cache: AsyncCache) -> None:
    """A second caller of one key does not wait for the first one's load."""
    entered, release = AsyncFlag(), AsyncFlag()

    async def slow() -> str:
        entered.set()
        await release.wait(WAIT)
        return "slow"

    worker = await run_in_background(lambda: cache.get_or_load("k", slow))
    try:
        assert await entered.wait(WAIT)
        assert await cache.get_or_load("k", lambda: "fast") == "fast"
    finally:
        release.set()
        await worker.join(WAIT)
    assert cache.stats().loads == 2


async def test_writes_store_nothing_but_check_their_arguments(
    cache: AsyncCache,
) -> None:
    assert await cache.set("a", 1, ttl=None, tags=["t"]) is False
    assert await cache.set_many({"a": 1, "b": 2}, ttl=60) is False
    assert await cache.get_many(["a", "b"]) == {}
    with pytest.raises(ValueError):
        await cache.set("a", 1, ttl=-1)
    with pytest.raises(ValueError):
        await cache.get("bad{key}")


async def test_invalidations_do_nothing_and_report_success(
    cache: AsyncCache,
) -> None:
    assert await cache.invalidate("user:1", "user:2") is True
    assert await cache.invalidate_tags("team:7") is True
    assert await cache.delete("user:1") is False  # nothing held it
    assert await cache.bump("search") == 1
    assert await cache.bump("search") == 2
    assert await cache.clear() is None
    stats = cache.stats()
    assert stats.pending_invalidations == 0
    assert stats.errors == {}


async def test_cached_function_runs_on_every_call(cache: AsyncCache) -> None:
    calls: list[int] = []

    @cache.cached("user:{user_id}", tags=["team:{team}"], negative_ttl=5)
    async def get_user(user_id: int, team: int = 0) -> User:
        calls.append(user_id)
        return User(user_id, "Ada")

    for _ in range(3):
        assert await get_user(1) == User(1, "Ada")
    assert calls == [1, 1, 1]
    assert get_user.key(1) == "user:1"
    assert await get_user.invalidate(1) is True
    assert get_user.__wrapped__.__name__ == "get_user"
    stats = cache.stats()
    assert stats.loads == 3
    assert bypasses(cache) == 3


async def test_cached_function_errors_propagate(cache: AsyncCache) -> None:
    @cache.cached("user:{user_id}")
    async def get_user(user_id: int) -> int:
        raise LookupError(user_id)

    with pytest.raises(LookupError):
        await get_user(1)
    assert cache.stats().load_errors == 1


async def test_write_through_runs_the_block_and_the_reload(
    cache: AsyncCache,
) -> None:
    reloads: list[int] = []

    def reload() -> dict[str, int]:
        reloads.append(1)
        return {"id": 1}

    ran = False
    async with cache.write_through("user:1", tags=["team:7"], reload=reload) as wt:
        ran = True
    assert ran
    assert reloads == [1]
    assert wt.value == {"id": 1}
    assert wt.landed is True
    assert await cache.get("user:1") is MISS


async def test_writes_decorator_calls_the_reader(cache: AsyncCache) -> None:
    reads: list[int] = []

    @cache.cached("user:{user_id}")
    async def get_user(user_id: int) -> int:
        reads.append(user_id)
        return user_id

    @cache.writes(get_user, tags=["user:{user_id}"])
    async def rename(user_id: int, name: str) -> str:
        return name

    assert await rename(3, "Ada") == "Ada"
    assert reads == [3]  # the refresh after the write still calls the reader


async def test_write_behind_refuses(cache: AsyncCache) -> None:
    with pytest.raises(ValueError, match="disabled"):
        cache.write_behind(name="profiles")


async def test_events_run_this_process_handlers(cache: AsyncCache) -> None:
    seen: list[Any] = []

    @cache.events.on("user_updated")
    async def handler(event: Any) -> None:
        seen.append(event)

    await cache.events.publish("user_updated", {"user_id": 1})
    assert seen == [{"user_id": 1}]


async def test_closing_is_final(silent_url: str) -> None:
    cache = AsyncCache(silent_url, enabled=False)

    @cache.cached("user:{user_id}")
    async def get_user(user_id: int) -> int:
        return user_id

    assert await get_user(1) == 1
    await cache.aclose()
    await cache.aclose()  # twice is fine
    with pytest.raises(CacheClosedError):
        await cache.get("k")
    with pytest.raises(CacheClosedError):
        await cache.get_or_load("k", lambda: 1)
    with pytest.raises(CacheClosedError):
        await cache.set("k", 1)
    with pytest.raises(CacheClosedError):
        await get_user(1)


async def test_a_disabled_process_leaves_the_shared_cache_alone(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """Why a disabled process must not run beside enabled ones sharing its
    keys: its writes and invalidations never reach them."""
    async with (
        AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as enabled,
        AsyncCache(redis_url, prefix=key_prefix, enabled=False) as disabled,
    ):
        assert await enabled.set("user:1", "old") is True
        assert await disabled.get("user:1") is MISS
        assert await disabled.set("user:1", "new") is False
        assert await disabled.invalidate("user:1") is True
        assert await disabled.clear() is None
        assert await enabled.get("user:1") == "old"  # still served
