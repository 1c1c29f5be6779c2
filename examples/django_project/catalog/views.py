"""A product page cached by freshcache, and the cache's counters."""

from __future__ import annotations

import os

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404

from catalog.models import Product
from freshcache.contrib.django import cached


# Cached for 10 minutes, or until the product is saved (apps.py wires
# invalidate_on_save to the tag). Concurrent requests for one page render it
# once. A 404 is not cached: only a 200 is.
@cached(600, tags=["product:{pk}"])
def product(request: HttpRequest, pk: int) -> JsonResponse:
    item = get_object_or_404(Product, pk=pk)
    return JsonResponse(
        {
            "id": item.pk,
            "name": item.name,
            "price": item.price,
            "rendered_by": os.getpid(),  # which process rendered this copy
        }
    )


def stats(request: HttpRequest) -> JsonResponse:
    """This process's cache counters (not cached)."""
    counters = cache.cache.stats()  # FreshCache.cache: the freshcache Cache
    return JsonResponse(
        {
            "hits": counters.lookups.hits,
            "misses": counters.lookups.misses,
            "loads": counters.loads,
        }
    )
