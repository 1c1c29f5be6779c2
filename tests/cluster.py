"""A Redis Cluster of a test's own: N ``redis-server`` primaries on free ports.

``own_redis_cluster()`` starts the servers, joins them with ``redis-cli
--cluster create`` (no replicas by default; ``replicas=1`` gives each
primary one, with a short ``cluster-node-timeout`` so that a replica takes
over a killed primary within a few seconds; one or two primaries, which
``redis-cli`` refuses, get their slots by ``CLUSTER ADDSLOTSRANGE`` and meet
by ``CLUSTER MEET``), waits until every node reports
``cluster_state:ok`` (and, with replicas, until each replica has synced),
and on the way out, whatever happened on the way in, terminates every
process it started and removes every directory it made.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode
from redis.crc import key_slot

try:
    from tests import servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]

CLUSTER_BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000
SLOTS = 16384  # hash slots of every Redis Cluster
READY_TIMEOUT = 20.0  # seconds for the cluster to report cluster_state:ok
NODE_TIMEOUT_MS = 1000  # cluster-node-timeout with replicas: failover in seconds
_START_ATTEMPTS = 3  # a free port may be taken before the server binds it


@dataclass
class ClusterInfo:
    """A running cluster: its nodes, in order of start (``redis-cli --cluster
    create`` makes the first N primaries and the rest their replicas; a
    failover changes that: ``primary_for`` asks the cluster)."""

    nodes: list[servers.RedisProcess] = field(default_factory=list)

    def alive(self) -> list[servers.RedisProcess]:
        """The nodes whose process still runs."""
        return [node for node in self.nodes if node.process.poll() is None]

    def slot_owners(self) -> dict[int, int]:
        """slot -> port of the primary that serves it now, per ``CLUSTER
        SLOTS`` of the first live node that answers."""
        for node in self.alive():
            client = redis.Redis(
                host="127.0.0.1", port=node.port, socket_timeout=1,
                socket_connect_timeout=1,
            )  # fmt: skip
            try:
                ranges = client.execute_command("CLUSTER SLOTS")
            except redis.RedisError:
                continue
            finally:
                client.close()
            owners: dict[int, int] = {}
            for item in ranges:
                start, end, primary = int(item[0]), int(item[1]), item[2]
                for slot in range(start, end + 1):
                    owners[slot] = int(primary[1])
            return owners
        raise RuntimeError("no cluster node answered CLUSTER SLOTS")

    def primary_for(self, key: str) -> servers.RedisProcess:
        """The node that serves ``key``'s slot now."""
        port = self.slot_owners()[key_slot(key.encode())]
        return next(node for node in self.nodes if node.port == port)

    def primaries(self) -> list[int]:
        """The ports of the nodes that serve slots now (not the replicas)."""
        return sorted(set(self.slot_owners().values()))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """What ``redis.cluster.RedisCluster(startup_nodes=...)`` takes."""
        return [ClusterNode("127.0.0.1", port) for port in self.ports]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is also free and valid."""
    for _ in range(100):
        port = servers.free_port()
        if port + CLUSTER_BUS_OFFSET <= 65535 and _port_is_free(
            port + CLUSTER_BUS_OFFSET
        ):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) on 127.0.0.1")


def _log_tail(node: servers.RedisProcess, limit: int = 4000) -> str:
    try:
        text = (node.tmpdir / "redis.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


def _start_node(
    stack: ExitStack, binary: str, extra: list[str] | None = None
) -> servers.RedisProcess:
    """One cluster-enabled ``redis-server`` answering PING; retried on port races."""
    logs: list[str] = []
    for _attempt in range(_START_ATTEMPTS):
        tmpdir = Path(tempfile.mkdtemp(prefix="freshcache-cluster-"))
        stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        port = _cluster_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(tmpdir)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += extra or []
        with open(tmpdir / "redis.log", "wb") as log:
            process = subprocess.Popen(
                [binary, *args], cwd=tmpdir, stdout=log, stderr=subprocess.STDOUT
            )
        node = servers.RedisProcess(process, port, tmpdir, [binary, *args])
        stack.callback(node._terminate)  # registered before anything can fail
        if servers._wait_for_ping(node, deadline=time.monotonic() + 10):
            return node
        logs.append(_log_tail(node))
    raise RuntimeError("cluster node did not answer PING:\n" + "\n---\n".join(logs))


def _cluster_infos(info: ClusterInfo) -> list[dict[str, object]]:
    """``CLUSTER INFO`` of every node (an empty dict for a node that fails)."""
    replies: list[dict[str, object]] = []
    for port in info.ports:
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            reply = client.execute_command("CLUSTER INFO")
        except redis.RedisError:
            reply = {}
        finally:
            client.close()
        replies.append(reply if isinstance(reply, dict) else {})
    return replies


def _ready(reply: dict[str, object], nodes: int) -> bool:
    return (
        str(reply.get("cluster_state")) == "ok"
        and str(reply.get("cluster_slots_assigned")) == str(SLOTS)
        and str(reply.get("cluster_known_nodes")) == str(nodes)
    )


def _replicas_synced(info: ClusterInfo, replicas: int) -> bool:
    """Every primary has ``replicas`` replicas online (``INFO replication``)."""
    primaries = 0
    for port in info.ports:
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            reply = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        if reply.get("role") != "master":
            continue
        primaries += 1
        online = [
            value
            for name, value in reply.items()
            if name.startswith("slave") and name[5:].isdigit()
            and isinstance(value, dict) and value.get("state") == "online"
        ]  # fmt: skip
        if len(online) < replicas:
            return False
    return primaries == len(info.nodes) // (replicas + 1)


def _wait_until_ok(info: ClusterInfo, timeout: float, replicas: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        replies = _cluster_infos(info)
        if all(_ready(reply, len(info.nodes)) for reply in replies) and (
            not replicas or _replicas_synced(info, replicas)
        ):
            return
        for node in info.nodes:
            if node.process.poll() is not None:
                raise RuntimeError(
                    f"cluster node {node.port} exited:\n{_log_tail(node)}"
                )
        if time.monotonic() >= deadline:
            raise RuntimeError(f"cluster not ok after {timeout} s: {replies}")
        time.sleep(0.05)  # waiting for the servers to agree on the slot map


def _create_with_cli(cli: str, info: ClusterInfo, replicas: int) -> None:
    """``redis-cli --cluster create``: the slots to the first primaries, the
    other nodes their replicas."""
    create = [cli, "--cluster", "create", *info.addresses]
    create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    try:
        result = subprocess.run(
            create,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:  # run() killed redis-cli
        raise RuntimeError(f"redis-cli --cluster create hung: {exc}") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"redis-cli --cluster create failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


def _join_directly(info: ClusterInfo) -> None:
    """Each node an equal share of the slots, and every node introduced to
    the first: ``redis-cli --cluster create`` for the one or two primaries
    it refuses (no replicas)."""
    count = len(info.nodes)
    for index, port in enumerate(info.ports):
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        try:
            first = SLOTS * index // count
            last = SLOTS * (index + 1) // count - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            if index:
                client.execute_command("CLUSTER MEET", "127.0.0.1", info.ports[0])
        finally:
            client.close()


@contextmanager
def own_redis_cluster(
    nodes: int = 3, replicas: int = 0, args: Sequence[str] = ()
) -> Iterator[ClusterInfo]:
    """Start a private ``nodes``-primary Redis Cluster with ``replicas``
    replicas per primary (``nodes * (1 + replicas)`` servers; with replicas,
    ``cluster-node-timeout`` is ``NODE_TIMEOUT_MS``, and 3 primaries or
    more), each server started with ``args`` too (``servers.AOF_ALWAYS``,
    say: a node killed with ``kill()`` then comes back with its data by
    ``restart()``); always stop and remove it."""
    if nodes < 1 or replicas < 0:
        raise ValueError("a cluster needs 1 primary or more, and 0 replicas or more")
    if replicas and nodes < 3:
        raise ValueError("redis-cli --cluster create needs 3 primaries for replicas")
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        raise FileNotFoundError("redis-server and redis-cli must be on PATH")
    with ExitStack() as stack:  # unwinds every callback, even if one raises
        info = ClusterInfo()
        extra = ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)] if replicas else []
        extra += args
        for _ in range(nodes * (1 + replicas)):
            info.nodes.append(_start_node(stack, server, extra))
        if nodes < 3:
            _join_directly(info)
        else:
            _create_with_cli(cli, info, replicas)
        _wait_until_ok(info, READY_TIMEOUT, replicas)
        yield info


@contextmanager
def primary_clients(info: ClusterInfo) -> Iterator[dict[int, redis.Redis]]:
    """A plain client per primary, by port, with its statistics reset
    (``CONFIG RESETSTAT``); closed on the way out."""
    direct = {
        port: redis.Redis(host="127.0.0.1", port=port) for port in info.primaries()
    }
    try:
        for node in direct.values():
            node.config_resetstat()
        yield direct
    finally:
        for node in direct.values():
            node.close()


def refused(nodes: dict[int, redis.Redis], error: str) -> int:
    """How many commands ``nodes`` refused with ``error`` (``INFO
    errorstats``) since their statistics were reset."""
    total = 0
    for node in nodes.values():
        stats: dict[str, object] = node.info("errorstats")
        entry = stats.get(f"errorstat_{error}", {})
        total += int(entry.get("count", 0)) if isinstance(entry, dict) else 0
    return total


def raw_client(url: str, **options: Any) -> Any:
    """A plain redis-py client of ``url``: ``Redis``, or for a
    ``redis+cluster://`` URL a ``RedisCluster`` of its nodes."""
    scheme = "redis+cluster://"
    if not url.startswith(scheme):
        return redis.Redis.from_url(url, **options)
    credentials, _, nodes = url[len(scheme) :].rstrip("/").rpartition("@")
    startup = [
        ClusterNode(host, int(port))
        for host, port in (node.rsplit(":", 1) for node in nodes.split(","))
    ]
    password = credentials.partition(":")[2] or None
    return redis.RedisCluster(startup_nodes=startup, password=password, **options)
