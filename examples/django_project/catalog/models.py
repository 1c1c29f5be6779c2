from __future__ import annotations

from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
    price = models.IntegerField(help_text="in cents")

    def __str__(self) -> str:
        return self.name
