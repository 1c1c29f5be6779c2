"""Turning a value into an entry and its envelope: lifetimes, jitter, and what
happens to values that cannot be cached."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from freshcache._core.codec.envelope import Codec
from freshcache._core.entry import NO_STALE_WINDOW, Entry
from freshcache._core.freshness import Lifetime, jitter_ttl, lifetimes
from freshcache._core.logs import LogEvent, error_name, namespace_of
from freshcache._inproc.logs import Log
from freshcache.errors import SerializationError, ValueTooLargeError
from freshcache.metrics import ErrorClass, Metrics


class EntryEncoder:
    """Builds entries with their lifetimes and encodes them for every tier."""

    def __init__(
        self,
        codec: Codec,
        *,
        metrics: Metrics,
        now: Callable[[], float],
        strict: bool,
        jitter: float = 0.0,
        rng: random.Random | None = None,
        head: str = "",
    ) -> None:
        self._codec = codec
        self._metrics = metrics
        self._now = now
        self._strict = strict
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._head = head
        self._log = Log("engine")

    def encode(
        self, full: str, value: Any, lifetime: Lifetime,
        delta: float, tags: Sequence[str],
    ) -> tuple[Entry, bytes, float | None] | None:  # fmt: skip
        """The entry, its envelope and its hard TTL; None if not cacheable
        (too large or not serializable: counted, logged, raised if strict)."""
        now = self._now()
        soft, stale, _ = lifetime
        if soft is not None and self._jitter:
            soft = jitter_ttl(soft, self._jitter, self._rng)
        fresh_until, hard = lifetimes(now, soft, stale)
        stale_until = fresh_until + stale if stale else NO_STALE_WINDOW
        entry = Entry(value, now, fresh_until, delta, tuple(tags), stale_until)
        try:
            return entry, self._codec.encode(full, entry), hard
        except ValueTooLargeError as exc:
            self._metrics.error(ErrorClass.OVERSIZE)
            self._not_cached(full, value, ErrorClass.OVERSIZE, exc)
            if self._strict:
                raise
        except SerializationError as exc:
            self._metrics.error(ErrorClass.SERIALIZE)
            self._not_cached(full, value, ErrorClass.SERIALIZE, exc)
            if self._strict:
                raise
        return None

    def _not_cached(
        self, full: str, value: Any, kind: ErrorClass, exc: SerializationError
    ) -> None:
        """Log a value that is not cached: its type and the codec's reason
        (its own messages name types and sizes, never a value; an error
        raised by a serializer, which may be the value's own code, by class
        only)."""
        cause = exc.__cause__
        self._log.warning(
            LogEvent.VALUE_NOT_CACHED,
            "not caching a value of type %s: %s",
            type(value).__name__,
            exc if cause is None else error_name(cause),
            namespace=namespace_of(full, self._head),
            error_class=kind.value,
        )
