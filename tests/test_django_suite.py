"""Django's own cache test suite against FreshCache, on real Redis.

``BaseCacheTests`` comes from ``tests/cache/tests.py`` of the installed
Django release (``scripts/django_suite.py`` fetches it from Django's sdist,
checked against ``uv.lock``), and runs as Django runs it against its own
Redis backend (``RedisCacheTests``): ``override_settings(CACHES=
caches_setting_for_tests(base=..., exclude={"cull", "zero_cull"}))`` with a
``TestCase``. Four runs: the sync methods and the native async ones
(``AsyncDrivenFreshCache``), each on Redis alone and with an L1 in front.

Excluded (``docs/django.md`` has the list and the reasons): culling, as for
Django's Redis backend (Redis evicts by its own policy, there is no
``MAX_ENTRIES``); and, in the async runs only, the two tests that pickle an
unevaluated ``QuerySet``: pickling runs its query, which Django refuses
inside an event loop (``SynchronousOnlyOperation``).
"""

from __future__ import annotations

import unittest
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import django_support, servers

django_support.configure()

from cache.tests import BaseCacheTests, caches_setting_for_tests  # noqa: E402
from django.test import TestCase, override_settings  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
    teardown_test_environment,
)

from freshcache.contrib.django import FreshCache, close_all  # noqa: E402

PREFIX = f"t{uuid.uuid4().hex[:12]}"
SYNC = "freshcache.contrib.django.FreshCache"
ASYNC = "tests.django_support.AsyncDrivenFreshCache"
# Like Django's RedisCacheTests: Redis does not cull by entry count.
EXCLUDED_CACHES = {"cull", "zero_cull"}


def _setting(backend: str, l1: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"prefix": f"{PREFIX}{'l1' if l1 else ''}"}
    options["timeout"] = 1.0  # a shared machine: no fail-open at 50 ms
    if l1:
        options["l1"] = {"max_entries": 1000}
    base = {"BACKEND": backend, "LOCATION": None, "OPTIONS": options}
    return caches_setting_for_tests(base=base, exclude=EXCLUDED_CACHES)  # type: ignore[no-any-return]


SETTINGS = {
    "sync": _setting(SYNC, l1=False),
    "sync_l1": _setting(SYNC, l1=True),
    "async": _setting(ASYNC, l1=False),
    "async_l1": _setting(ASYNC, l1=True),
}


@pytest.fixture(scope="module", autouse=True)
def _django_and_redis(redis_url: str) -> Iterator[None]:
    """Point every alias at the suite's Redis (the URL is a fixture's), set
    up Django's test environment and database; afterwards close the caches
    and delete the module's keys."""
    for setting in SETTINGS.values():
        for alias in setting.values():
            alias["LOCATION"] = redis_url
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(databases, verbosity=0)
    teardown_test_environment()
    for name in ("async", "async_l1"):
        backend = FreshCache(redis_url, dict(SETTINGS[name]["default"]))
        django_support.LOOP.run(_aclose(backend))
    close_all()
    servers.delete_prefix(redis_url, PREFIX)


async def _aclose(backend: FreshCache) -> None:
    await backend.async_cache().aclose()


_IN_AN_EVENT_LOOP = (
    "pickling an unevaluated QuerySet runs its query, which Django refuses "
    "inside an event loop (SynchronousOnlyOperation): evaluate it before aset"
)


@override_settings(CACHES=SETTINGS["sync"])
class FreshCacheTests(BaseCacheTests, TestCase):  # type: ignore[misc]
    """The sync methods, Redis only."""


@override_settings(CACHES=SETTINGS["sync_l1"])
class FreshCacheL1Tests(BaseCacheTests, TestCase):  # type: ignore[misc]
    """The sync methods, an L1 in front of Redis."""


class _Async(BaseCacheTests):  # type: ignore[misc]
    test_cache_write_for_model_instance_with_deferred = unittest.skip(
        _IN_AN_EVENT_LOOP
    )(BaseCacheTests.test_cache_write_for_model_instance_with_deferred)
    test_cache_read_for_model_instance_with_deferred = unittest.skip(_IN_AN_EVENT_LOOP)(
        BaseCacheTests.test_cache_read_for_model_instance_with_deferred
    )


@override_settings(CACHES=SETTINGS["async"])
class FreshCacheAsyncTests(_Async, TestCase):  # type: ignore[misc]
    """The native async methods, Redis only."""


@override_settings(CACHES=SETTINGS["async_l1"])
class FreshCacheAsyncL1Tests(_Async, TestCase):  # type: ignore[misc]
    """The native async methods, an L1 in front of Redis."""
