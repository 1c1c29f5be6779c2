from __future__ import annotations

from django.urls import path

from tests.django_app import views

urlpatterns = [
    path("product/<int:pk>/", views.product),
    path("cookie/", views.with_cookie),
    path("async/<int:pk>/", views.product_async),
]
