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

A ``redis+cluster://`` (``rediss+cluster://``) URL names a Redis Cluster by
its startup nodes, ``redis+cluster://[user:password@]host:port,host:port/``:
``cluster_client`` builds redis-py's own cluster client on them (redis-py
routes every command), and ``pool``/``client`` give a plain connection to
one startup node, the next one at each call (the bus listens there:
PUBLISH reaches every node of a cluster). Its ``?invalidation_replicas=N``
is freshcache's own (``cluster_replicas``): how many replicas of each
primary confirm an invalidation's deletions (``WAIT``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, parse_url
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
``redis+sentinel://`` or ``redis+cluster://`` URL, or a ``Client`` (also
one for a Sentinel service's primary)."""

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""URL schemes of a Redis Cluster (``rediss+``: over TLS)."""
_MAX_REPLICAS = 16  # invalidation_replicas past this is a typo, not a plan


def _replicas_option(query: str) -> tuple[str, int | None]:
    """``query`` without ``invalidation_replicas``, and its value (``None``
    when absent: wait for one replica where the primary has one)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    replicas: int | None = None
    for name, value in pairs:
        if name == "invalidation_replicas":
            if not value.isdigit() or int(value) > _MAX_REPLICAS:
                raise ValueError(
                    "redis+cluster URL: invalidation_replicas must be a whole "
                    f"number from 0 to {_MAX_REPLICAS}; got {value!r}"
                )
            replicas = int(value)
    rest = [(n, v) for n, v in pairs if n != "invalidation_replicas"]
    return urlencode(rest), replicas


def _cluster_nodes(
    url: str,
) -> tuple[str, tuple[tuple[str, int], ...], int | None]:
    """A cluster URL's startup nodes, the URL of its first node (which
    ``parse_url`` reads for the credentials and the TLS settings), and its
    ``invalidation_replicas`` (``None`` if not given). Raises ``ValueError``
    naming what is wrong, never the password."""
    scheme, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    query = ""
    if not slash:
        netloc, _, query = netloc.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), "6379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                "a cluster URL lists its nodes as host:port,host:port; "
                f"got a node {unquote(item.strip())!r}"
            )
        nodes.append((host, int(port)))
    db, _, tail_query = tail.partition("?")
    if db not in ("", "0"):
        raise ValueError("a Redis Cluster has database 0 only; drop the /db")
    rest, replicas = _replicas_option(tail_query if slash else query)
    first = "{}://{}{}{}:{}/{}{}".format(
        "rediss" if scheme.startswith("rediss") else "redis",
        userinfo, at, f"[{nodes[0][0]}]" if ":" in nodes[0][0] else nodes[0][0],
        nodes[0][1], db, "?" + rest if rest else "",
    )  # fmt: skip
    return first, tuple(nodes), replicas


def _sealed(settings: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The settings behind a function: no attribute, ``vars()`` or ``repr``
    of an ``Endpoint`` shows them (they hold the password)."""
    frozen = dict(settings)
    return lambda: dict(frozen)


class Endpoint:
    """Where Redis is. Its ``repr`` shows the address and database; the
    connection settings (with the password) are kept out of sight."""

    __slots__ = (
        "_next", "_settings", "cluster_replicas", "connection_class", "nodes",
        "sentinel", "where",
    )  # fmt: skip
    _settings: Callable[[], dict[str, Any]]
    connection_class: type[Any]
    where: str  # "host:port/db" or the socket path: never a password
    sentinel: sentinel.Place | None  # the sentinels to ask for the primary
    nodes: tuple[tuple[str, int], ...]  # a cluster's startup nodes; () if none
    # A cluster's invalidation_replicas: WAIT for that many replicas of each
    # primary after an invalidation's deletions; None: 1 where the primary has one.
    cluster_replicas: int | None
    _next: list[int]  # the startup node the next plain connection goes to

    def __init__(self, source: Source | Endpoint) -> None:
        self._next = [0]
        if isinstance(source, Endpoint):  # the same place, the same settings
            self.connection_class = source.connection_class
            self._settings = source._settings  # noqa: SLF001 (the same class)
            self.where = source.where
            self.sentinel = source.sentinel
            self.nodes = source.nodes
            self.cluster_replicas = source.cluster_replicas
            self._next = [random.randrange(len(self.nodes) or 1)]
            return
        self.sentinel = None
        self.nodes = ()
        self.cluster_replicas = None
        if isinstance(source, str) and source.startswith(CLUSTER_SCHEMES):
            source, self.nodes, self.cluster_replicas = _cluster_nodes(source)
            self._next = [random.randrange(len(self.nodes))]
        kwargs: dict[str, Any]
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
        if self.nodes:
            self.where = "cluster " + ",".join(f"{h}:{p}" for h, p in self.nodes)

    def __repr__(self) -> str:  # never the password
        return f"Endpoint({self.where})"

    @property
    def cluster(self) -> bool:
        """Whether this is a Redis Cluster (``cluster_client``)."""
        return bool(self.nodes)

    def cluster_client(
        self, *, size: int, timeout: float, health_check: float = 5,
        decode: bool = False, protocol: int | None = None,
    ) -> RedisCluster:  # fmt: skip
        """redis-py's cluster client on the startup nodes: up to ``size``
        connections per node, every reply within ``timeout`` seconds, and no
        retry of its own (``retry`` with 0 retries: a connection error or a
        timeout, CLUSTERDOWN, a slot not covered, reach freshcache at once,
        whose policy decides). Redirections are still followed inside one
        call (MOVED, ASK, and TRYAGAIN after a short wait), at most redis-py's
        ``RedisClusterRequestTTL`` (16) of them: that is routing, not a
        retry, and the store bounds the whole call by its deadline."""
        settings = self._settings()
        for key in ("host", "port", "db", "path"):
            settings.pop(key, None)
        if protocol is not None:  # this RESP version, whatever the URL says
            settings["protocol"] = protocol
        tls = issubclass(self.connection_class, SSLConnection)
        if tls:
            settings["ssl"] = True
        # The sync client's connections keep a deadline per call; the asyncio
        # one reads each reply under its own timeout already, and takes no
        # connection class.
        extra: dict[str, Any] = {
            "connection_class": with_deadline(self.connection_class)
        }
        extra = {}  # unasync: skip
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.nodes],  # type: ignore[no-untyped-call,unused-ignore]
            max_connections=size,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=health_check,
            decode_responses=decode,  # True: replies as str
            **settings,
            **extra,
        )

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
        if self.nodes:  # one node of a cluster: the next startup node
            index = self._next[0] % len(self.nodes)
            self._next[0] = index + 1
            common["host"], common["port"] = self.nodes[index]
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
