"""The invalidation bus: one Redis pub/sub subscription per cache.

Pub/sub is at-most-once and its delivery time is unbounded under load. The
listener reports every connection loss (``on_disconnect``) and every
(re)subscription (``on_connect``: the cache flushes its L1, since messages
sent meanwhile are lost), and reconnects by itself with jittered backoff.

The watermark. The same connection also subscribes to a channel of this
process's own, and a pinger publishes a numbered ping to it every
``ping_every`` seconds, noting when it sent each. Redis appends every
published message to each subscriber's connection the moment it runs the
PUBLISH, one command at a time, so a connection receives messages in the
order their PUBLISHes ran, across channels; and the listener applies them
one after the other. So when ping ``n`` comes back, every invalidation whose
PUBLISH ran before ping ``n``'s has been applied here, and in particular
every invalidation that *returned* (in any process) before ping ``n`` was
sent. ``watermark`` is the send time of the newest ping back (this
process's monotonic clock; -inf while unsubscribed). A read may use
in-process state at ``now`` only while ``now - watermark`` is under its
bound (docs/coherence.md has the proof and where it ends).

Gaps. Pings come back in the order they were sent, unless messages were
lost on the way without the connection dropping: on a Redis Cluster a
node forwards each PUBLISH to the others over its cluster-bus links, and
a node that dies (or a link that is reset) loses what it had not yet
forwarded; the bus channel's slot moving to another node (a failover, a
resharding) leaves messages sent to the old and the new node unordered.
So when ping ``n`` comes back while an older ping is still missing (lost,
overtaken, not sent because the circuit was open, or its PUBLISH failed),
the listener calls ``on_gap`` (the cache drops its in-process state, as on
a resubscription) before the watermark moves to ``n``.

The embedded cache uses ``engine/local_bus.py``: one process, nothing to
deliver, and no watermark to wait for.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from freshcache._async.redis.connect import Endpoint
from freshcache._async.redis.store import (
    AsyncRedisStore,
    classify,
    refused_by_acl,
)
from freshcache._concurrency import AsyncFlag, AsyncLoopOwner, AsyncWorker
from freshcache._core.clock import Clock
from freshcache._core.events import Message, Origin, decode, encode
from freshcache._core.logs import LogEvent, failure
from freshcache._core.pings import Pings
from freshcache._inproc.logs import Log
from freshcache.errors import StoreError
from freshcache.metrics import ErrorClass, Event, Metrics, Operation

_POLL = 0.25  # seconds a read waits before the loop checks for shutdown
_BACKOFF = (0.05, 0.5)  # reconnect delay bounds, seconds
# A link that went dead without a reset (a dropped route, a paused server)
# raises nothing: a read with a timeout just finds no message. So the
# listener pings on its own connection after a second of quiet, and gives the
# connection up once nothing at all came for ``_SILENCE`` seconds (for
# ``connect_timeout`` until its subscription is confirmed).
_QUIET = 1.0  # seconds without a message before the listener pings
_SILENCE = 5.0  # seconds without a byte before the connection is given up
_LOUD_EVERY = 60.0  # seconds between logs of an ACL refusal


class AsyncRedisBus:
    """Publishes through the cache's store; listens on a connection of its own."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        channel: str,
        origin: Origin,
        store: AsyncRedisStore,
        metrics: Metrics,
        on_message: Callable[[Message], Awaitable[None]],
        on_connect: Callable[[], Any],
        on_disconnect: Callable[[], Any],
        on_gap: Callable[[], Any],
        clock: Clock,
        ping_channel: Callable[[str], str],
        ping_every: float = 0.025,
        connect_timeout: float = 1.0,
        owner: AsyncLoopOwner,
    ) -> None:
        self._endpoint = endpoint
        self._channel = channel
        self._origin = origin
        self._store = store
        self._metrics = metrics
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_gap = on_gap
        self._connect_timeout = connect_timeout
        self._stop = AsyncFlag()
        self._worker = AsyncWorker(self._listen, name=f"freshcache-bus:{channel}")
        self._pinger = AsyncWorker(self._ping, name=f"freshcache-ping:{channel}")
        owner.on_change(self._reset)
        owner.on_end(self._end)
        self._ping_channel_of = ping_channel  # origin id -> its ping channel
        self._ping_channel = ping_channel(origin.id)
        self._ping_key = self._ping_channel.encode()
        self._ping_every = ping_every
        self._mono = clock.monotonic
        self._pings = Pings()  # sent, not back yet
        self._numbers = itertools.count(1)  # next() is atomic: pings are unique
        self.connected = False
        self._log = Log("bus", tier="bus", now=clock.monotonic)
        self._was_lost = False  # a reconnection is INFO, the first connection DEBUG
        # Every invalidation that returned before this (monotonic) time has
        # been applied here; -inf: nothing is known.
        self.watermark = -math.inf
        self.lag: float | None = None  # the last ping's round trip, seconds

    def start(self) -> None:
        """Start listening (idempotent; async: needs a running event loop)."""
        if not self._stop.is_set():
            self._worker.start()
            self._pinger.start()

    def _reset(self) -> None:
        """A new event loop, or a forked child: the listener and the pinger
        belong to the old loop (or to the parent, where they still run).
        Unsubscribed here until ``start`` runs again (after ``aclose`` too:
        a cache can be reopened)."""
        self._stop = AsyncFlag()
        self._worker = AsyncWorker(self._listen, name=self._worker.name)
        self._pinger = AsyncWorker(self._ping, name=self._pinger.name)
        self._ping_channel = self._ping_channel_of(self._origin.id)  # new if forked
        self._ping_key = self._ping_channel.encode()
        self.connected = False  # not a disconnection here: never subscribed
        self.watermark = -math.inf
        self.lag = None
        self._pings.clear()

    async def _end(self) -> None:
        """The event loop is ending (its tasks are being cancelled): let the
        listener and the pinger return by themselves too, since a read of
        redis-py's can swallow the cancellation meant to end them, and the
        loop would then wait for them forever."""
        self._stop.set()
        await self._worker.join(2 * _POLL + self._connect_timeout)
        await self._pinger.join(2 * _POLL + self._connect_timeout)

    async def publish(self, message: Message, *, hard: bool = False) -> None:
        """Send ``message`` to every other process (raises ``StoreError``);
        ``hard``: an invalidation, sent on the invalidation path."""
        await self._store.publish(self._channel, encode(message), hard=hard)

    async def aclose(self) -> None:
        self._stop.set()
        await self._worker.join(2 * _POLL + self._connect_timeout)
        await self._pinger.join(2 * _POLL + self._connect_timeout)
        self._lost()

    def _lost(self) -> None:
        self.watermark = -math.inf  # what is sent now may never arrive
        self._pings.clear()
        if self.connected:
            self.connected = False
            self._on_disconnect()

    async def _ping(self) -> None:
        """Ping every ``ping_every`` while subscribed (and once on subscribing,
        from the listener: a new process need not wait a period)."""
        while not await self._stop.wait(self._ping_every):
            if self.connected:
                await self._send_ping()

    async def _send_ping(self) -> None:
        number = next(self._numbers)
        sent = self._mono()  # before the PUBLISH runs: the watermark is safe
        # Every ping is awaited, sent or not: one that never comes back makes
        # the next one that does a gap (``_pinged``).
        self._pings.sent(number, sent)
        if not self._store.circuit_closed():
            return  # Redis failed: a read probes it; the watermark waits
        self._metrics.latency(Operation.WATERMARK_AGE, sent - self.watermark)
        try:
            await self._store.publish(self._ping_channel, b"%d" % number)
        except StoreError:
            self._metrics.error(ErrorClass.BUS_PING)

    def _pinged(self, data: Any) -> None:
        """Our ping came back: everything published before it was applied."""
        try:
            seq = int(data)
        except (TypeError, ValueError):
            self._metrics.error(ErrorClass.BUS_DECODE)
            return
        sent, gap = self._pings.back(seq)
        if sent is None:  # sent before a reconnect, or not ours
            return
        if gap:  # messages may have been lost: drop what they covered
            self._metrics.count(Event.BUS_GAP)
            self._on_gap()
        self.lag = self._mono() - sent
        if sent > self.watermark:
            self.watermark = sent

    async def _listen(self) -> None:
        delay = _BACKOFF[0]
        while not self._stop.is_set():
            client = self._endpoint.client(
                size=2,
                timeout=_SILENCE,  # a send, or a reply while connecting
                connect_timeout=self._connect_timeout,
                health_check=0,  # the listener pings by itself (``_silent``)
                per_call=False,
            )
            pubsub = client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
            try:
                await pubsub.subscribe(self._channel, self._ping_channel)
                heard = pinged = time.monotonic()
                while not self._stop.is_set():
                    message = await pubsub.get_message(timeout=_POLL)
                    now = time.monotonic()
                    if message is not None:  # a pong counts too
                        heard = now
                        await self._handle(message)
                        delay = _BACKOFF[0]
                    elif now - heard >= (limit := self._silence()):
                        raise TimeoutError(f"nothing came for {limit:g} s")
                    elif now - max(heard, pinged) >= _QUIET:
                        pinged = now
                        await pubsub.ping()
            except (RedisError, OSError) as exc:
                if refused_by_acl(exc):  # retried, but never silently
                    self._refused(exc)
                elif self.connected:
                    self._was_lost = True
                    self._log.warning(
                        LogEvent.BUS_LOST,
                        "bus connection lost (%s); L1 serves nothing until it is back",
                        classify(exc),
                        error_class=ErrorClass.BUS_DISCONNECT.value,
                    )
                    self._metrics.error(ErrorClass.BUS_DISCONNECT)
                self._lost()
            except Exception as exc:  # a bug of ours: never a silent, dead listener
                self._was_lost = True
                self._log.error(
                    LogEvent.BUS_BUG,
                    "bus listener failed (%s); reconnecting",
                    failure(exc),
                    error_class=ErrorClass.BUS_LISTENER.value,
                )
                self._metrics.error(ErrorClass.BUS_LISTENER)
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

    def _refused(self, exc: BaseException) -> None:
        """The ACL refuses the subscription (SUBSCRIBE, or the channels):
        counted each time, logged at ERROR at most once a minute. L1 serves
        nothing meanwhile (no watermark), so the cache is slower, not wrong."""
        self._metrics.error(ErrorClass.CONFIG)
        self._metrics.error(ErrorClass.ACL)
        self._log.error(
            LogEvent.BUS_REFUSED,
            "the invalidation bus cannot subscribe: %s",
            classify(exc),
            error_class=ErrorClass.ACL.value,
            every=_LOUD_EVERY,
        )

    def _silence(self) -> float:
        """How long the connection may stay silent: until subscribed, the
        subscription is part of connecting."""
        return _SILENCE if self.connected else self._connect_timeout

    async def _handle(self, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        channel = raw.get("channel")
        if kind == "subscribe":
            if channel == self._ping_key:  # both subscribed: learn the watermark
                await self._send_ping()
            else:  # the invalidation channel: flush
                self.connected = True
                self._on_connect()
                self._log.emit(
                    logging.INFO if self._was_lost else logging.DEBUG,
                    LogEvent.BUS_CONNECTED,
                    "bus %s",
                    "reconnected" if self._was_lost else "connected",
                )
                self._was_lost = False
            return
        if kind != "message":
            return
        if channel == self._ping_key:
            self._pinged(raw.get("data"))
            return
        message = decode(raw["data"])
        if message is None:
            self._metrics.error(ErrorClass.BUS_DECODE)
            self._log.warning(
                LogEvent.BUS_DECODE_ERROR,
                "a bus message is not one of ours: ignored",
                error_class=ErrorClass.BUS_DECODE.value,
            )
            return
        if message.origin == self._origin.id:
            return  # applied before it was published
        try:
            await self._on_message(message)
        except StoreError:
            self._metrics.error(ErrorClass.BUS_APPLY)
        except Exception as exc:  # the listener lives on; the message is counted
            self._log.error(
                LogEvent.BUS_BUG,
                "a bus message could not be applied (%s)",
                failure(exc),
                error_class=ErrorClass.BUS_APPLY.value,
            )
            self._metrics.error(ErrorClass.BUS_APPLY)
