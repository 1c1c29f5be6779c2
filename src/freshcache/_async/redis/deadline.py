"""One deadline for a whole call, not one per read from the socket.

redis-py's ``socket_timeout`` bounds each wait for bytes. The asyncio client
reads a whole reply under it; the sync client reads chunk by chunk, each
chunk under its own ``socket_timeout``, so a link that trickles a byte every
20 ms never times out: one sync GET of 2 KB took 20 to 40 s. ``with_deadline``
gives a connection class a deadline per command: sending one starts it
(``socket_timeout`` from then), and on the sync client every wait for its
reply, however many chunks it comes in, waits only what is left of it. A
pipeline is one send: its replies share one deadline.

The asyncio twin has no socket (redis-py reads a stream under its own
timeout per reply): there ``_connect`` returns nothing and nothing changes.
A call of one reply then has one deadline already; the store runs each
pipeline under ``adeadline`` (``freshcache._concurrency``), one deadline for
all its replies.
"""

from __future__ import annotations

import math
import socket
import time
from typing import Any

from redis.asyncio.connection import AbstractConnection

_classes: dict[type[Any], type[Any]] = {}


def with_deadline(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """``cls`` (a plain, TLS or unix-socket connection class, as the URL
    chose) with a deadline per call."""
    made = _classes.get(cls)
    if made is None:
        made = _classes[cls] = type(f"Deadline{cls.__name__}", (_Deadline, cls), {})
    return made


class _Deadline(AbstractConnection):
    _deadline_socket: _DeadlineSocket | None = None

    async def _connect(self) -> Any:
        sock = await super()._connect()  # type: ignore[func-returns-value,safe-super,no-untyped-call,unused-ignore]
        if sock is None:  # redis.asyncio: a reader and a writer, no socket
            return None
        self._deadline_socket = _DeadlineSocket(sock)
        return self._deadline_socket

    async def send_packed_command(
        self, command: Any, check_health: bool = True
    ) -> None:
        if self._deadline_socket is not None:
            budget = self.socket_timeout
            self._deadline_socket.deadline = (
                math.inf if budget is None else time.monotonic() + budget
            )
        await super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call,unused-ignore]


class _DeadlineSocket:
    """A socket whose reads end at ``deadline`` (monotonic) whatever their own
    timeout says; everything else goes to the socket it wraps."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()  # what redis-py asked for
        self.deadline = math.inf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _bounded(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("freshcache: the call's deadline has passed")
        asked = self._timeout
        if left != math.inf:
            self._sock.settimeout(left if asked is None else min(asked, left))

    # The arguments go through as given (plain and TLS sockets differ in
    # their defaults).
    def recv(self, *args: Any) -> bytes:
        data: bytes = self._read(self._sock.recv, args)
        return data

    def recv_into(self, *args: Any) -> int:
        count: int = self._read(self._sock.recv_into, args)
        return count

    def _read(self, read: Any, args: tuple[Any, ...]) -> Any:
        self._bounded()
        try:
            return read(*args)
        finally:
            self._sock.settimeout(self._timeout)
