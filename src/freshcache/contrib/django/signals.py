"""Invalidate on ``post_save`` and ``post_delete``, after the commit: what
the row fed before the change (read on ``pre_save``) and after it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

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
    ``tags=``) in ``CACHES[alias]``, in every process: for a save, those of
    the row as it was before (read from the database on ``pre_save``: one
    ``SELECT`` by primary key per save of an existing row) and as saved, so
    a product renamed from "chair" to "table" drops what "chair" fed too.

    The invalidation runs once the transaction commits
    (``transaction.on_commit``; at once outside a transaction), never
    before: a reader that refills the key in between would cache the old
    row. A rolled-back change invalidates nothing. Returns the receiver;
    ``receiver.disconnect()`` disconnects it (and its ``pre_save`` half).
    """
    if keys is None and tags is None:
        raise TypeError("invalidate_on_save needs keys=, tags= or both")
    before: dict[int, tuple[list[str], list[str]]] = {}  # id(instance) -> fed

    def fed(instance: Any) -> tuple[list[str], list[str]]:
        return (
            [] if keys is None else list(keys(instance)),
            [] if tags is None else list(tags(instance)),
        )

    def invalidate(found_keys: list[str], found_tags: list[str]) -> None:
        backend = caches[alias]
        if not isinstance(backend, FreshCache):
            raise TypeError(
                f"invalidate_on_save needs CACHES[{alias!r}] to be a FreshCache, "
                f"not {type(backend).__name__}"
            )
        if found_keys:
            backend.delete_many(found_keys)
        if found_tags:
            backend.cache.invalidate_tags(*found_tags)

    def remember(
        sender: Any, instance: Any, raw: bool = False, using: str = "default",
        **_: Any,
    ) -> None:  # fmt: skip
        if raw or instance.pk is None:
            return
        # Django's documented way for generic code to reach a model's manager
        manager = model._default_manager  # noqa: SLF001
        old = manager.using(using).filter(pk=instance.pk).first()
        if old is not None:
            before[id(instance)] = fed(old)

    def receiver(sender: Any, instance: Any, using: str = "default", **_: Any) -> None:
        old_keys, old_tags = before.pop(id(instance), ([], []))
        new_keys, new_tags = fed(instance)
        found_keys = list(dict.fromkeys(old_keys + new_keys))
        found_tags = list(dict.fromkeys(old_tags + new_tags))
        transaction.on_commit(lambda: invalidate(found_keys, found_tags), using=using)

    def disconnect() -> None:
        pre_save.disconnect(remember, sender=model)
        post_save.disconnect(receiver, sender=model)
        post_delete.disconnect(receiver, sender=model)

    pre_save.connect(remember, sender=model, weak=False)
    post_save.connect(receiver, sender=model, weak=False)
    post_delete.connect(receiver, sender=model, weak=False)
    receiver.disconnect = disconnect  # type: ignore[attr-defined]
    return receiver
