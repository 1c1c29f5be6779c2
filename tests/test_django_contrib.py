"""freshcache.contrib.django beyond Django's suite, on real Redis.

``@cached`` views render once per key under concurrency, carry tags, skip
responses that must not be shared, and work for ``async def`` views;
``invalidate_on_save`` invalidates after the commit and never before;
``get_or_set`` with a callable is a single flight; the backend's
configuration errors; and ``import freshcache`` imports no Django.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import django_support, servers

django_support.configure()

from django.core.cache import caches  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
    teardown_test_environment,
)

from freshcache import AsyncCache  # noqa: E402
from freshcache.contrib.django import FreshCache, close_all, invalidate_on_save  # noqa: E402
from tests.django_app import views  # noqa: E402
from tests.django_app.models import Product  # noqa: E402

FACTORY = RequestFactory()


@pytest.fixture(scope="module")
def _database() -> Iterator[None]:
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(databases, verbosity=0)
    teardown_test_environment()


@pytest.fixture
def backend(
    redis_url: str, key_prefix: str, redis_cleanup: None, _database: None
) -> Iterator[FreshCache]:
    setting = {
        "default": {
            "BACKEND": "freshcache.contrib.django.FreshCache",
            "LOCATION": redis_url,
            "OPTIONS": {"prefix": key_prefix, "timeout": 1.0, "l1": {}},
        }
    }
    views.RENDERS.clear()
    with override_settings(CACHES=setting):
        yield caches["default"]
    close_all()


def _get(path: str, view: Any, **kwargs: Any) -> Any:
    return view(FACTORY.get(path), **kwargs)


def test_a_view_renders_once_for_concurrent_requests(backend: FreshCache) -> None:
    item = Product.objects.create(name="lamp", price=10)
    bodies: list[bytes] = []

    def fetch() -> None:
        bodies.append(_get("/product/", views.product, pk=item.pk).content)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bodies == [b"lamp:10"] * 8
    assert views.RENDERS["product"] == 1
    response = _get("/product/", views.product, pk=item.pk)
    assert response["Content-Type"] == "text/plain"
    assert views.RENDERS["product"] == 1


def test_query_strings_vary_and_invalidate_covers_them(backend: FreshCache) -> None:
    item = Product.objects.create(name="desk", price=5)
    for query in ("", "?a=1", "?a=1"):
        views.product(FACTORY.get(f"/product/{query}"), pk=item.pk)
    assert views.RENDERS["product"] == 2
    assert views.product.invalidate(pk=item.pk) is True
    views.product(FACTORY.get("/product/?a=1"), pk=item.pk)
    assert views.RENDERS["product"] == 3


def test_responses_with_cookies_or_unsafe_methods_are_not_cached(
    backend: FreshCache,
) -> None:
    for _ in range(2):
        assert views.with_cookie(FACTORY.get("/cookie/")).cookies
    assert views.RENDERS["with_cookie"] == 2
    item = Product.objects.create(name="rug", price=1)
    views.product(FACTORY.post(f"/product/{item.pk}/"), pk=item.pk)
    views.product(FACTORY.post(f"/product/{item.pk}/"), pk=item.pk)
    assert views.RENDERS["product"] == 2


def test_async_views_are_cached_across_event_loops(backend: FreshCache) -> None:
    async def fetch() -> bytes:
        response = await views.product_async(FACTORY.get("/async/"), pk=3)
        return bytes(response.content)

    first = asyncio.run(fetch())
    assert asyncio.run(fetch()) == first  # another loop, another AsyncCache
    assert views.RENDERS["product_async"] == 1
    backend.cache.invalidate_tags("product:3")
    assert asyncio.run(fetch()) != first


def test_event_loops_that_ended_leave_no_cache_behind(backend: FreshCache) -> None:
    """Under WSGI, Django runs each async view in a loop of its own: each
    gets an AsyncCache, which must not outlive it."""

    async def once() -> Any:
        await backend.aset("k", 1)
        return await backend.aget("k")

    def alive() -> int:
        gc.collect()
        return sum(type(o) is AsyncCache for o in gc.get_objects())

    before = alive()
    for _ in range(5):
        assert asyncio.run(once()) == 1
    assert alive() - before <= 1  # the last loop's, until the next call


def test_invalidate_on_save_runs_after_the_commit(backend: FreshCache) -> None:
    receiver = invalidate_on_save(
        Product,
        keys=lambda p: [f"product-name:{p.pk}"],
        tags=lambda p: [f"product:{p.pk}"],
    )
    try:
        item = Product.objects.create(name="chair", price=20)
        backend.set(f"product-name:{item.pk}", "chair")
        assert _get("/product/", views.product, pk=item.pk).content == b"chair:20"
        with transaction.atomic():
            item.price = 25
            item.save()
            # not committed: a reader refilling now would cache the old row
            assert backend.get(f"product-name:{item.pk}") == "chair"
            assert _get("/p/", views.product, pk=item.pk).content == b"chair:20"
        assert backend.get(f"product-name:{item.pk}") is None
        assert _get("/p/", views.product, pk=item.pk).content == b"chair:25"

        def change_then_fail() -> None:
            with transaction.atomic():
                item.price = 99
                item.save()
                raise RuntimeError("rolled back")

        renders = views.RENDERS["product"]
        with pytest.raises(RuntimeError):
            change_then_fail()
        assert _get("/p/", views.product, pk=item.pk).content == b"chair:25"
        assert views.RENDERS["product"] == renders  # still cached: no invalidation
        pk = item.pk
        item.delete()
        with pytest.raises(Product.DoesNotExist):
            _get("/p/", views.product, pk=pk)
    finally:
        receiver.disconnect()


def test_invalidate_on_save_drops_what_the_old_row_fed(backend: FreshCache) -> None:
    """A rename drops the key of the old name too (read on ``pre_save``),
    after the commit; without the old row, "by-name:chair" would stay."""
    receiver = invalidate_on_save(Product, keys=lambda p: [f"by-name:{p.name}"])
    try:
        item = Product.objects.create(name="chair", price=20)
        backend.set("by-name:chair", item.pk)
        backend.set("by-name:table", "someone else's")
        with transaction.atomic():
            item.name = "table"
            item.save()
            assert backend.get("by-name:chair") == item.pk  # not committed yet
        assert backend.get("by-name:chair") is None
        assert backend.get("by-name:table") is None
        item.delete()
    finally:
        receiver.disconnect()


def test_get_or_set_with_a_callable_is_a_single_flight(backend: FreshCache) -> None:
    calls: list[int] = []
    started = threading.Barrier(6)

    def compute() -> dict[str, int]:
        calls.append(1)
        threading.Event().wait(0.1)
        return {"answer": 42}

    results: list[Any] = []

    def ask() -> None:
        started.wait()
        results.append(caches["default"].get_or_set("slow", compute, 60))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"answer": 42}] * 6
    assert len(calls) == 1


def test_get_returns_a_copy_callers_may_change(backend: FreshCache) -> None:
    backend.set("list", [1, 2])
    backend.get("list").append(3)
    assert backend.get("list") == [1, 2]


def test_set_many_returns_the_keys_too_large_to_store(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    options = {"prefix": key_prefix, "timeout": 1.0, "max_value_bytes": 4096}
    cache = FreshCache(redis_url, {"OPTIONS": options})
    try:
        cache.set("big", "old")
        failed = cache.set_many({"small": 1, "big": "x" * 100_000})
        assert failed == ["big"]
        assert cache.get("small") == 1
        assert cache.get("big") is None  # never the older value
    finally:
        close_all()


def test_bad_configurations_are_refused(redis_url: str) -> None:
    for options in ({"serializer": "json"}, {"l1": {"copy": False}}, {"strict": False}):
        with pytest.raises(ImproperlyConfigured):
            FreshCache(redis_url, {"OPTIONS": options})
    with pytest.raises(ImproperlyConfigured):
        FreshCache([redis_url, redis_url], {})
    with override_settings(SECRET_KEY=""), pytest.raises(ImproperlyConfigured):
        FreshCache(redis_url, {"OPTIONS": {"prefix": f"x{uuid.uuid4().hex}"}})


def test_values_signed_under_another_secret_are_misses(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    one = FreshCache(redis_url, {"OPTIONS": {"prefix": key_prefix, "secret": "a"}})
    two = FreshCache(redis_url, {"OPTIONS": {"prefix": key_prefix, "secret": "b"}})
    try:
        one.set("k", {"v": 1})
        assert two.get("k", "missing") == "missing"
    finally:
        close_all()
        servers.delete_prefix(redis_url, key_prefix)


def test_import_freshcache_imports_no_django() -> None:
    code = (
        "import sys, freshcache; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
