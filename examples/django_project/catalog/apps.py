from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        from catalog.models import Product
        from freshcache.contrib.django import invalidate_on_save

        # A save or delete of a product, once its transaction commits, drops
        # every cached page tagged with it (views.product's tags=), in every
        # process sharing the cache.
        invalidate_on_save(Product, tags=lambda p: [f"product:{p.pk}"])
