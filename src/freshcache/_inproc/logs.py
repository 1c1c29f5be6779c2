"""freshcache's loggers: one per area under ``freshcache``, each record with
structured fields and repeats held back (``_core/logs.py`` decides).

The areas (``docs/logging.md``): ``freshcache.redis`` (the Redis tier: errors,
the circuit breaker, the registry of live versions), ``freshcache.bus``
(invalidation bus), ``freshcache.engine`` (reads, loads, refreshes,
invalidations and their retry queue, events, values that cannot be cached),
``freshcache.writebehind`` (the producer) and ``freshcache.worker`` (the
write-behind worker and its command). Integrations log under
``freshcache.contrib.<name>``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from freshcache._core.logs import (
    ERROR_CLASS,
    EVENT,
    NAMESPACE,
    REPEAT_INTERVAL,
    REPEATED,
    TIER,
    LogEvent,
    Repeats,
)

ROOT = "freshcache"
AREAS = ("redis", "bus", "engine", "writebehind", "worker")

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def area_logger(area: str) -> logging.Logger:
    """``freshcache.<area>``: one of ``AREAS``."""
    if area not in AREAS:
        raise ValueError(f"unknown log area {area!r}")
    return logging.getLogger(f"{ROOT}.{area}")


class Log:
    """The records of one component (a store, a bus, a worker) of one cache:
    ``log.warning(LogEvent.X, "message %s", arg, error_class=..., ...)``.

    Every record carries ``freshcache_event``, ``freshcache_tier``,
    ``freshcache_namespace``, ``freshcache_error_class`` and
    ``freshcache_repeated`` (None where a field does not apply). Repeats of
    one kind (the message template, the event and the error class) are
    emitted at most once per ``every`` seconds of ``now`` (per component:
    one cache's failures never hide another's); the next one emitted says
    how many were held back. ``repeat=False`` for records that are logged
    once per transition (their callers decide when), and for INFO/DEBUG.

    Not locked: under threads, two records of one kind may both pass in
    the same instant; none is ever lost that should pass."""

    __slots__ = ("_repeats", "logger", "tier")

    def __init__(
        self,
        area: str,
        *,
        tier: str | None = None,
        now: Callable[[], float] = time.monotonic,
        every: float = REPEAT_INTERVAL,
    ) -> None:
        self.logger = area_logger(area)
        self.tier = tier
        self._repeats = Repeats(now, every=every)

    def emit(
        self,
        level: int,
        event: LogEvent,
        msg: str,
        *args: object,
        tier: str | None = None,
        namespace: str | None = None,
        error_class: str | None = None,
        repeat: bool | None = None,
        every: float | None = None,
        exc_info: Any = None,
        stacklevel: int = 2,
    ) -> bool:
        """Log ``msg % args`` at ``level`` unless held back; True if logged."""
        logger = self.logger
        if not logger.isEnabledFor(level):
            return False
        held = 0
        if repeat if repeat is not None else level >= logging.WARNING:
            passed, held = self._repeats.check((msg, event, error_class), every)
            if not passed:
                return False
        if held:
            interval = self._repeats.every if every is None else every
            msg += " (repeated %d times in the last %g s)"
            args = (*args, held, interval)
        extra = {
            EVENT: str(event),
            TIER: tier if tier is not None else self.tier,
            NAMESPACE: namespace,
            ERROR_CLASS: error_class,
            REPEATED: held,
        }
        logger.log(
            level, msg, *args, extra=extra, exc_info=exc_info, stacklevel=stacklevel
        )
        return True

    def debug(self, event: LogEvent, msg: str, *args: object, **fields: Any) -> bool:
        return self.emit(logging.DEBUG, event, msg, *args, stacklevel=3, **fields)

    def info(self, event: LogEvent, msg: str, *args: object, **fields: Any) -> bool:
        return self.emit(logging.INFO, event, msg, *args, stacklevel=3, **fields)

    def warning(self, event: LogEvent, msg: str, *args: object, **fields: Any) -> bool:
        return self.emit(logging.WARNING, event, msg, *args, stacklevel=3, **fields)

    def error(self, event: LogEvent, msg: str, *args: object, **fields: Any) -> bool:
        return self.emit(logging.ERROR, event, msg, *args, stacklevel=3, **fields)
