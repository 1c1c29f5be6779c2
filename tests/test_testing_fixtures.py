"""``freshcache.testing.fixtures`` as a user sees it: a user's test files,
run by pytest in a subprocess (``pytester``) with the plugin enabled by
``pytest_plugins`` in their ``conftest.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import servers

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["freshcache.testing.fixtures"]\n'

USER_TESTS = '''
from freshcache import MISS, AsyncCache, Cache
from freshcache.testing import FakeClock

import pytest


def test_fresh_cache_is_embedded_and_on_the_fake_clock(fresh_cache, fake_clock):
    assert isinstance(fresh_cache, Cache)
    assert isinstance(fake_clock, FakeClock)
    fresh_cache.set("user:1", {"name": "ada"}, ttl=60)
    assert fresh_cache.get("user:1") == {"name": "ada"}
    fake_clock.advance(61)  # no sleeping: the cache reads the fake clock
    assert fresh_cache.get("user:1") is MISS


def test_loads_are_counted_the_same_every_run(fresh_cache, fake_clock):
    calls = []

    @fresh_cache.cached("user:{user_id}", ttl=60)
    def user(user_id):
        calls.append(user_id)
        fake_clock.advance(5)  # a slow load, which early refresh would weigh
        return {"id": user_id}

    user(1)
    for _ in range(58):  # early refresh is off: no load before expiry
        fake_clock.advance(1)
        user(1)
    assert fresh_cache.stats().counts.get("early_refresh", 0) == 0
    assert calls == [1]


def test_profile_is_cached_for_a_minute(fresh_cache, fake_clock):
    """The example of docs/testing.md and the README."""
    calls = []

    @fresh_cache.cached("profile:{user_id}", ttl=60)
    def profile(user_id):
        calls.append(user_id)
        return {"id": user_id}

    profile(1)
    profile(1)
    fake_clock.advance(61)
    profile(1)
    assert calls == [1, 1]


def test_each_test_gets_a_new_cache_first(fresh_cache):
    fresh_cache.set("shared", 1)


def test_each_test_gets_a_new_cache_second(fresh_cache):
    assert fresh_cache.get("shared") is MISS


async def test_async_fresh_cache(async_fresh_cache, fake_clock):
    assert isinstance(async_fresh_cache, AsyncCache)
    await async_fresh_cache.set("k", 1, ttl=10)
    assert await async_fresh_cache.get("k") == 1
    fake_clock.advance(11)
    assert await async_fresh_cache.get("k") is MISS
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error",
        "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
        *args,
    )  # fmt: skip


def test_the_embedded_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=6)


def test_the_fixtures_close_the_cache(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        CONFTEST
        + """
import pytest
from freshcache import CacheClosedError

KEPT = {}


@pytest.fixture
def keep(fresh_cache):
    KEPT["cache"] = fresh_cache
"""
    )
    pytester.makepyfile(
        test_close="""
import pytest
from freshcache import CacheClosedError
from conftest import KEPT


def test_uses_it(keep):
    KEPT["cache"].set("k", 1)


def test_it_was_closed():
    with pytest.raises(CacheClosedError):
        KEPT["cache"].get("k")
"""
    )
    _run(pytester).assert_outcomes(passed=2)


def test_options_are_overridable(pytester: pytest.Pytester) -> None:
    """``freshcache_options`` configures every cache the fixtures build."""
    pytester.makeconftest(
        CONFTEST
        + """
import pytest
from freshcache import L1


@pytest.fixture
def freshcache_options():
    return {"serializer": "msgpack", "l1": L1(max_entries=2)}
"""
    )
    pytester.makepyfile(
        test_options="""
def test_it(fresh_cache, fake_clock):
    assert "L1" in repr(fresh_cache)
    fresh_cache.set("k", b"\\x00bytes")  # msgpack keeps bytes; JSON cannot
    assert fresh_cache.get("k") == b"\\x00bytes"
"""
    )
    _run(pytester).assert_outcomes(passed=1)


REDIS_TESTS = """
from freshcache import MISS


def test_redis_cache(redis_cache, freshcache_prefix):
    assert freshcache_prefix.startswith("fctest")
    assert repr(redis_cache) == f"<Cache redis '{freshcache_prefix}:v1:'>"
    redis_cache.set("user:1", {"name": "ada"}, tags=["team:7"])
    assert redis_cache.get("user:1") == {"name": "ada"}
    redis_cache.invalidate_tags("team:7")
    assert redis_cache.get("user:1") is MISS
    redis_cache.set("user:2", 2)
    with open("prefixes.txt", "a") as out:
        out.write(freshcache_prefix + "\\n")


async def test_async_redis_cache(async_redis_cache, freshcache_prefix):
    await async_redis_cache.set("user:2", 2)
    assert await async_redis_cache.get("user:2") == 2
    with open("prefixes.txt", "a") as out:
        out.write(freshcache_prefix + "\\n")
"""


def _values_under(url: str, prefix: str) -> list[bytes]:
    import redis

    with redis.Redis.from_url(url) as client:
        return sorted(client.scan_iter(match=f"{prefix}*", count=1000))


@pytest.mark.parametrize("given_by", ["option", "environment"])
def test_the_redis_fixtures(
    pytester: pytest.Pytester,
    redis_url: str,
    given_by: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_redis=REDIS_TESTS)
    if given_by == "option":
        monkeypatch.delenv("FRESHCACHE_TEST_REDIS_URL", raising=False)
        result = _run(pytester, f"--freshcache-redis={redis_url}")
    else:
        monkeypatch.setenv("FRESHCACHE_TEST_REDIS_URL", redis_url)
        result = _run(pytester)
    result.assert_outcomes(passed=2)
    prefixes = (pytester.path / "prefixes.txt").read_text().split()
    assert len(set(prefixes)) == 2  # a prefix per test
    for prefix in prefixes:
        try:
            # Every value is gone; what may stay is the bookkeeping clear()
            # keeps (the tag epoch and namespace versions).
            left = _values_under(redis_url, prefix)
            assert not [k for k in left if b":user:" in k], left
        finally:
            servers.delete_prefix(redis_url, prefix)


def test_the_redis_fixtures_skip_without_a_redis(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRESHCACHE_TEST_REDIS_URL", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_redis=REDIS_TESTS)
    result = _run(pytester, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*pass --freshcache-redis=URL*"])


def test_the_plugin_is_not_loaded_unless_asked(pytester: pytest.Pytester) -> None:
    """No entry point: without ``pytest_plugins`` the fixtures do not exist."""
    pytester.makepyfile(
        test_plain="""
def test_it(fresh_cache):
    pass
"""
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fresh_cache' not found*"])


def test_importing_freshcache_testing_still_imports_no_pytest() -> None:
    code = (
        "import sys, freshcache.testing\n"
        "assert 'pytest' not in sys.modules\n"
        "assert 'freshcache.testing.fixtures' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
