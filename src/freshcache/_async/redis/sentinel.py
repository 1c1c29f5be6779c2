"""Redis behind Sentinel: where the primary of a service is, asked each time
a connection is made.

A ``redis+sentinel://`` URL (or an application's Sentinel-managed pool)
names the sentinels, the service and the database. Every pool freshcache
makes from it is redis-py's ``SentinelConnectionPool`` for the primary,
with a ``Sentinel`` manager of its own: a new connection asks the sentinels
where the primary is, a connection that finds a demoted primary (a
``READONLY`` reply) is closed by redis-py and the call fails, and the next
connection goes to the new primary. freshcache adds no failover logic of its
own: its deadlines, its retry policy and its error classes stay as they are
(``MasterNotFoundError`` and the lost connections of a failover are
transient store errors).

The URL::

    redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db]
        [?sentinel_password=...&sentinel_username=...
          &invalidation_replicas=N&<redis:// options>]

The user and password are the Redis nodes'; the sentinels get none unless
``sentinel_password`` (and ``sentinel_username``) say so. A port left out is
26379, the sentinels' own. ``invalidation_replicas`` (1 unless said): every
invalidation waits (``WAIT``) until that many replicas have it, so that a
failover cannot lose one that returned True; 0 turns it off. An
application's Sentinel pool (``client=``) gets the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import NoBackoff

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379
_SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")
INVALIDATION_REPLICAS = 1  # replicas that confirm an invalidation (WAIT)
_MAX_REPLICAS = 16
# Dropped from an application's sentinel settings: freshcache decides them.
_SENTINEL_OURS = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "retry",
        "retry_on_timeout",
        "retry_on_error",
        "health_check_interval",
        "decode_responses",
    }
)


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SCHEME


class Place:
    """The sentinels and the service: where to ask for the primary. The
    sentinels' credentials are behind a function (no ``repr`` shows them)."""

    __slots__ = ("addresses", "invalidation_replicas", "service", "settings")
    addresses: tuple[tuple[str, int], ...]
    service: str
    settings: Callable[[], dict[str, Any]]
    invalidation_replicas: int  # WAIT for this many after an invalidation

    def __init__(
        self, addresses: tuple[tuple[str, int], ...], service: str,
        settings: dict[str, Any], invalidation_replicas: int = INVALIDATION_REPLICAS,
    ) -> None:  # fmt: skip
        frozen = dict(settings)
        self.invalidation_replicas = invalidation_replicas
        self.addresses = addresses
        self.service = service
        self.settings = lambda: dict(frozen)

    def where(self, db: object) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.addresses)
        return f"sentinel {hosts} {self.service}/{db}"

    def __repr__(self) -> str:  # never a password
        return f"Place({self.where('?')})"


def _address(text: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [::1]:26379
        close = text.find("]")
        if close < 0:
            raise ValueError(f"redis+sentinel URL: bad sentinel address {text!r}")
        host, port = text[1:close], text[close + 1 :].removeprefix(":")
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not host:
        raise ValueError("redis+sentinel URL: a sentinel address has no host")
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(
            f"redis+sentinel URL: sentinel port {port!r} is not a number"
        ) from None
    if not 0 < number < 65536:
        raise ValueError(f"redis+sentinel URL: sentinel port {number} out of range")
    return host, number


def parse_sentinel_url(url: str) -> tuple[dict[str, Any], Place]:
    """The Redis nodes' connection settings (``redis://`` options, user and
    password, database) and where the sentinels are. Errors never quote the
    URL's credentials."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    addresses = tuple(_address(h.strip()) for h in hosts.split(",") if h.strip())
    if not addresses:
        raise ValueError("redis+sentinel URL: no sentinel address (host:port,...)")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            "redis+sentinel URL: the path is /service_name or /service_name/db"
        )
    service = path[0]
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"redis+sentinel URL: database {path[1]!r} is not a number")
    query = parse_qsl(parts.query, keep_blank_values=True)
    sentinel: dict[str, Any] = {}
    replicas = INVALIDATION_REPLICAS
    for name, value in query:
        if name in _SENTINEL_OPTIONS:
            sentinel[name.removeprefix("sentinel_")] = value
        elif name == "invalidation_replicas":
            if not value.isdigit() or int(value) > _MAX_REPLICAS:
                raise ValueError(
                    "redis+sentinel URL: invalidation_replicas must be a whole "
                    f"number from 0 to {_MAX_REPLICAS}; got {value!r}"
                )
            replicas = int(value)
    ours = (*_SENTINEL_OPTIONS, "invalidation_replicas")
    rest = urlencode([(n, v) for n, v in query if n not in ours])
    # The nodes' settings as a plain URL says them, without a host.
    plain = "redis://{}{}/{}{}".format(
        f"{userinfo}@" if userinfo else "",
        "placeholder",
        path[1] if len(path) == 2 else "0",
        f"?{rest}" if rest else "",
    )
    kwargs: dict[str, Any] = dict(parse_url(plain))  # type: ignore[no-untyped-call,unused-ignore]
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    return kwargs, Place(addresses, service, sentinel, replicas)


def from_sentinel_pool(
    pool: SentinelConnectionPool,
) -> tuple[dict[str, Any], type[Any], Place]:
    """An application's pool for a service's primary: its nodes' settings,
    connection class and sentinels. A replica's pool is refused (freshcache
    writes)."""
    if not pool.is_master:
        raise TypeError(
            "client= takes a Sentinel client or pool for the primary "
            "(Sentinel.master_for), not a replica's (slave_for): freshcache writes"
        )
    manager = pool.sentinel_manager
    addresses = tuple(
        (
            str(node.connection_pool.connection_kwargs.get("host", "localhost")),
            int(node.connection_pool.connection_kwargs.get("port", DEFAULT_PORT)),
        )
        for node in manager.sentinels
    )
    settings = {
        k: v for k, v in manager.sentinel_kwargs.items() if k not in _SENTINEL_OURS
    }
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"}
    return kwargs, pool.connection_class, Place(addresses, pool.service_name, settings)


class _Pool(SentinelConnectionPool):
    """A pool for the primary whose ``disconnect()`` also closes its own
    manager's connections to the sentinels (the manager is the pool's)."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # not the idle sweep after a primary change
            for node in self.sentinel_manager.sentinels:
                await node.connection_pool.disconnect()


class _BlockingPool(_Pool, BlockingConnectionPool):
    """As ``_Pool``; callers wait (up to ``timeout``) for a free connection."""


def sentinel_pool(
    place: Place, common: dict[str, Any], wait: float | None
) -> SentinelConnectionPool:
    """A new pool for ``place``'s primary with ``common`` (the pool settings
    ``Endpoint.pool`` decided) and a ``Sentinel`` manager of its own, whose
    queries have the same deadlines and no retries."""
    sentinel_settings: dict[str, Any] = {
        "socket_timeout": common["socket_timeout"],
        "socket_connect_timeout": common["socket_connect_timeout"],
        "retry": Retry(NoBackoff(), 0),
        **place.settings(),
    }
    manager = Sentinel(list(place.addresses), sentinel_kwargs=sentinel_settings)
    if wait is None:
        return _Pool(place.service, manager, **common)  # type: ignore[no-untyped-call,unused-ignore]
    return _BlockingPool(place.service, manager, timeout=wait, **common)  # type: ignore[no-untyped-call,unused-ignore]


CONNECTION_CLASS: type[Any] = SentinelManagedConnection
__all__ = ["CONNECTION_CLASS", "SentinelConnectionPool"]
