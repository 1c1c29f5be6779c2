"""Shared fixtures: real servers (skip locally, fail in CI), key prefixes, clocks.

``FRESHCACHE_REQUIRE_SERVERS=1`` (set in CI) turns a missing Redis or
PostgreSQL into a test failure instead of a skip.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

try:
    from tests import hygiene, servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import hygiene  # type: ignore[no-redef]
    import servers  # type: ignore[no-redef]

if TYPE_CHECKING:
    from freshcache.testing import FakeClock
    from tests.cluster import ClusterInfo

REQUIRE_SERVERS = os.environ.get("FRESHCACHE_REQUIRE_SERVERS") == "1"
# The suite tests the cache enabled unless a test says otherwise: a shell's
# FRESHCACHE_ENABLED=0 must not disable every cache it builds.
os.environ.pop("FRESHCACHE_ENABLED", None)


# Every test's Redis URL carries a password (as user ``default``: while that
# user has no password Redis takes any, given with a user name; the bare
# one-argument AUTH is refused), and every record freshcache logs in
# the whole run, at every level, is searched for it, for any URL with a
# password in it, and for the canary that tests put in the values and the
# private keys they plant (``tests/hygiene.py``): its message, arguments,
# formatted traceback (every chained exception) and structured fields.
# Tests that plant values of their own (test_log_hygiene, test_logging)
# search for those too.
SUITE_PASSWORD = "pw-suite-9d4c"


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is not None or parts.scheme not in ("redis", "rediss"):
        return url
    return urlunsplit(parts._replace(netloc=f"default:{SUITE_PASSWORD}@{parts.netloc}"))


def _secrets() -> set[str]:
    found = {SUITE_PASSWORD}
    password = urlsplit(servers.redis_url()).password
    if password:
        found.add(password)
    return found


class _LogWatch(logging.Handler):
    """Keeps every freshcache log record that holds a secret, a canary or a
    URL with a password."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = _secrets()
        self.leaks: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        text = hygiene.record_text(record)
        if found := hygiene.leaks(text, self.secrets):
            self.leaks.append(f"{record.name} {record.levelname} {found}: {text[:300]}")


_WATCH = _LogWatch()


def pytest_configure(config: pytest.Config) -> None:
    logger = logging.getLogger("freshcache")
    logger.addHandler(_WATCH)
    logger.setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _WATCH.leaks:
        print(
            "\nfreshcache logged a password, a canary or a URL with a password:\n"
            + "\n".join(_WATCH.leaks[:20])
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _missing(what: str, where: str, variable: str) -> None:
    message = f"{what} is not reachable at {where} (set {variable} to point elsewhere)"
    if REQUIRE_SERVERS:
        pytest.fail(f"{message}; FRESHCACHE_REQUIRE_SERVERS=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis; skips (or fails in CI) when it does not answer."""
    url = _with_password(servers.redis_url())
    if not servers.redis_available(url):
        _missing("Redis", url, "FRESHCACHE_TEST_REDIS_URL")
    return url


@pytest.fixture(scope="session")
def redis_cluster(redis_url: str) -> Iterator[ClusterInfo]:
    """A private Redis Cluster of three primaries with a replica each
    (``tests/cluster.py``), shared by the session; skips (or fails in CI)
    without ``redis-server``. Its ``cluster-node-timeout`` is the default
    15 s, not the failover tests' 1 s: a node stalled by a loaded machine
    must not be failed over in the middle of a test."""
    import shutil

    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            _missing("Redis Cluster", f"{binary} on PATH", "PATH")
    try:
        from tests.cluster import own_redis_cluster
    except ImportError:  # tests/ is not a package
        from cluster import own_redis_cluster  # type: ignore[no-redef]
    with own_redis_cluster(
        nodes=3, replicas=1, args=["--cluster-node-timeout", "15000"]
    ) as info:
        yield info


@pytest.fixture(scope="session")
def cluster_url(redis_cluster: ClusterInfo) -> str:
    """``redis+cluster://`` with every node, and the suite's password (the
    nodes' default user takes any)."""
    nodes = ",".join(redis_cluster.addresses)
    return f"redis+cluster://:{SUITE_PASSWORD}@{nodes}/"


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
        if "redis_cluster" in fixtures:
            item.add_marker(pytest.mark.redis)
        if "postgres_dsn" in fixtures:
            item.add_marker(pytest.mark.postgres)
