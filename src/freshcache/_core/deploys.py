"""Several versions of one prefix side by side (a rolling deploy).

Processes with ``version="v1"`` and ``version="v2"`` share a Redis and a bus
channel, but store the same relative key under two heads (``app:v1:`` and
``app:v2:``). An invalidation made under one head must reach the other's
copy. Redis does it inside the invalidation's own script, for every version
in the registry of live versions (``layout.live_key``); the bus does it
here: a receiver maps a key of another version to the same relative key
under its own head and its own namespace version (``local_keys``).

The registry's timing: a process refreshes its version's entry every
``LIVE_REFRESH`` seconds, each entry lasts ``LIVE_TTL`` seconds in Redis
server time, and a process reads Redis only while less than ``LIVE_TTL -
LIVE_MARGIN`` seconds have passed (its own monotonic clock) since a refresh
began. So while any process of a version reads Redis, its version's entry
is live, and every invalidation since has reached its keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

LIVE_TTL: Final = 60.0
"""Seconds a version stays live in the registry without a refresh."""

LIVE_REFRESH: Final = 10.0
"""Seconds between a process's refreshes of its version's entry."""

LIVE_MARGIN: Final = 10.0
"""Seconds before its entry could expire at which a process stops reading
Redis until a refresh lands (room for clocks that run at slightly different
rates, and for the refresh's own round trip)."""

LIVE_RETENTION: Final = 30 * 24 * 3600.0
"""Seconds an expired entry is kept: a version that returns within it is
known to have lapsed (and clears its keys); after it, it counts as new."""

_VERSIONED: Final = re.compile(r"(.+)~([0-9]+)")


def split_head(head: str) -> tuple[str, str]:
    """``"app:v1:"`` -> ``("app", "v1")`` (neither part contains ``:``)."""
    prefix, version, end = head.split(":")
    if end or not prefix or not version:
        raise ValueError(f"not a head: {head!r}")
    return prefix, version


def readings(after_head: str) -> list[tuple[str, str]]:
    """The ``(namespace, remainder)`` pairs a stored key may stand for, given
    what follows its head: the namespace, maybe ``~N`` (its namespace
    version), then the remainder (``""`` or ``:...``).

    Keys built with ``cache.key`` escape ``~``, so their first segment reads
    one way. A raw key whose namespace itself ends in ``~`` and digits reads
    two ways; both are returned (acting on an extra key only costs a miss).
    """
    first, colon, tail = after_head.partition(":")
    remainder = colon + tail
    found = [(first, remainder)]
    match = _VERSIONED.fullmatch(first)
    if match is not None:
        found.append((match.group(1), remainder))
    return found


def versioned_key(head: str, namespace: str, version: int, remainder: str) -> str:
    """The stored key of ``namespace + remainder`` under ``head`` at
    namespace version ``version`` (0: no ``~N``), as ``layout.versioned``."""
    if version:
        return f"{head}{namespace}~{version}{remainder}"
    return head + namespace + remainder


def local_keys(fulls: Iterable[str], head: str, known: Mapping[str, int]) -> list[str]:
    """The keys of this process (head ``head``) that ``fulls`` stand for.

    A key under ``head`` is itself. A key under another version of the same
    prefix maps to the same relative key under ``head``, at the namespace
    version this process uses (``known``); a namespace it has no version for
    has no entry here it could still read, so it maps to nothing. Keys of
    other prefixes map to nothing.
    """
    prefix = head[: head.index(":") + 1]
    mapped: list[str] = []
    for full in fulls:
        if full.startswith(head):
            mapped.append(full)
            continue
        if not full.startswith(prefix):
            continue
        version, colon, after = full[len(prefix) :].partition(":")
        if not colon or not version or "!" in version:
            continue  # not a data key: bookkeeping hangs off "!"
        for namespace, remainder in readings(after):
            ours = known.get(namespace)
            if ours is not None:
                mapped.append(versioned_key(head, namespace, ours, remainder))
    return mapped
