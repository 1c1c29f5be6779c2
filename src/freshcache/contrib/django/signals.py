"""Invalidate on ``post_save`` and ``post_delete``, after the commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from freshcache.contrib.django.backend import FreshCache

__all__ = ["invalidate_on_save"]

Instances = Callable[[Any], Iterable[str]]


def invalidate_on_save(
    model: type[Any],
    *,
    keys: Instances | None = None,
    tags: Instances | None = None,
    alias: str = "default",
) -> Callable[..., None]:
    """When an instance of ``model`` is saved or deleted, invalidate
    ``keys(instance)`` (Django cache keys, as given to ``cache.set``) and
    ``tags(instance)`` (freshcache tags, such as ``@cached`` views'
    ``tags=``) in ``CACHES[alias]``, in every process.

    The invalidation runs once the transaction commits
    (``transaction.on_commit``; at once outside a transaction), never
    before: a reader that refills the key in between would cache the old
    row. A rolled-back change invalidates nothing. Returns the receiver
    (connected strongly; disconnect it from both signals to stop).
    """
    if keys is None and tags is None:
        raise TypeError("invalidate_on_save needs keys=, tags= or both")

    def invalidate(instance: Any) -> None:
        backend = caches[alias]
        if not isinstance(backend, FreshCache):
            raise TypeError(
                f"invalidate_on_save needs CACHES[{alias!r}] to be a FreshCache, "
                f"not {type(backend).__name__}"
            )
        if keys is not None:
            backend.delete_many(list(keys(instance)))
        if tags is not None:
            found = list(tags(instance))
            if found:
                backend.cache.invalidate_tags(*found)

    def receiver(sender: Any, instance: Any, using: str = "default", **_: Any) -> None:
        transaction.on_commit(lambda: invalidate(instance), using=using)

    post_save.connect(receiver, sender=model, weak=False)
    post_delete.connect(receiver, sender=model, weak=False)
    return receiver
