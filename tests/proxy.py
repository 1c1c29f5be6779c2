"""A TCP proxy in front of a server that can slow down what the server sends.

``DelayProxy(port)`` listens on a free port of its own and forwards every
connection to ``127.0.0.1:port``. While ``delay`` is above zero, every chunk
the server sends reaches the client that many seconds later (in order; the
delay does not add up across chunks): a slow network or a slow server, for
every connection at once, the pub/sub one included. While ``trickle`` is
above zero, those bytes go out one at a time, ``trickle`` seconds apart (a
link that keeps a connection alive but barely moves). Client bytes go
through at once.

While ``blackhole`` is True, bytes in both directions are dropped as they
come: connections stay open (new ones are accepted too) and nothing
arrives, like a route that went dead. While ``drop_replies`` is True, only
the server's bytes are dropped: commands reach the server and run, and the
client never hears back (lost replies). Dropped bytes are gone for good, so
a connection that lost some mid-reply is out of step with its server: the
client must drop it (redis-py does, at the timeout its read runs into).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from collections.abc import Iterator


class DelayProxy:
    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.delay = 0.0
        self.trickle = 0.0
        self.blackhole = False
        self.drop_replies = False
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(
            target=self._accept, name="proxy-accept", daemon=True
        )
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        self._accepter.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:  # the server is gone (or going): so is this one
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._closed.is_set():  # ``close`` ran meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for target, name in (
                (self._upstream, "proxy-up"),
                (self._downstream, "proxy-down"),
            ):
                threading.Thread(
                    target=target, args=(client, server), name=name, daemon=True
                ).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        """Client bytes to the server, at once (or dropped)."""
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                if not self.blackhole:
                    server.sendall(chunk)
        _shut(server)

    def _downstream(self, client: socket.socket, server: socket.socket) -> None:
        """Server bytes to the client, each chunk ``delay`` later, in order
        (a chunk is never due before the one ahead of it), or dropped."""
        due: collections.deque[tuple[float, bytes]] = collections.deque()
        ready = threading.Condition()
        done = threading.Event()

        def deliver() -> None:
            with contextlib.suppress(OSError):
                while True:
                    with ready:
                        while not due and not done.is_set():
                            ready.wait(0.05)
                        if not due:
                            break
                        when, chunk = due[0]
                        wait = when - time.monotonic()
                        if wait > 0:
                            ready.wait(wait)
                            continue
                        due.popleft()
                    if self.trickle > 0:
                        for i in range(len(chunk)):
                            client.sendall(chunk[i : i + 1])
                            time.sleep(self.trickle)
                    else:
                        client.sendall(chunk)
            _shut(client)

        sender = threading.Thread(target=deliver, name="proxy-deliver", daemon=True)
        sender.start()
        last = 0.0
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                if self.blackhole or self.drop_replies:
                    continue
                last = max(last, time.monotonic() + self.delay)
                with ready:
                    due.append((last, chunk))
                    ready.notify()
        done.set()
        with ready:
            ready.notify()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def delay_proxy(target_port: int) -> Iterator[DelayProxy]:
    proxy = DelayProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
