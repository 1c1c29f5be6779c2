"""freshcache as a least-privilege Redis user: exactly the ACL rules
docs/security.md documents (read from the page itself), on a Redis of the
module's own whose ``default`` user can only manage users.

Each test makes a user of its prefix and checks, after it ran, that Redis
refused that user nothing (its ACL LOG entries), so a rule missing from the
page fails here even where freshcache fails open. Then: a refused
``CONFIG GET`` is a warning, and a missing permission a loud, counted error.
Hand-written for the async API; scripts/unasync.py generates the sync twin.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import pytest

from freshcache import (
    L1,
    MISS,
    AsyncCache,
    CallableSink,
    ConfigStoreError,
    PermanentWriteError,
    Write,
)
from freshcache.testing.contract import AsyncCacheContract
from tests import acl
from tests._async.waiting import wait_for_count, wait_until
from tests.servers import RedisProcess

pytestmark = pytest.mark.redis  # its own redis-server, like the fault tests


expected_refusals: set[str] = set()  # users whose test checks its refusals itself


@pytest.fixture(scope="module")
def server() -> Iterator[RedisProcess]:
    with acl.acl_server() as server:
        yield server


@pytest.fixture
def user(server: RedisProcess) -> Iterator[Callable[..., str]]:
    """``user(prefix, features, without=...)``: a URL for a new user with the
    documented rules; after the test, none of them was refused anything."""
    made: list[str] = []

    def make(
        prefix: str, features: Sequence[str] = acl.FEATURES, **options: object
    ) -> str:
        url = acl.make_user(server, prefix, features, **options)  # type: ignore[arg-type]
        made.append(url)
        return url

    yield make
    for url in made:
        if acl.user_of(url) not in expected_refusals:
            assert acl.refusals(server, url) == [], "a documented rule is missing"


class TestRedisAsUser(AsyncCacheContract):
    """The shipped contract on Redis, as the documented user."""

    @pytest.fixture
    def make_cache(
        self, user: Callable[..., str], prefix: str
    ) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, user(prefix), timeout=1.0)


class TestL1OverRedisAsUser(AsyncCacheContract):
    """The shipped contract on an L1 over Redis (the bus too), as the user."""

    @pytest.fixture
    def make_cache(
        self, user: Callable[..., str], prefix: str
    ) -> Callable[..., AsyncCache]:
        return functools.partial(AsyncCache, user(prefix), l1=L1(), timeout=1.0)


@pytest.fixture
async def pair(
    user: Callable[..., str], key_prefix: str
) -> AsyncIterator[tuple[AsyncCache, AsyncCache]]:
    """Two caches (two processes), each with an L1, as one documented user."""
    url = user(key_prefix)
    async with (
        AsyncCache(url, prefix=key_prefix, l1=L1(), timeout=1.0) as a,
        AsyncCache(url, prefix=key_prefix, l1=L1(), timeout=1.0) as b,
    ):
        await a.get("warm:up")
        await b.get("warm:up")
        await wait_for_count(a, "bus_connect", 1)
        await wait_for_count(b, "bus_connect", 1)
        yield a, b


async def test_bus_tags_bump_events_and_clear(
    pair: tuple[AsyncCache, AsyncCache],
) -> None:
    a, b = pair
    await a.set("user:1", "old", tags=["team:7"])
    assert await b.get("user:1") == "old"  # now in b's L1
    assert await a.invalidate("user:1")

    async def b_sees_invalidation() -> bool:
        return await b.get("user:1") is MISS

    await wait_until(b_sees_invalidation)

    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        return "member"

    assert await b.get_or_load("user:2", load, tags=["team:7"]) == "member"
    assert await a.invalidate_tags("team:7")
    await wait_until(lambda: _missing(b, "user:2"))

    await a.set("search:q", "v0")
    assert await a.bump("search") == 1
    await wait_until(lambda: _missing(b, "search:q"))

    seen: list[object] = []

    @b.events.on("user_updated")
    def on_b(event: object) -> None:
        seen.append(event)

    await wait_for_count(b, "bus_connect", 1)
    await a.events.publish("user_updated", {"user_id": 1})

    async def b_saw_it() -> bool:
        return seen == [{"user_id": 1}]

    await wait_until(b_saw_it)

    await a.set("user:3", "x")
    await a.clear()
    assert await a.get("user:3") is MISS


async def _missing(cache: AsyncCache, key: str) -> bool:
    return await cache.get(key) is MISS


async def test_invalidations_reach_another_live_version(
    user: Callable[..., str], key_prefix: str
) -> None:
    url = user(key_prefix)
    async with (
        AsyncCache(url, prefix=key_prefix, version="v1", timeout=1.0) as v1,
        AsyncCache(url, prefix=key_prefix, version="v2", timeout=1.0) as v2,
    ):
        await v1.set("user:1", "one")
        await v2.set("user:1", "two")
        await v2.bump("team")  # the script reaches v1's counter too
        assert await v1.invalidate("user:1")
        assert await v2.get("user:1") is MISS


class Table:
    def __init__(self) -> None:
        self.rows: dict[str, object] = {}

    def apply(self, writes: Sequence[Write]) -> None:
        for w in writes:
            if w.key == "poison":
                raise PermanentWriteError("violates a constraint")
            self.rows[w.key] = w.value


async def test_write_behind_without_config_get_warns_once_and_works(
    user: Callable[..., str],
    server: RedisProcess,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The documented user has no CONFIG GET (nor INFO): write-behind starts,
    warns once per unreadable setting, and never claims durability."""
    url = user(key_prefix)
    expected_refusals.add(acl.user_of(url))
    table = Table()
    caplog.set_level(logging.WARNING, logger="freshcache")
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", recheck=0.001)
        first = await wb.put("user:1", {"name": "Ada"})
        second = await wb.put("user:1", {"name": "Ada L."})  # after a recheck
        await wb.put_many({"user:2": 2, "poison": 0})
        assert second > first
        assert wb.verdict is not None
        assert not wb.durable
        assert await cache.get("user:1") == {"name": "Ada L."}
        worker = wb.worker(CallableSink(table.apply), block=0)
        try:
            await worker.run(until_idle=True)
        finally:
            await worker.aclose()
        await wb.flush(timeout=5)
        assert table.rows == {"user:1": {"name": "Ada L."}, "user:2": 2}
        stats = await wb.stats()
        assert (stats.backlog, stats.pending, stats.dead_lettered) == (0, 0, 1)
        assert [f["k"] for _, f in await wb.dead_letters()] == ["poison"]
        await wb.remove()
        await wb.aclose(flush=False)
    unread = [
        r.getMessage() for r in caplog.records if "CONFIG GET refused" in r.message
    ]
    assert len(unread) == 2, unread  # maxmemory-policy, AOF: once each
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    refused = set(acl.refusals(server, url))
    assert refused == {"command:config|get", "command:info"}


async def test_write_behind_checks_settings_with_config_get(
    user: Callable[..., str], key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    check = next(k for k in acl.documented() if "settings check" in k)
    url = user(key_prefix, (*acl.FEATURES, check))
    caplog.set_level(logging.WARNING, logger="freshcache")
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        verdict = await wb.start()
        assert not any("refused" in w for w in verdict.warnings)
        assert any("appendonly is 'no'" in w for w in verdict.warnings)
        await wb.put("user:1", 1)
        await wb.remove(force=True)
        await wb.aclose(flush=False)


async def test_a_missing_permission_is_a_loud_counted_error_not_an_open_breaker(
    user: Callable[..., str], key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = user(key_prefix, without=["-evalsha"])
    expected_refusals.add(acl.user_of(url))
    caplog.set_level(logging.ERROR, logger="freshcache")
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        for i in range(12):  # past the breaker's 5 failures
            assert await cache.get_or_load(f"k:{i}", lambda: "loaded") == "loaded"
        errors = cache.stats().errors
        # Every call reached Redis and was refused: the breaker stayed closed.
        assert errors["acl"] >= 12
        assert "circuit_open" not in errors
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("ACL" in m and "'evalsha'" in m for m in logged), logged
    assert len(logged) == 1  # once a minute, not once a call


async def test_write_behind_put_refused_by_the_acl_raises_a_clear_error(
    user: Callable[..., str], server: RedisProcess, key_prefix: str
) -> None:
    url = user(key_prefix, without=["-xadd"])
    expected_refusals.add(acl.user_of(url))
    async with AsyncCache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        with pytest.raises(ConfigStoreError, match="ACL refused") as refused:
            await wb.put("user:1", 1)  # XADD, inside the enqueue script
        assert "can't run this command" in str(refused.value)
        assert "command:xadd" in acl.refusals(server, url)  # as the message says
        assert cache.stats().errors["writebehind:config"] == 1
        await wb.remove(force=True)
        await wb.aclose(flush=False)


async def test_a_refused_subscription_is_logged_and_counted(
    user: Callable[..., str], key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = user(key_prefix, without=["-subscribe"])
    expected_refusals.add(acl.user_of(url))
    caplog.set_level(logging.ERROR, logger="freshcache")
    async with AsyncCache(url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        assert await cache.get_or_load("k", lambda: 1) == 1  # starts the bus

        async def refused() -> bool:
            return cache.stats().errors.get("acl", 0) >= 2  # and retried

        await wait_until(refused)
        assert cache.stats().counts.get("bus_connect") is None
    logged = [r.getMessage() for r in caplog.records]
    assert any("cannot subscribe" in m and "'subscribe'" in m for m in logged)


async def test_the_live_view_as_documented_users(
    user: Callable[..., str], key_prefix: str
) -> None:
    """A process publishes its stats with the base rules only; a reader
    lists, reads and inspects them with the inspect row added."""
    row = next(k for k in acl.documented() if k.startswith("`freshcache inspect`"))
    async with (
        AsyncCache(
            user(key_prefix, (acl.BASE,)), prefix=key_prefix, l1=L1(),
            publish_stats=0.1, timeout=1.0,
        ) as a,
        AsyncCache(user(key_prefix, (acl.BASE, row)), prefix=key_prefix,
                   timeout=1.0) as reader,
    ):  # fmt: skip
        await a.set("user:1", "v")
        await a.get("user:1")

        async def published() -> bool:
            return len((await reader.live.processes())[0]) == 1

        await wait_until(published)
        live = await reader.live.stats()
        assert live.unreadable == []
        info = await reader.live.inspect("user:1", wait=30)
        assert info.in_redis
        assert info.processes[a.engine.process_name()].present
        assert await reader.live.keys() == ["user:1"]
        assert "live_publish" not in a.stats().errors
