"""The embedded cache's bus: every reader is in this process, so there is
nobody to tell (and no Redis to import)."""

from __future__ import annotations

from freshcache._core.events import Message


class LocalBus:
    """The bus of a cache without Redis: always connected, sends nothing."""

    connected = True
    watermark = float("inf")  # one process: every invalidation is applied
    lag = None  # no pings: nothing travels

    def start(self) -> None:
        pass

    async def publish(self, message: Message, *, hard: bool = False) -> None:
        pass

    async def aclose(self) -> None:
        pass
