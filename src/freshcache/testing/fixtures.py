"""pytest fixtures for code that uses freshcache (a pytest plugin).

Enable it where your tests start, in the root ``conftest.py``::

    pytest_plugins = ["freshcache.testing.fixtures"]

(or ``pytest -p freshcache.testing.fixtures``). freshcache registers no
``pytest11`` entry point: installing freshcache adds nothing to a test run
that does not ask for it (no fixture names, no command-line option).

Fixtures:

``fake_clock``
    A ``FakeClock``: advance it instead of sleeping.
``freshcache_options``
    The keyword options every cache below is built with, besides ``clock``
    and ``prefix``; ``{}`` here. Override it in your ``conftest.py`` to test
    your configuration (``{"serializer": "msgpack", "l1": L1()}``).
``fresh_cache`` / ``async_fresh_cache``
    An embedded ``Cache`` / ``AsyncCache`` (no server) reading
    ``fake_clock``, with early refresh off (``xfetch_beta=0``: a test that
    counts loads gets the same count every run), opened for the test and
    closed after it. ``async_fresh_cache`` needs pytest-asyncio.
``freshcache_redis_url``
    The Redis URL given by ``--freshcache-redis=URL`` or the
    ``FRESHCACHE_TEST_REDIS_URL`` environment variable (the option wins);
    neither: the test is skipped.
``freshcache_prefix``
    A key prefix unique to the test (``fctest<hex>``).
``redis_cache`` / ``async_redis_cache``
    As ``fresh_cache``, over that Redis, under ``freshcache_prefix``; after
    the test, ``clear()`` removes every value under the prefix, then the
    cache is closed.

A fixture's options win over ``freshcache_options`` only for ``clock`` and
``prefix``; ``freshcache_options`` may set ``xfetch_beta`` back on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from freshcache import AsyncCache, Cache
from freshcache.testing import FakeClock

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is not installed
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "async_fresh_cache",
    "async_redis_cache",
    "fake_clock",
    "fresh_cache",
    "freshcache_options",
    "freshcache_prefix",
    "freshcache_redis_url",
    "redis_cache",
]

REDIS_OPTION = "--freshcache-redis"
REDIS_VARIABLE = "FRESHCACHE_TEST_REDIS_URL"
_NO_REDIS = (
    f"no Redis for freshcache's redis fixtures: pass {REDIS_OPTION}=URL "
    f"or set {REDIS_VARIABLE}"
)
_NO_ASYNCIO = (
    "freshcache's async fixtures need pytest-asyncio: pip install pytest-asyncio"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("freshcache").addoption(
        REDIS_OPTION,
        metavar="URL",
        default=None,
        help=f"the Redis of the redis_cache fixtures (else ${REDIS_VARIABLE})",
    )


def _options(
    freshcache_options: dict[str, Any], clock: FakeClock, **fixed: Any
) -> dict[str, Any]:
    options: dict[str, Any] = {"xfetch_beta": 0}
    options.update(freshcache_options)
    options.update(clock=clock, **fixed)
    return options


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only on ``advance()``."""
    return FakeClock()


@pytest.fixture
def freshcache_options() -> dict[str, Any]:
    """Keyword options for every cache these fixtures build: override it."""
    return {}


@pytest.fixture
def freshcache_prefix() -> str:
    """A key prefix unique to this test."""
    return f"fctest{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def freshcache_redis_url(pytestconfig: pytest.Config) -> str:
    """The Redis of the redis fixtures; skips the test when none was given."""
    url = pytestconfig.getoption(REDIS_OPTION) or os.environ.get(REDIS_VARIABLE)
    if not url:
        pytest.skip(_NO_REDIS)
    return str(url)


@pytest.fixture
def fresh_cache(
    fake_clock: FakeClock, freshcache_options: dict[str, Any], freshcache_prefix: str
) -> Iterator[Cache]:
    """An embedded ``Cache`` on ``fake_clock``, closed after the test."""
    options = _options(freshcache_options, fake_clock, prefix=freshcache_prefix)
    with Cache(**options) as cache:
        yield cache


@pytest.fixture
def redis_cache(
    fake_clock: FakeClock,
    freshcache_options: dict[str, Any],
    freshcache_redis_url: str,
    freshcache_prefix: str,
) -> Iterator[Cache]:
    """A ``Cache`` over the given Redis under the test's own prefix; its
    values are cleared and it is closed after the test."""
    options = _options(freshcache_options, fake_clock, prefix=freshcache_prefix)
    with Cache(freshcache_redis_url, **options) as cache:
        try:
            yield cache
        finally:
            cache.clear()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def async_fresh_cache(
        fake_clock: FakeClock,
        freshcache_options: dict[str, Any],
        freshcache_prefix: str,
    ) -> AsyncIterator[AsyncCache]:
        """An embedded ``AsyncCache`` on ``fake_clock``, closed after the test."""
        options = _options(freshcache_options, fake_clock, prefix=freshcache_prefix)
        async with AsyncCache(**options) as cache:
            yield cache

    @pytest_asyncio.fixture
    async def async_redis_cache(
        fake_clock: FakeClock,
        freshcache_options: dict[str, Any],
        freshcache_redis_url: str,
        freshcache_prefix: str,
    ) -> AsyncIterator[AsyncCache]:
        """As ``redis_cache``, an ``AsyncCache``."""
        options = _options(freshcache_options, fake_clock, prefix=freshcache_prefix)
        async with AsyncCache(freshcache_redis_url, **options) as cache:
            try:
                yield cache
            finally:
                await cache.clear()

else:  # pragma: no cover - pytest-asyncio is not installed

    @pytest.fixture
    def async_fresh_cache() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(_NO_ASYNCIO, pytrace=False)

    @pytest.fixture
    def async_redis_cache() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(_NO_ASYNCIO, pytrace=False)
