"""Where Redis is and how to reach it: from a URL, or from a client or a
connection pool the application built.

``Endpoint`` keeps what the source says about *where* and *who*: address,
database, credentials (a password, or a ``credential_provider``), TLS
settings, protocol, client name. It drops what freshcache decides itself,
whatever the URL or the client says: how long to wait (its own deadline per
call), whether to retry (never inside redis-py; freshcache has its own
policy), and how replies come back (bytes: freshcache decodes them). Each
pool it makes is new: the application's own client, and its connections,
are never used or closed by freshcache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from freshcache._async.redis import sentinel
from freshcache._async.redis.deadline import with_deadline

# Decided by freshcache, never taken from the source; plus redis-py's
# bookkeeping of one pool (its maintenance-notification handler belongs to
# the pool that made it).
_OURS = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "retry",
        "retry_on_timeout",
        "retry_on_error",
        "health_check_interval",
        "decode_responses",
        "encoding",
        "encoding_errors",
        "maint_notifications_config",
        "maint_notifications_pool_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
        "himport_registry",
    }
)

Client = Redis | ConnectionPool
"""What an application may hand freshcache: a client, or a connection pool."""
Source = str | Client
"""Where to connect: a ``redis://``, ``rediss://``, ``unix://`` or
``redis+sentinel://`` URL, or a ``Client`` (also one for a Sentinel
service's primary)."""


def _sealed(settings: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The settings behind a function: no attribute, ``vars()`` or ``repr``
    of an ``Endpoint`` shows them (they hold the password)."""
    frozen = dict(settings)
    return lambda: dict(frozen)


class Endpoint:
    """Where Redis is. Its ``repr`` shows the address and database; the
    connection settings (with the password) are kept out of sight."""

    __slots__ = ("_settings", "connection_class", "sentinel", "where")
    _settings: Callable[[], dict[str, Any]]
    connection_class: type[Any]
    where: str  # "host:port/db" or the socket path: never a password
    sentinel: sentinel.Place | None  # the sentinels to ask for the primary

    def __init__(self, source: Source | Endpoint) -> None:
        if isinstance(source, Endpoint):  # the same place, the same settings
            self.connection_class = source.connection_class
            self._settings = source._settings  # noqa: SLF001 (the same class)
            self.where = source.where
            self.sentinel = source.sentinel
            return
        self.sentinel = None
        if isinstance(source, str) and sentinel.is_sentinel_url(source):
            kwargs, self.sentinel = sentinel.parse_sentinel_url(source)
            connection_class = sentinel.CONNECTION_CLASS
        elif isinstance(source, str):
            kwargs = dict(parse_url(source))  # type: ignore[no-untyped-call,unused-ignore]
            connection_class = kwargs.pop("connection_class", Connection)
        elif isinstance(
            pool := source.connection_pool if isinstance(source, Redis) else source,
            sentinel.SentinelConnectionPool,
        ):
            kwargs, connection_class, self.sentinel = sentinel.from_sentinel_pool(pool)
        else:
            if type(pool) not in (ConnectionPool, BlockingConnectionPool):
                raise TypeError(
                    "client= takes a redis.asyncio.Redis client, a "
                    "redis.asyncio.ConnectionPool, or a Sentinel primary's (not "
                    f"a cluster or sync one); got {type(source).__module__}."
                    f"{type(source).__name__}"
                )
            kwargs = dict(pool.connection_kwargs)
            connection_class = pool.connection_class
        self.connection_class = connection_class
        settings = {k: v for k, v in kwargs.items() if k not in _OURS}
        self._settings = _sealed(settings)
        self.where = "{}/{}".format(
            settings.get("path")
            or "{}:{}".format(
                settings.get("host", "localhost"), settings.get("port", 6379)
            ),
            settings.get("db", 0),
        )
        if self.sentinel is not None:
            self.where = self.sentinel.where(settings.get("db", 0))

    def __repr__(self) -> str:  # never the password
        return f"Endpoint({self.where})"

    def pool(
        self, *, size: int, timeout: float, wait: float | None = None,
        connect_timeout: float | None = None, health_check: float = 5,
        per_call: bool = True, decode: bool = False, protocol: int | None = None,
    ) -> ConnectionPool:  # fmt: skip
        """A new pool of up to ``size`` connections whose every call ends
        ``timeout`` seconds after it was sent (connecting: ``connect_timeout``,
        by default the same); ``wait``: callers wait up to that long for a
        free connection (else: never); ``health_check``: a connection idle
        that long is pinged before use. ``per_call=False`` (a subscription,
        which waits for messages as long as it lives): ``timeout`` bounds each
        wait for bytes, not a whole call. ``decode``: replies as ``str``.
        ``protocol``: this RESP version, whatever the source says."""
        common: dict[str, Any] = {
            "connection_class": with_deadline(self.connection_class)
            if per_call
            else self.connection_class,
            "max_connections": size,
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout or timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": health_check,
            "decode_responses": decode,
            **self._settings(),
        }
        if protocol is not None:
            common["protocol"] = protocol
        if self.sentinel is not None:
            return sentinel.sentinel_pool(self.sentinel, common, wait)
        if wait is None:
            return ConnectionPool(**common)
        return BlockingConnectionPool(timeout=wait, **common)  # type: ignore[no-untyped-call,unused-ignore]

    def client(self, **pool: Any) -> Redis:
        """A client that owns (and closes) a new ``pool(**pool)``."""
        return Redis.from_pool(self.pool(**pool))
