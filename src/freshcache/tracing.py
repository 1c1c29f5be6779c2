"""Tracing: the hook a cache opens spans through, its span and attribute names.

A cache opens a span around the few operations worth a trace: a load (the
loader call on a miss, or a refresh), a fill (storing the loaded value in
Redis or the in-process tier), an invalidation (``invalidate``/``delete``,
``invalidate_tags``, ``bump``) and a write-behind batch (a worker applying
one batch to its sink, then acknowledging it). Never around a hit: a hit
pays nothing for tracing.

The default, ``NullTracing``, returns one shared, empty span: a traced
operation then costs an attribute lookup, a call and a ``with``.
``freshcache.contrib.otel.OtelTracing`` sends the spans to OpenTelemetry; any
object with the same ``span`` method can (``Cache(..., tracing=...)``).

Span names and attribute values are bounded: a namespace, a tier, an
outcome, a count, an error class. Never a key, a tag, a value or an
exception message (a loader's message can quote a row). Attribute names
follow OpenTelemetry's semantic conventions where one exists
(``db.system.name``, ``error.type``, ``messaging.batch.message_count``),
else they start with ``freshcache.``.

This module imports nothing but the standard library: ``import freshcache``
never imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import TracebackType
from typing import Final, Protocol

AttributeValue = str | bool | int | float


class SpanName(StrEnum):
    """The name of every span a cache opens."""

    LOAD = "freshcache.load"  # the loader's call (on a miss, or a refresh)
    FILL = "freshcache.fill"  # storing what it returned (Redis, then L1)
    INVALIDATE = "freshcache.invalidate"  # invalidate(), delete()
    INVALIDATE_TAGS = "freshcache.invalidate_tags"
    BUMP = "freshcache.bump"  # a new namespace version
    WRITEBEHIND_BATCH = "freshcache.writebehind.batch"  # sink.apply, then XACK


class Attribute(StrEnum):
    """The name of every span attribute a cache sets."""

    # OpenTelemetry semantic conventions
    DB_SYSTEM_NAME = "db.system.name"  # "redis" where Redis is involved
    ERROR_TYPE = "error.type"  # the exception's class, never its message
    BATCH_COUNT = "messaging.batch.message_count"  # writes read for a batch
    # freshcache's own
    NAMESPACE = "freshcache.namespace"  # the key's first part ("user")
    TIER = "freshcache.tier"  # a fill's first tier: "redis" or "l1"
    LOAD_REASON = "freshcache.load.reason"  # "miss", "refresh" or "disabled"
    FILL_OUTCOME = "freshcache.fill.outcome"  # see ``FillOutcome``
    INVALIDATION_KEYS = "freshcache.invalidation.keys"  # how many keys
    INVALIDATION_TAGS = "freshcache.invalidation.tags"  # how many tags
    INVALIDATION_OUTCOME = "freshcache.invalidation.outcome"  # landed, queued
    QUEUE = "freshcache.writebehind.queue"  # the write-behind queue's name
    APPLIED = "freshcache.writebehind.applied"  # writes given to the sink
    BATCH_OUTCOME = "freshcache.writebehind.outcome"  # see ``BatchOutcome``


class LoadReason(StrEnum):
    MISS = "miss"  # a caller waits for it
    REFRESH = "refresh"  # in the background: stale-while-revalidate, early refresh
    DISABLED = "disabled"  # the cache is disabled: every read loads


class FillOutcome(StrEnum):
    STORED = "stored"  # Redis took it (embedded cache: the in-process tier)
    SKIPPED = "skipped"  # the lease was lost: an invalidation or a write came first
    UNCACHEABLE = "uncacheable"  # unserializable or too large: not stored


class InvalidationOutcome(StrEnum):
    LANDED = "landed"  # Redis took it
    QUEUED = "queued"  # Redis did not, in time: queued for retry


class BatchOutcome(StrEnum):
    APPLIED = "applied"  # committed by the sink and acknowledged
    RETRY = "retry"  # the sink failed transiently: left pending, retried
    ISOLATED = "isolated"  # the sink refused it: applied key by key


REDIS: Final = "redis"


class Span(Protocol):
    """An open span: a context manager that ends the span on exit. On an
    exception it records the exception's class (never its message) and
    lets it propagate."""

    def __enter__(self) -> Span: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def set_attribute(self, name: str, value: AttributeValue) -> None: ...

    def record_error(self, error: BaseException) -> None:
        """Mark the span failed by ``error`` (caught, not propagated): its
        class, never its message."""
        ...


class Tracing(Protocol):
    """Where a cache opens spans. ``span`` must be cheap and never raise;
    the span becomes the current one for the ``with`` block (in asyncio,
    for the task running it), so spans opened inside it (a loader's
    database query) are its children."""

    def span(self, name: str, attributes: Mapping[str, AttributeValue]) -> Span: ...


class _NullSpan:
    __slots__ = ()

    def __enter__(self) -> _NullSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def set_attribute(self, name: str, value: AttributeValue) -> None:
        pass

    def record_error(self, error: BaseException) -> None:
        pass


NULL_SPAN: Final = _NullSpan()


class NullTracing:
    """Records nothing (the default): every ``span`` is one shared empty span."""

    __slots__ = ()

    def span(self, name: str, attributes: Mapping[str, AttributeValue]) -> Span:
        return NULL_SPAN


def error_type(error: type[BaseException]) -> str:
    """``error.type`` of an exception class: its qualified name
    (``builtins`` left out), as OpenTelemetry's conventions ask."""
    module = error.__module__
    if module == "builtins":
        return error.__qualname__
    return f"{module}.{error.__qualname__}"
