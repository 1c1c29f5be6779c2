"""What a log record may say, and whether it is said at all: pure decisions.

* ``Repeats`` decides whether a repeated record is emitted: the first of a
  kind, then at most one per interval, the emitted one carrying how many
  were held back since the last one ("repeated N times in the last 10 s").
  A kind is whatever the caller makes it (logger, message template, error
  class). Time is passed in (an injected clock), so tests need no sleep.
* ``Transitions`` remembers the last state of named things (a circuit) and
  says when it changed: such records are logged once per transition.
* ``scrub`` removes what must never reach a record from a message that
  came from elsewhere (a redis-py exception): the ``user:password@`` part
  of anything URL-like, and the command (with its arguments: keys and
  values) that redis-py writes into a pipeline's error.
* ``redact_key`` shows a key of a private namespace as
  ``namespace:<redacted:hash>``.

The record's structured fields (``extra=``) are named here, with a prefix
that no ``LogRecord`` attribute and no application's field is likely to use.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Collection, Hashable

# The structured fields every freshcache record carries (``record.<name>``).
EVENT = "freshcache_event"
TIER = "freshcache_tier"
NAMESPACE = "freshcache_namespace"
ERROR_CLASS = "freshcache_error_class"
REPEATED = "freshcache_repeated"  # records held back before this one (0: none)
FIELDS = (EVENT, TIER, NAMESPACE, ERROR_CLASS, REPEATED)

REPEAT_INTERVAL = 10.0  # seconds: at most one record per kind per interval


class LogEvent(enum.StrEnum):
    """``record.freshcache_event``: what happened, from a fixed set."""

    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_CLOSED = "circuit_closed"
    STORE_ERROR = "store_error"  # a loud (configuration, capacity) Redis error
    DECODE_ERROR = "decode_error"  # bytes in Redis that are not a trusted entry
    VALUE_NOT_CACHED = "value_not_cached"  # not serializable, or too large
    VERSION_LAPSED = "version_lapsed"
    REFRESH_FAILED = "refresh_failed"
    INVALIDATION_QUEUED = "invalidation_queued"
    INVALIDATION_OVERFLOW = "invalidation_overflow"
    INVALIDATION_ESCALATED = "invalidation_escalated"
    INVALIDATION_DROPPED = "invalidation_dropped"
    INVALIDATION_RETRY_BUG = "invalidation_retry_bug"
    BUS_LOST = "bus_lost"
    BUS_CONNECTED = "bus_connected"
    BUS_REFUSED = "bus_refused"
    BUS_DECODE_ERROR = "bus_decode_error"
    BUS_BUG = "bus_bug"
    EVENT_HANDLER_FAILED = "event_handler_failed"
    WRITEBEHIND_SETTINGS = "writebehind_settings"
    WORKER_STARTED = "worker_started"
    WORKER_REDIS_FAILED = "worker_redis_failed"
    SINK_FAILED = "sink_failed"
    DEAD_LETTERED = "dead_lettered"
    LIVE_PUBLISH_FAILED = "live_publish_failed"  # a bug in the live view's tick


class Repeats:
    """Whether a record of a kind is emitted now: the first one is; then one
    per ``every`` seconds, which reports how many were held back.

    ``check(kind)`` returns ``(emit, held_back)``. At most ``max_kinds``
    kinds are remembered (the oldest is forgotten first), so an unbounded
    stream of distinct kinds cannot grow memory; a forgotten kind's next
    record is emitted as a first one."""

    __slots__ = ("_every", "_kinds", "_max_kinds", "_now")

    def __init__(
        self,
        now: Callable[[], float],
        *,
        every: float = REPEAT_INTERVAL,
        max_kinds: int = 1024,
    ) -> None:
        if not every >= 0 or max_kinds < 1:
            raise ValueError("every must be >= 0 and max_kinds >= 1")
        self._now = now
        self._every = every
        self._max_kinds = max_kinds
        # kind -> [time of the last emitted record, records held back since]
        self._kinds: dict[Hashable, list[float]] = {}

    @property
    def every(self) -> float:
        return self._every

    def check(self, kind: Hashable, every: float | None = None) -> tuple[bool, int]:
        interval = self._every if every is None else every
        now = self._now()
        seen = self._kinds.get(kind)
        if seen is None:
            if len(self._kinds) >= self._max_kinds:
                # Under threads without a lock another thread may be here
                # too: a log decision must never raise into a cache call.
                try:
                    oldest = next(iter(self._kinds), None)
                except RuntimeError:  # changed size meanwhile
                    oldest = None
                self._kinds.pop(oldest, None)
            self._kinds[kind] = [now, 0]
            return True, 0
        if now - seen[0] >= interval:
            held = int(seen[1])
            seen[0], seen[1] = now, 0
            return True, held
        seen[1] += 1
        return False, 0


class Transitions:
    """The last state of each named thing; ``changed`` is True when the
    state differs from the last one seen (and the first time only if the
    state differs from ``initial``)."""

    __slots__ = ("_initial", "_states")

    def __init__(self, initial: Hashable = None) -> None:
        self._initial = initial
        self._states: dict[Hashable, Hashable] = {}

    def changed(self, name: Hashable, state: Hashable) -> bool:
        before = self._states.get(name, self._initial)
        self._states[name] = state
        return before != state

    def state(self, name: Hashable) -> Hashable:
        return self._states.get(name, self._initial)


# scheme://user:password@host -> scheme://host (and scheme://:password@,
# scheme://user@): whatever comes between "//" and the last "@" before the
# host. Also a bare "user:password@host" after a space or at the start.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#@]*@")
_BARE_USERINFO = re.compile(r"(?P<start>^|[\s(\[<'\"=,])[^\s/?#@:'\"]*:[^\s/?#@'\"]+@")
# redis-py writes the failed command, arguments included, into a pipeline's
# error: "Command # 2 (EVALSHA ... key value ...) of pipeline caused error: X".
# Greedy up to the last such phrase: the server's own error follows it.
_PIPELINE = re.compile(r"Command # (\d+) \(.*\) of pipeline caused error: ", re.DOTALL)
_LONGEST = 500  # characters of a foreign message kept (a bounded record)


def scrub(text: str) -> str:
    """``text`` without passwords in URLs and without the commands redis-py
    quotes in pipeline errors, cut to a bounded length."""
    text = _PIPELINE.sub(r"Command # \1 of pipeline caused error: ", text)
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _BARE_USERINFO.sub(r"\g<start>", text)
    if len(text) > _LONGEST:
        text = text[:_LONGEST] + "..."
    return text


def error_name(exc: BaseException) -> str:
    """What a record may always say about any exception: its class."""
    kind = type(exc)
    module = kind.__module__
    return (
        kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    )


REDACTED = "<redacted>"


def redact_key(key: str, private: Collection[str], head: str = "") -> str:
    """``key`` as a record or a message may show it: itself, unless its
    namespace is private; then ``[head]namespace:<redacted:hash>`` (an
    8-hex-digit hash, so records about one key can be matched up without
    showing it). ``key`` may be a full key (starting with ``head``) or the
    key as the application gave it; a namespace version (``~N``) counts as
    its namespace."""
    if not private:
        return key
    start = len(head) if head and key.startswith(head) else 0
    body = key[start:]
    namespace, sep, _ = body.partition(":")
    if namespace.split("~", 1)[0] not in private:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4)
    return f"{key[:start]}{namespace}{sep or ':'}<redacted:{digest.hexdigest()}>"


def namespace_of(key: str, head: str = "") -> str:
    """The namespace part of a key (full, or as the application gave it)."""
    start = len(head) if head and key.startswith(head) else 0
    return key[start:].partition(":")[0].split("~", 1)[0]


def failure(exc: BaseException) -> str:
    """An exception as a record may show it whatever its message holds (a
    value, a row, a key): its class and where it was raised (the innermost
    frame's file, line and function), never its message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return error_name(exc)
    code = tb.tb_frame.f_code
    place = code.co_filename.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{error_name(exc)} at {place}:{tb.tb_lineno} in {code.co_name}"
