"""What the store needs of a Redis Cluster, on top of redis-py's cluster client.

redis-py routes every command (``RedisCluster``); this module only adapts
the store's habits to it:

* ``AsyncLazyCluster``: the client is made on the first command, not before
  (redis-py's sync cluster client connects in its constructor, and a cache
  must build while Redis is down); a failure to reach the cluster then
  happens inside a call, where the store classifies it.
* ``AsyncDeferredPipeline``: a pipeline whose commands are recorded and sent
  at ``execute`` (through redis-py's cluster pipeline, which groups them by
  node and sends each node its share). Scripts go in as ``EVAL``: redis-py's
  cluster pipeline refuses ``EVALSHA`` through a script object, and cannot
  load a script a node lacks (after a failover, say).
* ``AsyncClusterScript``: a script called alone: ``EVALSHA``, and ``EVAL``
  (which also caches it on that node) when the node answers NOSCRIPT.
* ``AsyncLazyCluster.replicated``: an invalidation's deletions, each
  primary's share on one connection of that primary followed by ``WAIT``
  (which only covers the writes of its own connection), so that a failover
  cannot lose a deletion that was confirmed.

Nothing here sends a command whose keys span slots: every script's keys
share a slot (``_core/layout.py``), and multi-key deletions go through
redis-py's ``unlink``, which sends one command per slot.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    ResponseError,
)

_REDIRECTS = 5  # rounds of ASK/MOVED an invalidation's deletions follow
_ASYNC = False
_ASYNC = True  # unasync: skip


class UnreplicatedError(Exception):
    """Fewer replicas than asked confirmed a primary's share (``WAIT``)."""

    def __init__(self, node: str, acked: int, wanted: int) -> None:
        super().__init__(
            f"an invalidation reached {acked} of {wanted} replicas of {node} in time"
        )
        self.acked = acked
        self.wanted = wanted


class AsyncLazyCluster:
    """A ``RedisCluster`` made by ``make`` on first use. Every method of the
    client is reached through it (``lazy.get(key)``); the client itself is
    made when such a call runs, so that its errors are the call's."""

    def __init__(self, make: Callable[[], RedisCluster]) -> None:
        self._make = make
        self._real: RedisCluster | None = None

    def real(self) -> RedisCluster:
        if self._real is None:
            self._real = self._make()
        return self._real

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.real(), name)(*args, **kwargs)

        return call

    def pipeline(self, transaction: bool = False) -> AsyncDeferredPipeline:
        return AsyncDeferredPipeline(self)

    async def primaries(self) -> list[Any]:
        """The cluster's primaries, as redis-py knows them now."""
        real = self.real()
        await real.initialize()  # unasync: skip
        return list(real.get_primaries())  # type: ignore[no-untyped-call,unused-ignore]

    async def publish_at(self, key: str, channel: str, data: bytes) -> int:
        """PUBLISH on the primary that owns ``key``'s slot (the cluster
        forwards it to every node, in the order that node took it)."""
        real = self.real()
        await real.initialize()  # unasync: skip
        node = real.get_node_from_key(key)  # type: ignore[no-untyped-call,unused-ignore]
        receivers: int = await real.publish(channel, data, target_nodes=node)
        return receivers

    async def replicated(
        self,
        commands: Sequence[tuple[Any, ...]],
        *,
        replicas: int | None,
        wait_ms: int,
        route: Sequence[str] | None = None,
    ) -> list[Any]:
        """Run ``commands`` (each routed by its first key, ``args[1]``, or by
        its ``route`` key: a script's first key, say) on the
        primaries that own their slots, each primary's share on one of its
        connections followed by ``WAIT`` for ``replicas`` replicas within
        ``wait_ms``. ``None``: for 1 where the primary has a replica
        connected (its ``ROLE``, asked with the share), for none where it
        has none (nothing to wait for). Redirections are followed as
        redis-py follows them (a slot being resharded): a command answered
        ASK goes again to the node named, after ``ASKING``; one answered
        MOVED makes redis-py read the slot map again, and goes to the node
        named; at most ``_REDIRECTS`` rounds. Returns the replies in order;
        raises ``UnreplicatedError`` when a primary's replicas fell short.
        Another failure makes redis-py read the slot map again (this path
        bypasses its routing, which would)."""
        real = self.real()
        await real.initialize()  # unasync: skip
        rounds: list[tuple[Any, list[int], bool]] = []
        shares: dict[str, tuple[Any, list[int]]] = {}
        for index, command in enumerate(commands):
            key = command[1] if route is None else route[index]
            node: Any = real.get_node_from_key(key)  # type: ignore[no-untyped-call,unused-ignore]
            shares.setdefault(node.name, (node, []))[1].append(index)
        rounds = [(node, members, False) for node, members in shares.values()]
        replies: list[Any] = [None] * len(commands)
        try:
            for _ in range(_REDIRECTS):
                again: dict[tuple[str, int, bool], list[int]] = {}
                for node, members, asking in rounds:
                    answers = await _on_one_connection(
                        real, node, [commands[i] for i in members], replicas,
                        wait_ms, asking=asking,
                    )  # fmt: skip
                    for i, answer in zip(members, answers, strict=True):
                        if isinstance(answer, AskError | MovedError):
                            ask = isinstance(answer, AskError)
                            again.setdefault((answer.host, answer.port, ask), [])
                            again[answer.host, answer.port, ask].append(i)
                        elif isinstance(answer, Exception):
                            raise answer
                        else:
                            replies[i] = answer
                if not again:
                    return replies
                if not all(ask for _, _, ask in again):  # MOVED: a new slot map
                    await real.nodes_manager.initialize()
                rounds = []
                for (host, port, ask), members in again.items():
                    target = real.get_node(host=host, port=port)  # type: ignore[no-untyped-call,unused-ignore]
                    if target is None:
                        raise ClusterError(f"redirected to unknown node {host}:{port}")
                    rounds.append((target, members, ask))
            raise ClusterError(f"redirected more than {_REDIRECTS} times")
        except UnreplicatedError:
            raise
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is raised
                await real.nodes_manager.initialize()
            raise

    async def aclose(self) -> None:
        if self._real is not None:
            real, self._real = self._real, None
            await real.aclose()


async def _on_one_connection(
    real: RedisCluster,
    node: Any,
    commands: list[tuple[Any, ...]],
    replicas: int | None,
    wait_ms: int,
    *,
    asking: bool,
) -> list[Any]:
    """``commands`` sent together on one connection of ``node`` (each after
    ``ASKING`` if ``asking``), their replies read in order (an error reply
    in its place, as the exception), then ``WAIT`` on it (see
    ``AsyncLazyCluster.replicated``); a connection left with replies unread
    is closed, not reused."""
    client: Any = real
    if _ASYNC:  # the asyncio client's node hands out its connections itself
        pool, connection = node, node.acquire_connection()
    else:  # the sync client's node has a client, and a pool
        pool = client.get_redis_connection(node).connection_pool
        connection = pool.get_connection()
    done = False
    try:
        sent: list[tuple[Any, ...]] = []
        for command in commands:
            sent += [("ASKING",), command] if asking else [command]
        if replicas is None:
            sent.append(("ROLE",))
        elif replicas:
            sent.append(("WAIT", replicas, wait_ms))
        await connection.send_packed_command(connection.pack_commands(sent))
        replies: list[Any] = []
        for _ in sent:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:  # read whole: the next reply follows
                replies.append(exc)
        if asking:
            replies = replies[1 : 2 * len(commands) : 2] + replies[2 * len(commands) :]
        wanted, acked = replicas or 0, 0
        if replicas is None:  # as many as are connected, up to one
            role = replies[-1]
            if isinstance(role, Exception):
                raise role
            wanted = min(1, len(role[2])) if role[0] in (b"master", "master") else 0
            if wanted:
                await connection.send_command("WAIT", wanted, wait_ms)
                acked = int(await connection.read_response())
        elif replicas:
            if isinstance(replies[-1], Exception):
                raise replies[-1]
            acked = int(replies[-1])
        done = True
    finally:
        if not done:
            await connection.disconnect()
        pool.release(connection)
    if acked < wanted:
        raise UnreplicatedError(node.name, acked, wanted)
    return replies[: len(commands)]


class AsyncDeferredPipeline:
    """Commands recorded now, sent by ``execute`` through one cluster pipeline."""

    def __init__(self, cluster: AsyncLazyCluster) -> None:
        self._cluster = cluster
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., AsyncDeferredPipeline]:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> AsyncDeferredPipeline:
            self._calls.append((name, args, kwargs))
            return self

        return record

    def script(
        self, source: str, keys: Sequence[Any], args: Sequence[Any]
    ) -> AsyncDeferredPipeline:
        """Queue a script as ``EVAL`` (its keys share one slot)."""
        self._calls.append(
            ("execute_command", ("EVAL", source, len(keys), *keys, *args), {})
        )
        return self

    async def execute(self) -> list[Any]:
        if not self._calls:
            return []
        pipe = self._cluster.real().pipeline()  # type: ignore[no-untyped-call,unused-ignore]
        for name, args, kwargs in self._calls:
            getattr(pipe, name)(*args, **kwargs)
        replies: list[Any] = await pipe.execute()
        return replies


class AsyncClusterScript:
    """A Lua script called by itself: ``EVALSHA``, else ``EVAL``."""

    def __init__(self, cluster: AsyncLazyCluster, source: str) -> None:
        self._cluster = cluster
        self.script = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self,
        keys: Sequence[Any] = (),
        args: Sequence[Any] = (),
        client: AsyncLazyCluster | None = None,
    ) -> Any:
        cluster = self._cluster if client is None else client
        try:
            return await cluster.execute_command(
                "EVALSHA", self.sha, len(keys), *keys, *args
            )
        except NoScriptError:
            return await cluster.execute_command(
                "EVAL", self.script, len(keys), *keys, *args
            )
