"""Messages on the invalidation bus: what they say, and their wire form.

One JSON object per message (small, and readable with ``redis-cli
SUBSCRIBE``). Each carries the sender's origin id so a process can skip its
own messages (it applied them before publishing). A message that does not
decode is dropped by the receiver (and counted): ``decode`` never raises,
whatever the bytes (``Infinity`` as a version, nesting deep enough to
exhaust the parser, invalid UTF-8, ...).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

FORMAT = 1


class Origin:
    """Who sends a message: one cache in one process (``id``, random). A
    forked child takes a new one (``renew``): with its parent's, each would
    skip the other's messages as its own."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex

    def renew(self) -> None:
        self.id = uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Message:
    origin: str
    keys: tuple[str, ...] = ()  # full data keys to drop
    tags: tuple[str, ...] = ()  # tags whose dependents to drop
    namespaces: tuple[tuple[str, int], ...] = ()  # (namespace, new version)
    flush: bool = False  # drop every L1 entry
    event: tuple[str, Any] | None = None  # an application event: (name, payload)
    fills: tuple[str, ...] = ()  # full keys just filled: wake their waiters
    head: str = ""  # the sender's prefix:version: (sent with namespaces)


def encode(message: Message) -> bytes:
    """The wire form; raises ``TypeError`` for an event payload JSON cannot hold."""
    body: dict[str, Any] = {"v": FORMAT, "o": message.origin}
    if message.keys:
        body["k"] = list(message.keys)
    if message.tags:
        body["t"] = list(message.tags)
    if message.namespaces:
        body["n"] = [list(pair) for pair in message.namespaces]
    if message.flush:
        body["f"] = 1
    if message.event is not None:
        body["e"] = list(message.event)
    if message.fills:
        body["l"] = list(message.fills)
    if message.head:
        body["h"] = message.head
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise TypeError(f"bus message is not JSON: {exc}") from exc


def decode(data: bytes | str) -> Message | None:
    """The message in ``data``, or None when it is not one of ours."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("v") != FORMAT:
            return None
        origin = body["o"]
        keys = tuple(body.get("k", ()))
        tags = tuple(body.get("t", ()))
        fills = tuple(body.get("l", ()))
        namespaces = tuple((str(ns), int(v)) for ns, v in body.get("n", ()))
        event = body.get("e")
        if event is not None:
            name, payload = event
            event = (str(name), payload)
        if not isinstance(origin, str) or not all(
            isinstance(s, str) for s in keys + tags + fills
        ):
            return None
        if not all(0 <= v < 1 << 63 for _, v in namespaces):
            return None
        flush = bool(body.get("f"))
        head = body.get("h", "")
        if not isinstance(head, str):
            return None
        return Message(origin, keys, tags, namespaces, flush, event, fills, head)
    except Exception:  # any bytes at all: what does not decode is not ours
        return None
