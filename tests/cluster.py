"""A Redis Cluster of a test's own: N ``redis-server`` primaries on free ports.

``own_redis_cluster()`` starts the servers, joins them with ``redis-cli
--cluster create`` (no replicas), waits until every node reports
``cluster_state:ok``, and on the way out, whatever happened on the way in,
terminates every process it started and removes every directory it made.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import ClusterNode

try:
    from tests import servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]

CLUSTER_BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000
READY_TIMEOUT = 20.0  # seconds for the cluster to report cluster_state:ok
_START_ATTEMPTS = 3  # a free port may be taken before the server binds it


@dataclass
class ClusterInfo:
    """A running cluster: its primaries, in port order of start."""

    nodes: list[servers.RedisProcess] = field(default_factory=list)

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


def _start_node(stack: ExitStack, binary: str) -> servers.RedisProcess:
    """One cluster-enabled ``redis-server`` answering PING; retried on port races."""
    logs: list[str] = []
    for _attempt in range(_START_ATTEMPTS):
        tmpdir = Path(tempfile.mkdtemp(prefix="freshcache-cluster-"))
        stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        port = _cluster_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(tmpdir)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        with open(tmpdir / "redis.log", "wb") as log:
            process = subprocess.Popen(
                [binary, *args], cwd=tmpdir, stdout=log, stderr=subprocess.STDOUT
            )
        node = servers.RedisProcess(process, port, tmpdir)
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
        and str(reply.get("cluster_slots_assigned")) == "16384"
        and str(reply.get("cluster_known_nodes")) == str(nodes)
    )


def _wait_until_ok(info: ClusterInfo, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        replies = _cluster_infos(info)
        if all(_ready(reply, len(info.nodes)) for reply in replies):
            return
        for node in info.nodes:
            if node.process.poll() is not None:
                raise RuntimeError(
                    f"cluster node {node.port} exited:\n{_log_tail(node)}"
                )
        if time.monotonic() >= deadline:
            raise RuntimeError(f"cluster not ok after {timeout} s: {replies}")
        time.sleep(0.05)  # waiting for the servers to agree on the slot map


@contextmanager
def own_redis_cluster(nodes: int = 3) -> Iterator[ClusterInfo]:
    """Start a private ``nodes``-primary Redis Cluster; always stop and remove it."""
    if nodes < 3:
        raise ValueError("redis-cli --cluster create needs at least 3 primaries")
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        raise FileNotFoundError("redis-server and redis-cli must be on PATH")
    with ExitStack() as stack:  # unwinds every callback, even if one raises
        info = ClusterInfo()
        for _ in range(nodes):
            info.nodes.append(_start_node(stack, server))
        create = [cli, "--cluster", "create", *info.addresses]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
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
        _wait_until_ok(info, READY_TIMEOUT)
        yield info
