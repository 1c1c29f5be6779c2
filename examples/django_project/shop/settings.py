"""Settings of the example shop: freshcache as Django's cache.

Everything that differs between a laptop and a deployment comes from the
environment:

- ``REDIS_URL`` (``redis://127.0.0.1:6379/0``): the cache's shared tier.
  Unset: the cache lives in the process only (fine for ``runserver``; a
  second process would not see its invalidations).
- ``DATABASE_URL`` (``postgresql://user:password@host:5432/name``, or
  ``sqlite:////absolute/path.db``): the database. Unset: ``db.sqlite3``
  beside ``manage.py``.
- ``FRESHCACHE_PREFIX``: the prefix of every cache key (``shop``).
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` (``1``), ``DJANGO_ALLOWED_HOSTS``
  (comma-separated).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

# An example's key: set DJANGO_SECRET_KEY anywhere but on your laptop. The
# cache signs what it stores with a key derived from it.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "catalog",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True


def _database(url: str | None) -> dict[str, object]:
    """Django's DATABASES entry for ``DATABASE_URL`` (unset: SQLite here)."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
        }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":  # sqlite:///relative.db, sqlite:////abs/path.db
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:]}
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(
            "DATABASE_URL: postgresql:// and sqlite:/// URLs are understood here, "
            f"not {parts.scheme!r}"
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}

CACHES = {
    "default": {
        "BACKEND": "freshcache.contrib.django.FreshCache",
        # Empty: in-process only.
        "LOCATION": os.environ.get("REDIS_URL", ""),
        "TIMEOUT": 300,
        "OPTIONS": {
            "prefix": os.environ.get("FRESHCACHE_PREFIX", "shop"),
            # An in-process tier in front of Redis, kept coherent across
            # processes by freshcache's bus (within 100 ms by default).
            "l1": {"max_entries": 10_000},
        },
    }
}
