"""The invalidation bus: one Redis pub/sub subscription per cache.

Pub/sub is at-most-once. The listener reports every connection loss
(``on_disconnect``: the cache flushes its L1 and keeps new L1 entries at most
a second) and every (re)subscription (``on_connect``), and reconnects by
itself with jittered backoff. The embedded cache uses ``engine/local_bus.py``: one
process, nothing to deliver.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from freshcache._async.redis.store import AsyncRedisStore
from freshcache._concurrency import AsyncFlag, AsyncWorker
from freshcache._core.events import Message, decode, encode
from freshcache.errors import StoreError
from freshcache.metrics import Metrics

log = logging.getLogger(__name__)
_POLL = 0.25  # seconds a read waits before the loop checks for shutdown
_BACKOFF = (0.05, 0.5)  # reconnect delay bounds, seconds


class AsyncRedisBus:
    """Publishes through the cache's store; listens on a connection of its own."""

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        origin: str,
        store: AsyncRedisStore,
        metrics: Metrics,
        on_message: Callable[[Message], Awaitable[None]],
        on_connect: Callable[[], Any],
        on_disconnect: Callable[[], Any],
        connect_timeout: float = 1.0,
    ) -> None:
        self._url = url
        self._channel = channel
        self._origin = origin
        self._store = store
        self._metrics = metrics
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._connect_timeout = connect_timeout
        self._stop = AsyncFlag()
        self._worker = AsyncWorker(self._listen, name=f"freshcache-bus:{channel}")
        self.connected = False

    def start(self) -> None:
        """Start listening (idempotent; async: needs a running event loop)."""
        if not self._stop.is_set():
            self._worker.start()

    async def publish(self, message: Message) -> None:
        """Send ``message`` to every other process (raises ``StoreError``)."""
        await self._store.publish(self._channel, encode(message))

    async def aclose(self) -> None:
        self._stop.set()
        await self._worker.join(2 * _POLL + self._connect_timeout)
        self._lost()

    def _lost(self) -> None:
        if self.connected:
            self.connected = False
            self._on_disconnect()

    async def _listen(self) -> None:
        delay = _BACKOFF[0]
        while not self._stop.is_set():
            client = Redis.from_url(
                self._url,
                socket_connect_timeout=self._connect_timeout,
                health_check_interval=1,
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
            try:
                await pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = await pubsub.get_message(timeout=_POLL)
                    if message is not None:
                        await self._handle(message)
                        delay = _BACKOFF[0]
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("freshcache: bus connection lost: %s", exc)
                    self._metrics.error("bus_disconnect")
                self._lost()
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                    await client.aclose()
                except (RedisError, OSError):
                    pass
            if not self._stop.is_set():
                await self._stop.wait(random.uniform(delay / 2, delay))
                delay = min(2 * delay, _BACKOFF[1])

    async def _handle(self, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        if kind == "subscribe":
            self.connected = True
            self._on_connect()
            return
        if kind != "message":
            return
        message = decode(raw["data"])
        if message is None:
            self._metrics.error("bus_decode")
            return
        if message.origin == self._origin:
            return  # applied before it was published
        try:
            await self._on_message(message)
        except StoreError:
            self._metrics.error("bus_apply")
