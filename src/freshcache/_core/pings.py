"""The bus's pings not back yet: when each was sent, and whether one came
back while an older one never did (a gap: messages may have been lost).

Pure bookkeeping for ``_async/redis/bus.py``: the pinger calls ``sent``
before each PUBLISH (or instead of it, when the ping cannot be sent), the
listener ``back`` when a ping arrives. The sync bus calls them from two
threads: each step copies the keys in one call (``list``) rather than
iterating the dict while the other thread may add to it.
"""

from __future__ import annotations

from typing import NamedTuple

KEPT = 256  # pings awaited at most (the oldest are dropped past that)


class Back(NamedTuple):
    """A ping that came back: when it was sent (None: not one we await, e.g.
    sent before a reconnect) and whether an older ping is still missing."""

    sent: float | None
    gap: bool


class Pings:
    __slots__ = ("_kept", "_sent")

    def __init__(self, kept: int = KEPT) -> None:
        if kept < 1:
            raise ValueError("kept must be >= 1")
        self._kept = kept
        self._sent: dict[int, float] = {}  # ping number -> when it was sent

    def sent(self, number: int, at: float) -> None:
        """Ping ``number`` is sent now (``at``), or would have been."""
        self._sent[number] = at
        if len(self._sent) > self._kept:
            self._sent.pop(min(list(self._sent)), None)

    def back(self, number: int) -> Back:
        """Ping ``number`` came back: stop awaiting it and every older one."""
        at = self._sent.pop(number, None)
        if at is None:
            return Back(None, gap=False)
        missing = [n for n in list(self._sent) if n < number]
        for older in missing:
            self._sent.pop(older, None)
        return Back(at, gap=bool(missing))

    def clear(self) -> None:
        """Reconnected (or never connected): nothing is awaited."""
        self._sent.clear()
