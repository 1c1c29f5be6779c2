"""``python manage.py test``: the cached page through Django's test client."""

from __future__ import annotations

from django.core.cache import cache
from django.test import TestCase

from catalog.models import Product


class ProductPageTests(TestCase):
    def setUp(self) -> None:
        cache.clear()  # the cache outlives the test database
        self.item = Product.objects.create(name="kettle", price=2500)
        self.url = f"/products/{self.item.pk}/"

    def loads(self) -> int:
        return cache.cache.stats().loads

    def test_second_request_is_a_hit(self) -> None:
        before = self.loads()
        first = self.client.get(self.url)
        second = self.client.get(self.url)
        self.assertEqual(first.json()["price"], 2500)
        self.assertEqual(second.content, first.content)
        self.assertEqual(self.loads() - before, 1)  # rendered once

    def test_a_save_refreshes_the_page(self) -> None:
        self.client.get(self.url)
        # The invalidation runs when the transaction commits: in a TestCase,
        # when the captured on_commit callbacks run.
        with self.captureOnCommitCallbacks(execute=True):
            self.item.price = 2200
            self.item.save()
        self.assertEqual(self.client.get(self.url).json()["price"], 2200)

    def test_no_invalidation_before_the_commit(self) -> None:
        self.client.get(self.url)
        with self.captureOnCommitCallbacks(execute=False):
            self.item.price = 2200
            self.item.save()
            # Not committed yet: the cached page stands.
            self.assertEqual(self.client.get(self.url).json()["price"], 2500)

    def test_missing_product_is_404_and_not_cached(self) -> None:
        before = self.loads()
        self.assertEqual(self.client.get("/products/999/").status_code, 404)
        self.assertEqual(self.client.get("/products/999/").status_code, 404)
        self.assertEqual(self.loads() - before, 2)
