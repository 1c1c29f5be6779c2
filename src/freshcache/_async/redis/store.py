"""The Redis tier: one round trip per hit, own deadlines, errors sorted by class.

Every call is bounded by ``timeout`` (connect, read and the wait for a free
connection alike; never redis-py's 5 s defaults, never its retries), goes
through a circuit breaker, and raises only ``freshcache.errors.StoreError``
subclasses. Invalidations (deletes, tag and version writes, their PUBLISH)
are the exception: their own small pool, a deadline per attempt, and
retries until ``invalidation_budget`` is spent, whatever the breaker says
(``_run_hard``). The connection pool is redis-py's plain one, sized to
``max_connections``, behind our own slot counter: callers wait for a slot
at most ``timeout`` (redis-py's own pool would raise past its size, and its
blocking pool costs tens of microseconds per call).

On a Redis Cluster (a ``redis+cluster://`` URL) the clients are redis-py's
cluster clients (``_async/redis/cluster.py``), which route every command;
the store sends no command whose keys span slots, and runs the scripts that
reach every live version as single-slot steps (``_cluster_invalidate``,
``_cluster_bump``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from freshcache._async.redis.cluster import (
    AsyncClusterScript,
    AsyncLazyCluster,
    UnreplicatedError,
)
from freshcache._async.redis.connect import Endpoint, Source
from freshcache._concurrency import (
    AsyncBackground,
    AsyncFlag,
    AsyncLoopOwner,
    AsyncSingleFlight,
    AsyncSlots,
    AsyncWorker,
    adeadline,
    alock,
    asleep,
)
from freshcache._core import lua
from freshcache._core.clock import Clock, ServerTime, SystemClock
from freshcache._core.codec.envelope import Codec, Undecodable
from freshcache._core.deploys import (
    LIVE_MARGIN,
    LIVE_REFRESH,
    LIVE_RETENTION,
    LIVE_TTL,
    readings,
    split_head,
)
from freshcache._core.entry import Hit, px
from freshcache._core.layout import (
    bus_channel,
    cluster_lapsed_key,
    cluster_live_key,
    epoch_key,
    lapsed_key,
    lease_key,
    live_key,
    namespace_version_key,
    pending_key,
    read_counter,
    tag_key,
    taken_key,
)
from freshcache._core.logs import LogEvent, Transitions, namespace_of, scrub
from freshcache._core.policy import Breaker, BreakerState
from freshcache._core.renewals import RETRY, Renewals
from freshcache._core.retry import retry_delay
from freshcache._core.sentinels import MISS, Miss
from freshcache._inproc.live import lease_token
from freshcache._inproc.logs import Log
from freshcache.errors import (
    CacheClosedError,
    CapacityStoreError,
    CircuitOpenError,
    ConfigStoreError,
    StoreError,
    TransientStoreError,
)
from freshcache.metrics import ErrorClass, Event, Metrics, Operation, Tier

T = TypeVar("T")
_LOUD_EVERY = 60.0  # seconds between repeated loud logs of one error class
_HARD_CONNECTIONS = 4  # the invalidation path's own pool
_HARD_BACKOFF = (0.01, 0.2)  # an invalidation's retry_delay: first, cap (s)


ACL_HINT = "docs/security.md lists the ACL rules per feature"


def _reply(message: str) -> str:
    """The server's reply in a redis-py message (after a pipeline's
    "Command # N (...) of pipeline caused error: ")."""
    return message.rpartition("of pipeline caused error: ")[2]


def refused_by_acl(exc: BaseException) -> bool:
    """A NOPERM reply: the command, a key or a channel is outside the
    user's ACL rules (also when a command inside a Lua script is)."""
    if isinstance(exc, NoPermissionError):
        return True
    # Inside a script Redis 7.0 answers ERR, not NOPERM: "The user executing
    # the script can't run this command or subcommand" (or "can't access at
    # least one of the keys", "can't publish to the channel").
    message = _reply(str(exc))
    return isinstance(exc, ResponseError) and message.startswith(
        ("NOPERM", "The user executing the script can't")
    )


def failover_sign(exc: BaseException) -> str | None:
    """The counter (``errors[...]``) of a primary changing or gone: a
    ``READONLY`` reply (a demoted primary, or a replica), redis-py's report
    of one under Sentinel, or no primary the sentinels agree on. These are
    transient (``classify``): the next connection goes to the new primary."""
    if isinstance(exc, MasterNotFoundError):
        return "failover:no_primary"
    if isinstance(exc, ReadOnlyError) or "previous master is now a slave" in str(exc):
        return "failover:readonly"
    return None


# Redis Cluster replies, by their first word: what each counts as in
# ``errors["cluster:<name>"]``. All are transient (a retry, after the
# cluster's slot map settles or a failover ends, can succeed) except
# CROSSSLOT, a command whose keys span slots: a bug, loud.
_CLUSTER_REPLIES = {
    "MOVED": "moved",
    "ASK": "ask",
    "TRYAGAIN": "tryagain",
    "CLUSTERDOWN": "clusterdown",
    "MASTERDOWN": "clusterdown",
    "READONLY": "readonly",
    "CROSSSLOT": "crossslot",
}


_CLUSTER_CLASSES: tuple[tuple[type[ResponseError], str], ...] = (
    (MovedError, "moved"),  # before AskError: a MovedError is one
    (AskError, "ask"),
    (TryAgainError, "tryagain"),
    (ClusterDownError, "clusterdown"),  # MasterDownError too
    (ReadOnlyError, "readonly"),
    (ClusterCrossSlotError, "crossslot"),
)


def cluster_error(exc: BaseException) -> str | None:
    """The name a Redis Cluster error counts under (``errors["cluster:<name>"]``),
    or None for any other error. READONLY counts here too: a write that
    reached a replica, as after a failover (on a single Redis as well)."""
    if isinstance(exc, ResponseError):
        # redis-py's own classes drop the first word from the message.
        for kind, name in _CLUSTER_CLASSES:
            if isinstance(exc, kind):
                return name
        return _CLUSTER_REPLIES.get(str(exc).split(" ", 1)[0])
    if isinstance(exc, ClusterError):  # "TTL exhausted": redirected too often
        return "redirects"
    if isinstance(exc, RedisClusterException):  # no node reachable, slot uncovered
        return "unreachable"
    return None


def scrubbed(exc: BaseException) -> str:
    """``str(exc)`` without what no record or message may show (a URL's
    password, the command and arguments redis-py quotes in a pipeline's
    error: ``_core/logs.scrub``). The exception's own message is scrubbed
    in place too: it is kept as the ``__cause__`` of the error raised, and
    a traceback would print it."""
    text = str(exc)
    clean = scrub(text)
    if clean != text and exc.args and isinstance(exc.args[0], str):
        exc.args = (scrub(exc.args[0]), *exc.args[1:])
    return clean


def classify(exc: BaseException) -> StoreError:
    """Map a redis-py (or socket) exception to freshcache's error classes.
    The message says what redis-py said, scrubbed (``scrubbed``)."""
    if isinstance(exc, StoreError):
        return exc
    message = scrubbed(exc)
    cluster = cluster_error(exc)
    if cluster == "crossslot":
        return ConfigStoreError(
            f"Redis Cluster refused a command whose keys span slots ({message})"
        )
    if cluster is not None:
        return TransientStoreError(f"Redis Cluster: {message}")
    if refused_by_acl(exc):
        return ConfigStoreError(
            f"Redis ACL refused a command ({message}): the user freshcache "
            "connects as lacks a permission it needs (the server's ACL LOG "
            f"names it); {ACL_HINT}"
        )
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return ConfigStoreError(f"{type(exc).__name__}: {message}")
    if isinstance(exc, OutOfMemoryError):
        return CapacityStoreError(message)
    if isinstance(exc, ReadOnlyError):  # a demoted primary: failing over
        return TransientStoreError(f"READONLY {message}")
    if isinstance(exc, ResponseError):
        if _reply(message).startswith("OOM"):
            return CapacityStoreError(message)
        if _reply(message).startswith(("LOADING", "BUSY", "TRYAGAIN", "READONLY")):
            return TransientStoreError(message)
        return ConfigStoreError(message)  # WRONGTYPE, NOSCRIPT, unknown command...
    return TransientStoreError(f"{type(exc).__name__}: {message}")


def _px_arg(ttl: float | None) -> int:
    """A script's TTL argument: milliseconds, 0 for no expiry."""
    return 0 if ttl is None else px(ttl)


class AsyncRedisStore:
    """Envelope bytes in Redis, keyed by the full cache key."""

    tier = "redis"

    def __init__(
        self,
        source: Source,
        *,
        head: str,
        codec: Codec,
        metrics: Metrics,
        clock: Clock,
        timeout: float = 0.05,
        max_connections: int = 16,
        breaker: Breaker | None = None,
        invalidation_budget: float = 1.0,
        owner: AsyncLoopOwner | None = None,
    ) -> None:
        if timeout <= 0 or max_connections < 1:
            raise ValueError("timeout must be > 0 and max_connections >= 1")
        if not invalidation_budget >= timeout:
            raise ValueError("invalidation_budget must be at least timeout")
        self.endpoint = Endpoint(source)
        self._max_connections = max_connections
        self._timeout = timeout
        self._budget = invalidation_budget
        # One attempt of an invalidation: its deadline (for all its replies).
        self._attempt = max(timeout, invalidation_budget / 4)
        # Under Sentinel: how many replicas confirm an invalidation (``WAIT``),
        # within half an attempt's deadline.
        place = self.endpoint.sentinel
        self._replicas = 0 if place is None else place.invalidation_replicas
        self._replica_wait_ms = max(1, int(self._attempt * 500))
        self._cluster = self.endpoint.cluster
        # The clients stay for the store's life (its scripts are registered on
        # them); their pools are replaced when a new event loop or a forked
        # child uses the store (``_reconnect``). A cluster's clients are
        # replaced whole (``_connect_cluster``).
        # Invalidations have connections and deadlines of their own: a slow
        # Redis that makes reads fail open fast must not make them give up.
        self._client: Any
        self._hard: Any
        if self._cluster:
            self._connect_cluster()
        else:
            self._client = Redis.from_pool(self._pool())  # owns and closes its pool
            self._hard = Redis.from_pool(self._hard_pool())
        self._owner = AsyncLoopOwner() if owner is None else owner
        self._owner.on_change(self._reconnect)
        self._owner.on_end(self._disconnect)
        self._owner.on_fork(self._forked)
        self._inherited: tuple[Any, ...] = ()
        self._rng = random.Random()
        self._head = head
        # Rolling deploys: this version's entry in the registry of live
        # versions, and the scripts that reach every live version's keys.
        self._prefix, self._version = split_head(head)
        self._live_key = live_key(self._prefix)
        self._lapsed_key = lapsed_key(self._prefix)
        if self._cluster:  # one LIVE script reads both: one slot for them
            self._live_key = cluster_live_key(self._prefix)
            self._lapsed_key = cluster_lapsed_key(self._prefix)
        self._register_scripts()
        self._mono = time.monotonic if type(clock) is SystemClock else clock.monotonic
        self._live_until = -math.inf  # reads wait for a refresh from then on
        self._joins = AsyncSingleFlight()
        self._stop = AsyncFlag()
        self._refresher = AsyncWorker(self._refresh, name=f"freshcache-live:{head}")
        self._renewals = Renewals(alock())  # the leases held here, kept alive
        # The server's clock, estimated at every registry refresh: freshness
        # is written and judged in it (``Cache`` uses it on the system clock).
        self.server_time = ServerTime()
        self._renewer = AsyncWorker(self._keep_alive, name=f"freshcache-leases:{head}")
        self._slots = AsyncSlots(max_connections)
        self._codec = codec
        self._metrics = metrics
        self._clock = clock
        self._breaker = breaker or Breaker()
        self._closed = False
        self._longest = codec.max_value_bytes  # GETRANGE's end: one byte more
        self._background = AsyncBackground()
        # Loud errors: once a minute per class; others: once per 10 s per kind.
        self._log = Log("redis", tier=Tier.REDIS.value, now=clock.monotonic)
        self._circuit = Transitions(initial=BreakerState.CLOSED)
        self._opened_at = 0.0
        # Who takes leases here (the live view's process id; set by the engine).
        self.holder: Callable[[], str] = _unknown

    def _register_scripts(self) -> None:
        """The scripts, on the clients they run on (again on a cluster's new
        clients: ``_connect_cluster``)."""
        client, hard = self._client, self._hard

        def script(on: Any, source: str) -> Any:
            if self._cluster:
                return AsyncClusterScript(on, source)
            return on.register_script(source)

        self._acquire = script(client, lua.ACQUIRE)
        self._fill = script(client, lua.FILL)
        self._put = script(client, lua.PUT)
        self._swap = script(client, lua.SWAP)
        self._release = script(client, lua.RELEASE)
        self._renew = script(client, lua.RENEW)
        self._register = script(client, lua.REGISTER)
        self._live = script(client, lua.LIVE)
        self._cleared = script(client, lua.CLEARED)
        self._live_versions = script(hard, lua.LIVE_VERSIONS)
        self._invalidate = script(hard, lua.INVALIDATE)
        self._bump = script(hard, lua.BUMP)
        self._take = script(hard, lua.TAKE)

    def _connect_cluster(self) -> None:
        """New cluster clients (made on their first command). redis-py's
        cluster client does not wait for a free connection: the store's
        slots bound the reads; invalidations get as many per node."""
        endpoint, size = self.endpoint, max(self._max_connections, _HARD_CONNECTIONS)
        self._client = AsyncLazyCluster(
            lambda: endpoint.cluster_client(
                size=self._max_connections, timeout=self._timeout
            )
        )
        self._hard = AsyncLazyCluster(
            lambda: endpoint.cluster_client(size=size, timeout=self._attempt)
        )

    async def _queue(
        self, pipe: Any, script: Any, keys: list[Any], args: list[Any]
    ) -> None:
        """Add a script's call to ``pipe`` (on a cluster: as ``EVAL``)."""
        if self._cluster:
            pipe.script(script.script, keys, args)
        else:
            await script(keys=keys, args=args, client=pipe)

    def _pool(self) -> ConnectionPool:
        return self.endpoint.pool(size=self._max_connections, timeout=self._timeout)

    def _hard_pool(self) -> ConnectionPool:
        return self.endpoint.pool(
            size=_HARD_CONNECTIONS, timeout=self._attempt, wait=self._budget
        )

    def _reconnect(self) -> None:
        """New pools, slots and background work for a new event loop or a
        forked child; the old ones belong to the loop (or the parent) that
        made them, and are dropped unused."""
        if self._cluster:
            self._connect_cluster()
            self._register_scripts()
        else:
            self._client.connection_pool = self._pool()
            self._hard.connection_pool = self._hard_pool()
        self._slots = AsyncSlots(self._max_connections)
        self._background = AsyncBackground()
        self._joins = AsyncSingleFlight()
        self._stop = AsyncFlag()
        self._refresher = AsyncWorker(self._refresh, name=self._refresher.name)
        self._renewals = Renewals(alock())  # the old renewer is gone with its loop
        self._renewer = AsyncWorker(self._keep_alive, name=self._renewer.name)

    def _forked(self) -> None:
        """In a forked child: the parent's connections are the parent's. Kept
        here untouched (never closed: closing them would not end the parent's,
        but collecting them would warn), they are replaced on the next call."""
        if self._cluster:
            self._inherited = (self._client, self._hard)
        else:
            self._inherited = (self._client.connection_pool, self._hard.connection_pool)

    def reopen(self) -> None:
        """Usable again after ``aclose``: new connections on the next call."""
        self._closed = False
        self._owner.renew()

    async def _disconnect(self) -> None:
        """The event loop is ending: close its connections (the store stays
        usable; the next loop makes new ones). Leases being given back on it
        are given up (they expire by themselves); the registry refresh stops
        (the next loop starts it again)."""
        self._stop.set()
        await self._refresher.join(self._timeout)
        await self._renewer.join(self._timeout)
        await self._background.drain(0)
        if self._cluster:
            await self._client.aclose()  # made again on the next command
            await self._hard.aclose()
            return
        await self._client.connection_pool.disconnect()
        await self._hard.connection_pool.disconnect()

    def _pipeline(self) -> Pipeline:
        self._owner.check()  # before the pipeline takes the client's pool
        return self._client.pipeline(transaction=False)  # type: ignore[no-any-return]

    async def _run(
        self, operation: str, call: Callable[..., Any], *args: Any,
        unsure: Callable[[], None] | None = None, gated: bool = True,
    ) -> Any:  # fmt: skip
        """``call(*args)`` under the breaker and the pool's deadline, errors
        classified; ``unsure`` runs when the command may have run in Redis
        though its reply never came (a timeout, a lost connection, the
        caller cancelled). ``gated``: first make sure this version is live
        in the registry (``_join``); only the registration itself is not."""
        if self._closed:
            raise CacheClosedError("this cache was closed; make a new one")
        self._owner.check()
        if gated and self._mono() >= self._live_until:
            await self._joins.run("live", self._join)
        breaker = self._breaker
        if not breaker.healthy and not breaker.allow(self._clock.monotonic()):
            self._metrics.error(ErrorClass.CIRCUIT_OPEN)
            raise CircuitOpenError("circuit open: Redis failed recently")
        started = time.perf_counter()
        try:
            if not await self._slots.acquire(self._timeout):
                self._metrics.error(ErrorClass.POOL_WAIT)
                raise TransientStoreError(
                    "no Redis connection free within the deadline"
                )
            try:
                if self._cluster:  # redirections included
                    async with adeadline(self._timeout):
                        result = await call(*args)
                else:
                    result = await call(*args)
            except BaseException:
                if unsure is not None:
                    unsure()
                raise
            finally:
                self._slots.release()
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            self._count_cluster(exc)
            error = classify(exc)
            self._failed(error, acl=refused_by_acl(exc), sign=failover_sign(exc))
            raise error from exc
        except BaseException:  # cancelled, or no connection: no verdict
            breaker.abandon()
            raise
        if not breaker.healthy:
            self._closed_circuit()
        self._metrics.latency(operation, time.perf_counter() - started)
        return result

    async def _whole(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (a pipeline's ``execute``) under one deadline for all
        its replies, not one per reply: ``_run(op, self._whole, pipe.execute)``."""
        async with adeadline(self._timeout):
            return await call()

    async def _run_hard(
        self, operation: str, attempt: Callable[[Redis], Awaitable[Any]]
    ) -> Any:
        """An invalidation's write: on its own connections, whatever the read
        breaker says, retried with backoff until ``invalidation_budget`` is
        spent; then the last error is raised (and the caller queues it)."""
        if self._closed:
            raise CacheClosedError("this cache was closed; make a new one")
        self._owner.check()
        started = time.perf_counter()
        deadline = self._clock.monotonic() + self._budget
        failures = 0
        while True:
            try:
                if self._replicas:
                    result = await self._replicated(attempt)
                else:
                    result = await attempt(self._hard)
            except (
                RedisError, RedisClusterException, OSError, TimeoutError,
                TransientStoreError,
            ) as exc:  # fmt: skip
                self._count_cluster(exc)
                error = classify(exc)
                self._metrics.error(error.kind)
                if refused_by_acl(exc):
                    self._metrics.error(ErrorClass.ACL)
                if sign := failover_sign(exc):
                    self._metrics.error(sign)
                delay = retry_delay(
                    failures, self._rng.random(),
                    first=_HARD_BACKOFF[0], cap=_HARD_BACKOFF[1],
                )  # fmt: skip
                left = deadline - self._clock.monotonic()
                if not isinstance(error, TransientStoreError) or left <= delay:
                    self._metrics.count(Event.INVALIDATION_GAVE_UP)
                    raise error from exc
                self._metrics.count(Event.INVALIDATION_ATTEMPT_FAILED)
                failures += 1
                await asleep(delay)
                continue
            self._metrics.latency(operation, time.perf_counter() - started)
            return result

    async def _replicated(self, attempt: Callable[[Redis], Awaitable[T]]) -> T:
        """``attempt`` on one connection, then ``WAIT`` on it for the replicas
        the Sentinel URL asks for (``invalidation_replicas``): so a failover
        cannot lose an invalidation that returned True (Sentinel promotes the
        replica that has the most of the primary's writes). Fewer replicas
        in time: a transient error (retried, then queued)."""
        one = self._hard.client()  # type: ignore[no-untyped-call,unused-ignore]
        async with one:  # one connection: WAIT covers the attempt
            result = await attempt(one)
            acked = await one.wait(self._replicas, self._replica_wait_ms)
        if int(acked) < self._replicas:
            self._metrics.error(ErrorClass.FAILOVER.detail("unreplicated"))
            raise TransientStoreError(
                f"an invalidation reached {acked} of {self._replicas} replicas "
                "in time; it is retried, then queued"
            )
        return result

    def _count_cluster(self, exc: BaseException) -> None:
        """A Redis Cluster error counts as ``errors["cluster:<name>"]`` too."""
        name = cluster_error(exc) if self._cluster else None
        if name is not None:
            self._metrics.error(ErrorClass.CLUSTER.detail(name))

    def _failed(
        self, error: StoreError, *, acl: bool = False, sign: str | None = None
    ) -> None:
        self._metrics.error(error.kind)
        if sign is not None:
            self._metrics.error(sign)
        now = self._clock.monotonic()
        if acl:
            self._metrics.error(ErrorClass.ACL)
        if acl or isinstance(error, CapacityStoreError):
            # Out of memory, or a command the ACL refuses: Redis answered, at
            # once, and still serves what it allows. The breaker stays closed
            # (or closes): opening it would stop the reads that work, and
            # hide the refusal behind "circuit open".
            self._closed_circuit()
        elif self._breaker.failure(now):
            self._opened_circuit(error, now)
        if isinstance(error, ConfigStoreError | CapacityStoreError):
            self._log.error(
                LogEvent.STORE_ERROR, "Redis %s error: %s", error.kind, error,
                error_class=ErrorClass.ACL.value if acl else error.kind,
                every=_LOUD_EVERY,
            )  # fmt: skip

    def _opened_circuit(self, error: StoreError, now: float) -> None:
        """The breaker (re)opened: logged once per transition from closed
        (a failed probe reopening it is DEBUG)."""
        if self._circuit.changed("circuit", BreakerState.OPEN):
            self._opened_at = now
            self._log.warning(
                LogEvent.CIRCUIT_OPENED,
                "Redis circuit opened after %s; reads go to the loader until "
                "a probe succeeds",
                error,
                error_class=error.kind,
                repeat=False,
            )
        else:
            self._log.debug(
                LogEvent.CIRCUIT_OPENED,
                "Redis circuit stays open: %s",
                error,
                error_class=error.kind,
            )

    def _closed_circuit(self) -> None:
        self._breaker.success()
        if self._circuit.changed("circuit", BreakerState.CLOSED):
            self._log.info(
                LogEvent.CIRCUIT_CLOSED,
                "Redis circuit closed: Redis answers again after %.1f s",
                self._clock.monotonic() - self._opened_at,
                repeat=False,
            )

    def _decode(self, key: str, data: bytes | None) -> Hit | Miss:
        if data is None:
            return MISS
        decoded = self._codec.decode(key, data)
        if isinstance(decoded, Undecodable):
            kind = ErrorClass.DECODE.detail(decoded.reason)
            self._metrics.error(kind)
            self._log.warning(
                LogEvent.DECODE_ERROR,
                "an entry in Redis is not one this cache can trust (%s): a miss; "
                "it is removed",
                decoded.reason,
                namespace=namespace_of(key, self._head),
                error_class=kind,
            )
            return MISS
        return decoded, len(data)

    # -- reads --------------------------------------------------------------

    async def get(self, key: str) -> Hit | Miss:
        """The entry and its size in bytes; one GETRANGE, which sends at most
        one byte more than the longest value we accept (a huge value planted
        under the key is refused without being transferred, then removed)."""
        data = await self._run(
            Operation.GET, self._client.getrange, key, 0, self._longest
        )
        hit = self._decode(key, data or None)  # b"": no such key
        if hit is MISS and data:
            await self.discard(key)
        return hit

    async def get_many(self, keys: Sequence[str]) -> list[Hit | Miss]:
        """As ``get``, for several keys in one round trip (a pipeline)."""
        if not keys:
            return []
        pipe = self._pipeline()
        for key in keys:
            pipe.getrange(key, 0, self._longest)
        values = await self._run(Operation.MGET, self._whole, pipe.execute)
        hits = [self._decode(k, v or None) for k, v in zip(keys, values, strict=True)]
        for key, value, hit in zip(keys, values, hits, strict=True):
            if hit is MISS and value:
                await self.discard(key)
        return hits

    # -- writes -------------------------------------------------------------

    async def put(self, key: str, data: bytes, ttl: float | None) -> None:
        """Store ``data``, revoking any fill lease on ``key`` (one Lua call)."""
        await self._run(
            Operation.SET, self._put, [key, lease_key(key)], [data, _px_arg(ttl)]
        )

    async def put_many(self, items: Iterable[tuple[str, bytes, float | None]]) -> None:
        pipe = self._pipeline()
        for key, data, ttl in items:
            await self._queue(
                pipe, self._put, [key, lease_key(key)], [data, _px_arg(ttl)]
            )
        await self._run(Operation.SET_MANY, self._whole, pipe.execute)

    async def read(self, key: str) -> tuple[bytes | None, Hit | Miss]:
        """The bytes under ``key`` as they are (None: absent) and their entry
        (``MISS``: absent or undecodable), for a read-modify-write (``swap``).
        Bytes too long to read are removed first, and read as absent."""
        data = await self._run(
            Operation.GET, self._client.getrange, key, 0, self._longest
        )
        if not data:
            return None, MISS
        if len(data) > self._longest:
            self._metrics.error(ErrorClass.DECODE.detail("oversize"))
            await self._run(Operation.DELETE, self._client.unlink, key)
            return None, MISS
        return data, self._decode(key, data)

    async def swap(
        self, key: str, expected: bytes | None, data: bytes | None, ttl: float | None
    ) -> bool:
        """Replace what ``read`` returned with ``data`` (None: remove the key)
        only if ``key`` still holds exactly ``expected`` (None: nothing),
        revoking any fill lease; False when another write came between."""
        args = [expected or b"", data or b"", -1 if data is None else _px_arg(ttl)]
        swapped = await self._run(
            Operation.SWAP, self._swap, [key, lease_key(key)], args
        )
        return bool(swapped)

    def _token(self) -> str:
        """A new lease token, naming this process (``holder``) and the time
        (the server's clock) for ``inspect``."""
        now = self._clock.time() + self.server_time.offset
        return lease_token(self.holder(), now, secrets.token_hex(8))

    async def acquire(self, key: str, ttl: float) -> str | None:
        """Take the fill lease on ``key`` for ``ttl`` seconds (kept alive while
        this process holds it, ``_core/renewals.py``): a token, or None if
        someone holds it."""
        token = self._token()
        sent = self._mono()
        taken = await self._run(
            Operation.LEASE, self._client.set, lease_key(key), token, None,
            px(Renewals.expiry(ttl)), True,
            unsure=lambda: self.give_back(key, token),
        )  # fmt: skip
        if not taken:
            return None
        self._hold(key, token, ttl, sent)
        return token

    async def acquire_or_get(
        self, key: str, ttl: float, *, again: bool = True
    ) -> str | Hit | None:
        """A miss's second look: the entry if someone filled ``key`` since,
        else the lease's token if it was free, else None (it is held)."""
        token = self._token()
        sent = self._mono()
        answer = await self._run(
            Operation.LEASE, self._acquire, [key, lease_key(key)],
            [token, px(Renewals.expiry(ttl)), self._longest],
            unsure=lambda: self.give_back(key, token),
        )  # fmt: skip
        if answer == 1:
            self._hold(key, token, ttl, sent)
            return token
        if answer == 0:
            return None
        if answer == -1:  # too long to read: removed, so the lease is free now
            self._metrics.error(ErrorClass.DECODE.detail("oversize"))
            if again:
                return await self.acquire_or_get(key, ttl, again=False)
            raise TransientStoreError("oversized values keep appearing under the key")
        hit = self._decode(key, answer)
        if hit is MISS:
            await self.discard(key)
            return None
        return hit

    async def fill(
        self, key: str, token: str, data: bytes, ttl: float | None,
        notice: tuple[str, bytes] | None = None,
    ) -> int:  # fmt: skip
        """Store ``data`` only if our lease survived (nothing invalidated it)
        and no write-behind write of the key is still on its way to the
        database: 1 stored, 0 lease lost, 2 write pending. Once stored, the
        script publishes ``notice`` (channel, message), if given."""
        self._renewals.drop(key, token)
        keys = [key, lease_key(key), pending_key(key)]
        args: list[str | bytes | int] = [token, data, _px_arg(ttl)]
        if notice is not None:
            args += notice
        stored = await self._run(
            Operation.FILL,
            self._fill,
            keys,
            args,
            unsure=lambda: self.give_back(key, token),
        )  # if the FILL ran, the lease is gone and giving it back does nothing
        return int(stored)

    async def release(self, key: str, token: str) -> None:
        """Give the lease back without filling (best effort)."""
        self._renewals.drop(key, token)
        with contextlib.suppress(StoreError):
            await self._run(Operation.RELEASE, self._release, [lease_key(key)], [token])

    def give_back(self, key: str, token: str) -> None:
        """Release the lease in the background: its holder will not fill (its
        caller was cancelled), or an acquisition may have taken it though we
        never heard (a lost reply). Nobody then waits for a holder that is
        not loading; if this fails too, the lease expires unrenewed, within
        ``_core/renewals.py``'s ``SPAN``."""
        self._renewals.drop(key, token)
        if self._closed:
            return  # the lease expires by itself
        self._metrics.count(Event.LEASE_UNSURE_RELEASE)
        self._background.submit(lambda: self.release(key, token))

    async def invalidate(self, keys: Sequence[str], *, own: bool = True) -> int:
        """Delete ``keys`` and revoke their leases, and the same relative keys
        under every other live version of the prefix (one script, with the
        registry read), on the invalidation path (``_run_hard``). ``own``
        False: only under the other versions (after a write of ``keys``).
        Returns how many of this version's keys and leases were deleted."""
        if not keys:
            return 0
        if self._cluster:
            return int(
                await self._run_hard(
                    Operation.INVALIDATE,
                    functools.partial(self._cluster_invalidate, keys, own=own),
                )
            )
        args: list[str] = [self._prefix, self._version, "1" if own else "0"]
        cut = len(self._head)
        for key in keys:
            for namespace, remainder in readings(key[cut:]):
                args += (key, namespace, remainder)
        removed: int = await self._run_hard(
            Operation.INVALIDATE,
            lambda client: self._invalidate(
                keys=[self._live_key], args=args, client=client
            ),
        )
        return removed

    async def _cluster_invalidate(
        self, keys: Sequence[str], client: Any, *, own: bool
    ) -> int:
        """``INVALIDATE`` as single-slot steps, for a cluster (one attempt of
        ``invalidate``): read the registry of live versions (one key); read
        each other version's namespace versions the keys need; then delete
        every key and its lease under this version (if ``own``) and under
        each other version's name for it. Every command touches one slot
        (a data key and its lease share one); redis-py's cluster pipeline
        sends each node its commands. What the script's single step gave
        and these steps lose, and why it is still safe, is in
        docs/coherence.md ("On a Redis Cluster")."""
        versions = [
            v.decode() if isinstance(v, bytes) else v
            for v in await self._live_versions(
                keys=[self._live_key], args=[self._version], client=client
            )
        ]
        cut = len(self._head)
        readings_of = {key: readings(key[cut:]) for key in keys}
        counters = sorted(
            {
                namespace_version_key(f"{self._prefix}:{v}:", namespace)
                for v in versions
                for found in readings_of.values()
                for namespace, _ in found
            }
        )
        numbers: dict[str, int] = {}
        if counters:
            pipe = client.pipeline(transaction=False)
            for counter in counters:
                pipe.get(counter)
            async with adeadline(self._attempt):
                stored = await pipe.execute()
            numbers = {
                c: read_counter(n) or 0 for c, n in zip(counters, stored, strict=True)
            }
        deletions: list[tuple[str, str, str]] = []
        for key in keys if own else ():
            deletions.append(("DEL", key, lease_key(key)))
        mine = len(deletions)
        for found in readings_of.values():
            for v in versions:
                head = f"{self._prefix}:{v}:"
                for namespace, remainder in found:
                    number = numbers[namespace_version_key(head, namespace)]
                    other = head + namespace
                    if number > 0:
                        other += f"~{number}"
                    other += remainder
                    deletions.append(("DEL", other, lease_key(other)))
        counts = await self._cluster_writes(client, deletions)
        return sum(counts[:mine])

    async def _cluster_writes(
        self, client: Any, commands: Sequence[tuple[str, ...]]
    ) -> list[int]:
        """An invalidation's writes on a cluster (``DEL key lease``, or a
        bump's ``INCR``s), each command on one slot, under one deadline for
        all their replies. With ``invalidation_replicas`` (of the URL; by
        default 1 where the primary has a replica connected) each primary's
        share is followed by ``WAIT`` on its connection
        (``AsyncLazyCluster.replicated``): a failover then cannot lose a
        write that returned, since the cluster promotes a replica that has
        it, if one does (Redis promotes the replica with the most of the old
        primary's writes). Too few replicas in time: a transient error
        (retried, then queued)."""
        replicas = self.endpoint.cluster_replicas
        async with adeadline(self._attempt):  # one for all the replies
            if replicas == 0:
                pipe = client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                counts: list[int] = await pipe.execute()
                return counts
            try:
                replies: list[int] = await client.replicated(
                    commands, replicas=replicas, wait_ms=self._replica_wait_ms
                )
            except UnreplicatedError as exc:
                self._metrics.error(ErrorClass.FAILOVER.detail("unreplicated"))
                raise TransientStoreError(f"{exc}; it is retried, then queued") from exc
            return replies

    async def _delete_keys(self, keys: Sequence[str]) -> int:
        """Delete ``keys`` and revoke their leases (each pair shares a slot),
        on the invalidation path: exactly these keys, no other version's."""

        async def attempt(client: Redis) -> list[int]:
            if self._cluster:
                deletions = [("DEL", key, lease_key(key)) for key in keys]
                return await self._cluster_writes(client, deletions)
            pipe = client.pipeline(transaction=False)  # a connection of its own
            for key in keys:  # not ``delete``: a cluster pipeline refuses two keys
                pipe.execute_command("DEL", key, lease_key(key))  # type: ignore[no-untyped-call,unused-ignore]
            if self._replicas:  # so WAIT on that connection (``_replicated``)
                pipe.wait(self._replicas, self._replica_wait_ms)
            async with adeadline(self._attempt):  # one for all the replies
                counts: list[int] = await pipe.execute()
            if self._replicas and int(counts.pop()) < self._replicas:
                self._metrics.error(ErrorClass.FAILOVER.detail("unreplicated"))
                raise TransientStoreError("a tag's deletes reached too few replicas")
            return counts

        return sum(await self._run_hard(Operation.INVALIDATE, attempt))

    # -- tags -----------------------------------------------------------------

    async def epoch(self) -> int:
        """The tag-invalidation epoch: read before a loader whose fill has tags."""
        value = await self._run(
            Operation.EPOCH, self._client.get, epoch_key(self._head)
        )
        return self._counter(value, "epoch")

    async def register(
        self, tags: Sequence[str], member: str, ttl: float | None
    ) -> None:
        """Add ``member`` to each tag's set, before its value is stored."""
        pipe = self._pipeline()
        for tag in tags:
            await self._queue(
                pipe, self._register, [tag_key(self._head, tag)], [member, _px_arg(ttl)]
            )
        await self._run(Operation.REGISTER, self._whole, pipe.execute)

    async def invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        """Under this version and every other live one: bump the epoch, then
        per tag: take its members (``TAKE``: moved into the tag's taken set,
        the tag set left empty), delete them with their leases, and only
        then remove exactly those members from the taken set. A failure
        part-way leaves them there, so a retry (or the next invalidation of
        the tag) finds every member; a key registered again meanwhile (a
        fill after the epoch bump) goes into the empty tag set and stays
        registered. Each version's tag sets hold its own keys. Returns the
        members."""
        heads = [self._head] + [
            f"{self._prefix}:{v}:" for v in await self._others()
        ]  # a version registering later has loaded nothing from before
        done: set[str] = set()
        for head in heads:
            await self._run_hard(
                Operation.EPOCH, functools.partial(_incr, epoch_key(head))
            )
            for tag in tags:  # each tag set is in its own slot
                tag_set = tag_key(head, tag)
                raw = await self._run_hard(
                    Operation.TAG, functools.partial(self._take_members, tag_set)
                )
                members = sorted(m.decode() if isinstance(m, bytes) else m for m in raw)
                if not members:
                    continue
                await self._delete_keys([m for m in members if m not in done])
                done.update(members)
                await self._run_hard(
                    Operation.TAG,
                    functools.partial(_remove, taken_key(tag_set), members),
                )
        return sorted(done)

    def _take_members(self, tag_set: str, client: Any) -> Awaitable[Any]:
        """``TAKE``: the tag set's members, moved into its taken set."""
        return self._take(keys=[tag_set, taken_key(tag_set)], client=client)  # type: ignore[no-any-return,unused-ignore]

    # -- namespace versions -------------------------------------------------

    async def bump(self, namespace: str) -> int:
        """Bump ``namespace`` under this version and every other live one (one
        script); returns this version's new namespace version."""
        if self._cluster:
            return int(
                await self._run_hard(
                    Operation.BUMP, functools.partial(self._cluster_bump, namespace)
                )
            )
        version: int = await self._run_hard(
            Operation.BUMP,
            lambda client: self._bump(
                keys=[self._live_key],
                args=[self._prefix, self._version, namespace],
                client=client,
            ),
        )
        return int(version)

    async def _cluster_bump(self, namespace: str, client: Any) -> int:
        """``BUMP`` as single-slot steps, for a cluster (one attempt of
        ``bump``): the registry read, then an INCR per other live version,
        then this version's, last (its reply is the attempt's answer; an
        attempt that failed part-way and is retried bumps some versions
        twice, which orphans their keys once more, nothing else). Each
        waits for a replica like an invalidation's deletions
        (``_cluster_writes``): a bump lost in a failover would send readers
        back to the keys it orphaned."""
        versions = await self._live_versions(
            keys=[self._live_key], args=[self._version], client=client
        )
        names = [v.decode() if isinstance(v, bytes) else v for v in versions]
        others = [
            ("INCR", namespace_version_key(f"{self._prefix}:{v}:", namespace))
            for v in names
        ]
        if others:
            await self._cluster_writes(client, others)
        mine = ("INCR", namespace_version_key(self._head, namespace))
        return int((await self._cluster_writes(client, [mine]))[0])

    async def version(self, namespace: str, *, hard: bool = False) -> int:
        """The namespace's version; ``hard``: for an invalidation, on its path."""
        key = namespace_version_key(self._head, namespace)
        if hard:
            found = await self._run_hard(
                Operation.VERSION, lambda client: client.get(key)
            )
        else:
            found = await self._run(Operation.VERSION, self._client.get, key)
        return self._counter(found, "version")

    def _counter(self, stored: object, what: str) -> int:
        """A bookkeeping counter read from Redis. Bytes freshcache never
        writes there (another client's) count as ``errors["decode:<what>"]``
        and raise ``StoreError`` without them: the counter is unknown, so
        reads of it bypass the cache and fills that need it are not stored."""
        value = read_counter(stored)
        if value is None:
            self._metrics.error(ErrorClass.DECODE.detail(what))
            raise StoreError(f"the {what} counter in Redis is not a number")
        return value

    def circuit_closed(self) -> bool:
        """Whether reads go to Redis now (the breaker is closed): while it is
        open or probing, the bus's pings wait, so that the half-open probe is
        always a caller's read, never a ping."""
        breaker = self._breaker
        return breaker.healthy or (
            breaker.state(self._clock.monotonic()) is BreakerState.CLOSED
        )

    async def publish(self, channel: str, data: bytes, *, hard: bool = False) -> None:
        """PUBLISH; ``hard``: an invalidation's message, on the invalidation
        path (``_run_hard``), not a ping or a fill notice. On a cluster every
        message (invalidations and pings alike) goes through one node, the
        owner of the bus channel's slot: a subscriber then gets them in the
        order that node took them, which the bus's watermark relies on
        (docs/coherence.md, "On a Redis Cluster")."""
        if self._cluster:
            at = bus_channel(self._prefix)
            if hard:
                await self._run_hard(
                    Operation.PUBLISH,
                    lambda client: self._hard.publish_at(at, channel, data),
                )  # the client is the hard one
            else:
                await self._run(
                    Operation.PUBLISH, self._client.publish_at, at, channel, data
                )
            return
        if hard:
            await self._run_hard(
                Operation.PUBLISH, lambda client: client.publish(channel, data)
            )
        else:
            await self._run(Operation.PUBLISH, self._client.publish, channel, data)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        removed: int = await self._run(Operation.DELETE, self._client.unlink, *keys)
        return removed

    async def discard(self, key: str) -> None:
        """Best-effort removal of bytes that failed to decode."""
        with contextlib.suppress(StoreError):
            await self._run(Operation.DELETE, self._client.unlink, key)

    async def clear(self, head: str) -> int:
        """Delete every data key under ``head`` (a glob-safe ``prefix:version:``)
        and every fill lease of one (SCAN, never FLUSHDB). The bookkeeping
        under ``head!`` stays: namespace versions and the tag epoch must never
        go back (a process that knows version N would ignore a bump to 1)."""
        return await self._clear(head, gated=True)

    async def _clear(self, head: str, *, gated: bool) -> int:
        keep = (head + "!").encode()
        if not self._cluster:
            return await self._clear_node(head, keep, None, gated=gated)
        removed = 0  # SCAN each primary; ``unlink`` sends one per slot
        primaries = await self._run(Operation.SCAN, self._client.primaries, gated=gated)
        for node in primaries:
            removed += await self._clear_node(head, keep, node, gated=gated)
        return removed

    async def _clear_node(
        self, head: str, keep: bytes, node: Any, *, gated: bool
    ) -> int:
        """``_clear`` on one Redis: ``node`` a primary of a cluster, or None."""
        removed = 0
        for pattern in (head + "*", "{" + head + "*}:lease"):
            cursor: int = 0
            while True:
                cursor, batch = await self._run(
                    Operation.SCAN, self._scan, node, cursor, pattern, gated=gated
                )
                batch = [k for k in batch if not k.startswith(keep)]
                if batch:
                    removed += await self._run(
                        Operation.DELETE, self._client.unlink, *batch, gated=gated
                    )
                if cursor == 0:
                    break
        return removed

    async def _scan(
        self, node: Any, cursor: int, pattern: str
    ) -> tuple[int, list[bytes]]:
        """One SCAN step, on ``node`` of a cluster if given (redis-py's reply
        then names the cursor by node: ``({"host:port": cursor}, keys)``)."""
        if node is None:
            found, batch = await self._client.scan(cursor, pattern, 1000)
        else:
            found, batch = await self._client.scan(
                cursor, pattern, 1000, target_nodes=node
            )
        if isinstance(found, dict):
            (found,) = found.values()
        return int(found), list(batch)

    # -- the live view (stats, inspect, keys) ---------------------------------

    async def command(self, name: str, *args: Any) -> Any:
        """One plain Redis command for the live view (``SET`` of a stats
        snapshot, ``GET``, ``PTTL``, ``HGETALL``...), under the deadline and
        the breaker, raising ``StoreError``. Not gated on the registry of
        live versions: reading diagnostics does not make a version live."""
        return await self._run(
            Operation.LIVE_VIEW, getattr(self._client, name), *args, gated=False
        )

    async def sample_time(self) -> None:
        """Read the server's ``TIME`` once into ``server_time`` (a process
        that only reads diagnostics never joins the registry of live
        versions, whose refreshes sample it otherwise)."""
        started, sent = self._mono(), self._clock.time()
        seconds, micros = await self.command("time")
        server = int(seconds) + int(micros) / 1e6
        self.server_time.sample(sent, server, self._mono() - started)

    async def scan_all(
        self, pattern: str, limit: int | None = None,
        keep: Callable[[str], bool] | None = None,
    ) -> list[str]:  # fmt: skip
        """The keys matching ``pattern`` (SCAN MATCH, never KEYS) and ``keep``,
        on every primary of a cluster; the scan stops at ``limit`` of them
        (None: all), in no order."""
        found: list[str] = []
        nodes: list[Any] = [None]
        if self._cluster:
            nodes = await self._run(Operation.SCAN, self._client.primaries, gated=False)
        for node in nodes:
            cursor = 0
            while True:
                cursor, batch = await self._run(
                    Operation.SCAN, self._scan, node, cursor, pattern, gated=False
                )
                names = (k.decode("utf-8", "replace") for k in batch)
                found += [k for k in names if keep is None or keep(k)]
                if limit is not None and len(found) >= limit:
                    return found[:limit]
                if cursor == 0:
                    break
        return found

    # -- keeping held leases alive --------------------------------------------

    def _hold(self, key: str, token: str, life: float, sent: float) -> None:
        if self._renewals.hold(key, token, life, sent):
            self._renewer = AsyncWorker(self._keep_alive, name=self._renewer.name)
            self._renewer.start()

    async def _keep_alive(self) -> None:
        """Renew the leases held here while any is (all due ones in one round
        trip); a lease whose renewal finds it gone is forgotten."""
        renewals = self._renewals  # this loop's (or process's)
        while not self._stop.is_set():
            wait = renewals.wait(self._mono())
            if wait is None or await self._stop.wait(wait):
                return
            sent = self._mono()
            due = renewals.due(sent)
            if not due:
                continue
            pipe = self._pipeline()
            for key, token, seconds in due:
                await self._queue(
                    pipe, self._renew, [lease_key(key)], [token, px(seconds)]
                )
            try:
                results = await self._run(
                    Operation.RENEW, self._whole, pipe.execute, gated=False
                )
            except CacheClosedError:
                return
            except StoreError:
                await self._stop.wait(RETRY)
                continue
            renewals.renewed(due, [bool(result) for result in results], sent)

    # -- the registry of live versions ----------------------------------------

    async def _join(self) -> None:
        """Register (or refresh) this version in the registry of live versions,
        before any read of Redis, and every ``LIVE_REFRESH`` seconds after.
        If this version's entry had expired, invalidations made meanwhile
        under other versions did not reach its keys: delete them (every
        process of the version has stopped reading Redis by then) before
        anything here reads Redis again."""
        started, sent = self._mono(), self._clock.time()
        seconds, micros, mark = await self._run(
            Operation.LIVE, self._live, [self._live_key, self._lapsed_key],
            [self._version, px(LIVE_TTL), px(LIVE_RETENTION)], gated=False,
        )  # fmt: skip
        server = int(seconds) + int(micros) / 1e6
        self.server_time.sample(sent, server, self._mono() - started)
        if mark is not None:
            self._metrics.count(Event.VERSION_LAPSED)
            self._log.warning(
                LogEvent.VERSION_LAPSED,
                "version %r of prefix %r was not live for a while; "
                "invalidations made by other versions meanwhile did not reach "
                "its keys, so they are deleted before it reads Redis",
                self._version,
                self._prefix,
            )
            await self._clear(self._head, gated=False)
            await self._run(
                Operation.LIVE, self._cleared, [self._lapsed_key],
                [self._version, mark], gated=False,
            )  # fmt: skip
        self._live_until = started + LIVE_TTL - LIVE_MARGIN
        if not self._stop.is_set():
            self._refresher.start()

    async def _refresh(self) -> None:
        while not await self._stop.wait(LIVE_REFRESH):
            try:
                await self._joins.run("live", self._join)
            except CacheClosedError:
                return
            except StoreError:
                self._metrics.error(ErrorClass.LIVE_REFRESH)

    async def _others(self) -> list[str]:
        """The other live versions of this prefix (on the invalidation path)."""
        found: list[Any] = await self._run_hard(
            Operation.LIVE,
            lambda client: self._live_versions(
                keys=[self._live_key], args=[self._version], client=client
            ),
        )
        return [v.decode() if isinstance(v, bytes) else v for v in found]

    async def ping(self) -> bool:
        try:
            await self._run(Operation.PING, self._client.ping)
        except StoreError:
            return False
        return True

    async def aclose(self) -> None:
        self._stop.set()
        await self._refresher.join(self._timeout)
        await self._renewer.join(self._timeout)
        await self._background.drain(self._timeout)  # leases being given back
        self._closed = True  # final: no call reconnects
        await self._client.aclose()
        await self._hard.aclose()


def _unknown() -> str:
    return "unknown"


def _incr(key: str, client: Redis) -> Awaitable[Any]:
    return client.incr(key)  # type: ignore[no-any-return,unused-ignore]


def _remove(key: str, members: list[str], client: Redis) -> Awaitable[Any]:
    return client.srem(key, *members)  # type: ignore[no-any-return,unused-ignore]
