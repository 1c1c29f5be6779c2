"""Views under ``@cached``: each counts its renders."""

from __future__ import annotations

import threading
import time
from collections import Counter

from django.http import HttpRequest, HttpResponse

from freshcache.contrib.django import cached
from tests.django_app.models import Product

RENDERS: Counter[str] = Counter()
_LOCK = threading.Lock()


def _count(name: str) -> None:
    with _LOCK:
        RENDERS[name] += 1


@cached(60, tags=["product:{pk}"])
def product(request: HttpRequest, pk: int) -> HttpResponse:
    _count("product")
    time.sleep(0.05)  # slow enough that concurrent requests overlap
    item = Product.objects.get(pk=pk)
    return HttpResponse(f"{item.name}:{item.price}", content_type="text/plain")


@cached(60)
def with_cookie(request: HttpRequest) -> HttpResponse:
    _count("with_cookie")
    response = HttpResponse("hello")
    response.set_cookie("session", "x")
    return response


@cached(60, tags=["product:{pk}"])
async def product_async(request: HttpRequest, pk: int) -> HttpResponse:
    _count("product_async")
    return HttpResponse(f"async:{pk}:{RENDERS['product_async']}")
