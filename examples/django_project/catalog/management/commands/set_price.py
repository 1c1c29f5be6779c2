"""``python manage.py set_price PK CENTS``: a write from another process.

The save goes through the ORM, so ``invalidate_on_save`` drops the cached
page once the transaction commits; with ``REDIS_URL`` set, in every process
serving the shop, not only this one.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from catalog.models import Product


class Command(BaseCommand):
    help = "Set a product's price (creating the product if needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pk", type=int)
        parser.add_argument("cents", type=int)
        parser.add_argument("--name", default="kettle")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            item, created = Product.objects.get_or_create(
                pk=options["pk"],
                defaults={"name": options["name"], "price": options["cents"]},
            )
            if not created:
                item.price = options["cents"]
                item.save()
        self.stdout.write(f"{item.name}: {item.price}")
