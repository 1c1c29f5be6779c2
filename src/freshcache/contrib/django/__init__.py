"""freshcache for Django: a ``CACHES`` backend, ``@cached`` views, and
invalidation on ``post_save``/``post_delete`` (``pip install
freshcache[django]``; ``docs/django.md``).

``import freshcache`` never imports Django; this package does.
"""

from __future__ import annotations

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "freshcache.contrib.django needs Django: pip install 'freshcache[django]'"
    ) from exc

from freshcache.contrib.django.backend import FreshCache, close_all
from freshcache.contrib.django.signals import invalidate_on_save
from freshcache.contrib.django.views import CachedView, cached

__all__ = ["CachedView", "FreshCache", "cached", "close_all", "invalidate_on_save"]
