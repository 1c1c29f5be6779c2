"""Django for the tests: settings, the fetched cache suite, an async driver.

``configure()`` configures Django once per test process (an in-memory
SQLite database for the suite's ``Poll`` model, the suite's ``cache`` app)
and puts Django's own ``tests/cache`` of the installed Django version on
``sys.path`` (fetched by ``scripts/django_suite.py``, checked against
``uv.lock``).

``AsyncDrivenFreshCache`` is ``FreshCache`` whose every sync method of
Django's API awaits the native ``a*`` method on one event loop thread, so
that Django's suite, which calls the sync methods, tests the async ones.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import django
from django.conf import settings

from freshcache.contrib.django import FreshCache

ROOT = Path(__file__).resolve().parent.parent
_configured = False


def suite_path() -> Path:
    """``.django-suite/<version>``: Django's ``tests/cache`` for this Django."""
    spec = importlib.util.spec_from_file_location(
        "django_suite", ROOT / "scripts" / "django_suite.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path: Path = module.fetch(django.get_version())
    return path


def configure() -> None:
    global _configured
    if _configured:
        return
    path = str(suite_path())
    if path not in sys.path:
        sys.path.insert(0, path)
    if not settings.configured:
        settings.configure(
            SECRET_KEY="freshcache-tests-only",
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "cache",  # the suite's models (Poll)
                "tests.django_app",
            ],
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
            },
            CACHES={
                "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
            },
            USE_TZ=True,
            ROOT_URLCONF="tests.django_app.urls",
            MIDDLEWARE=[],
            DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        )
    django.setup()
    _configured = True


class _Loop:
    """One event loop, run forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="django-async-driver", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


LOOP = _Loop()


def _via(name: str) -> Callable[..., Any]:
    def method(self: FreshCache, *args: Any, **kwargs: Any) -> Any:
        return LOOP.run(getattr(self, name)(*args, **kwargs))

    method.__name__ = name[1:]
    return method


class AsyncDrivenFreshCache(FreshCache):
    """``FreshCache`` driven through its native async methods."""

    get = _via("aget")
    set = _via("aset")
    add = _via("aadd")
    touch = _via("atouch")
    delete = _via("adelete")
    get_many = _via("aget_many")
    has_key = _via("ahas_key")
    incr = _via("aincr")
    decr = _via("adecr")
    set_many = _via("aset_many")
    delete_many = _via("adelete_many")
    get_or_set = _via("aget_or_set")
    clear = _via("aclear")
    incr_version = _via("aincr_version")
    decr_version = _via("adecr_version")
    close = _via("aclose")
