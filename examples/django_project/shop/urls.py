from __future__ import annotations

from catalog import views
from django.urls import path

urlpatterns = [
    path("products/<int:pk>/", views.product, name="product"),
    path("stats/", views.stats, name="stats"),
]
