"""Application events, fanned out to every process over the bus.

``publish`` runs this process's handlers first (so, as with ``invalidate``,
the publisher sees its own effects at once), then sends the event to every
other process, whose handlers run on their bus listener. Delivery to other
processes is at-most-once, like Redis pub/sub: a process that is
disconnected when an event is sent never sees it (it flushes its L1 instead).
A handler that raises is logged and counted (``errors["event_handler"]``);
it never stops the listener or the other handlers.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from freshcache._concurrency import ainvoke
from freshcache._core.events import Message, Origin, encode
from freshcache._core.logs import LogEvent, failure
from freshcache._inproc.logs import Log
from freshcache.metrics import ErrorClass, Metrics

Handler = TypeVar("Handler", bound=Callable[[Any], Any])


class AsyncEvents:
    """``cache.events``: ``@events.on(name)`` handlers and ``publish``."""

    def __init__(
        self,
        *,
        origin: Origin,
        metrics: Metrics,
        send: Callable[[Message], Awaitable[None]],
        on_first_handler: Callable[[], None],
    ) -> None:
        self._origin = origin
        self._metrics = metrics
        self._log = Log("engine")
        self._send = send
        self._on_first_handler = on_first_handler
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {}

    def on(self, name: str) -> Callable[[Handler], Handler]:
        """Register a handler for event ``name`` (in every process that does)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"an event name is a non-empty str, not {name!r}")

        def register(handler: Handler) -> Handler:
            first = not self._handlers
            self._handlers.setdefault(name, []).append(handler)
            if first:
                self._on_first_handler()
            return handler

        return register

    async def publish(self, name: str, payload: Any = None) -> None:
        """Run the handlers here, then in every other process.

        ``payload`` must be JSON (``TypeError`` otherwise, before anything
        runs). Raises ``StoreError`` when Redis cannot be reached.
        """
        message = Message(self._origin.id, event=(name, payload))
        encode(message)  # reject a payload JSON cannot carry, before any handler
        await self.dispatch(name, payload)
        await self._send(message)

    async def dispatch(self, name: str, payload: Any) -> None:
        for handler in list(self._handlers.get(name, ())):
            try:
                await ainvoke(functools.partial(handler, payload))
            except Exception as exc:
                self._metrics.error(ErrorClass.EVENT_HANDLER)
                # where, not what: the message can quote the payload
                self._log.error(
                    LogEvent.EVENT_HANDLER_FAILED,
                    "handler %s for event %r raised %s",
                    getattr(handler, "__qualname__", type(handler).__qualname__),
                    name,
                    failure(exc),
                    error_class=ErrorClass.EVENT_HANDLER.value,
                )
