"""Shared fixtures: real servers (skip locally, fail in CI), key prefixes, clocks.

``FRESHCACHE_REQUIRE_SERVERS=1`` (set in CI) turns a missing Redis or
PostgreSQL into a test failure instead of a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

try:
    from tests import servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]

if TYPE_CHECKING:
    from freshcache.testing import FakeClock

REQUIRE_SERVERS = os.environ.get("FRESHCACHE_REQUIRE_SERVERS") == "1"
# The suite tests the cache enabled unless a test says otherwise: a shell's
# FRESHCACHE_ENABLED=0 must not disable every cache it builds.
os.environ.pop("FRESHCACHE_ENABLED", None)


def _missing(what: str, where: str, variable: str) -> None:
    message = f"{what} is not reachable at {where} (set {variable} to point elsewhere)"
    if REQUIRE_SERVERS:
        pytest.fail(f"{message}; FRESHCACHE_REQUIRE_SERVERS=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis; skips (or fails in CI) when it does not answer."""
    url = servers.redis_url()
    if not servers.redis_available(url):
        _missing("Redis", url, "FRESHCACHE_TEST_REDIS_URL")
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The shared test PostgreSQL; skips (or fails in CI) when it does not answer."""
    dsn = servers.postgres_dsn()
    if not servers.postgres_available(dsn):
        _missing("PostgreSQL", dsn, "FRESHCACHE_TEST_POSTGRES_DSN")
    return dsn


@pytest.fixture
def key_prefix() -> str:
    """A prefix unique to this test, so tests sharing one server never collide."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_cleanup(redis_url: str, key_prefix: str) -> Iterator[None]:
    """Delete every key starting with ``key_prefix`` after the test."""
    yield
    servers.delete_prefix(redis_url, key_prefix)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only on ``advance()``."""
    from freshcache.testing import FakeClock  # here, so a broken package fails late

    return FakeClock()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so ``-m "not redis"`` stays fast."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "redis_url" in fixtures:
            item.add_marker(pytest.mark.redis)
        if "postgres_dsn" in fixtures:
            item.add_marker(pytest.mark.postgres)
