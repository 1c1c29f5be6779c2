"""A Redis Sentinel set-up of a test's own: a primary, replicas, sentinels.

``own_redis_sentinel()`` starts a primary and ``replicas`` replicas
(``redis-server``), then ``sentinels`` sentinels (``redis-server
--sentinel``) watching them with a short ``down-after-milliseconds`` and
``failover-timeout``, all on free ports in temporary directories; it returns
once every sentinel sees the primary, every replica and every other
sentinel, and on the way out, whatever happened on the way in, terminates
every process it started and removes every directory it made.

The nodes require ``password`` (the replicas and sentinels authenticate
with it), the sentinels ``sentinel_password`` (None: no password).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

try:
    from tests import servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]

SERVICE = "freshcache"
DOWN_AFTER_MS = 1000  # a primary silent this long is subjectively down
FAILOVER_TIMEOUT_MS = 3000
READY_TIMEOUT = 30.0  # seconds for every sentinel to see every node
_START_ATTEMPTS = 3  # a free port may be taken before the server binds it


@dataclass
class SentinelSet:
    """A running set-up: its data nodes (the first started as primary) and
    its sentinels."""

    password: str
    sentinel_password: str | None
    nodes: list[servers.RedisProcess] = field(default_factory=list)
    sentinels: list[servers.RedisProcess] = field(default_factory=list)

    def url(self, db: int = 0, *, sentinel_password: bool = True) -> str:
        """The ``redis+sentinel://`` URL freshcache takes."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        query = ""
        if sentinel_password and self.sentinel_password is not None:
            query = f"?sentinel_password={quote(self.sentinel_password)}"
        return f"redis+sentinel://:{quote(self.password)}@{hosts}/{SERVICE}/{db}{query}"

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def node(self, port: int) -> servers.RedisProcess:
        return next(n for n in self.nodes if n.port == port)

    def client(self, port: int) -> redis.Redis:
        """A plain client of one data node."""
        return redis.Redis(
            host="127.0.0.1", port=port, password=self.password,
            socket_timeout=2, socket_connect_timeout=2,
        )  # fmt: skip

    def _ask(self, sentinel: servers.RedisProcess) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=sentinel.port, password=self.sentinel_password,
            socket_timeout=1, socket_connect_timeout=1, decode_responses=True,
        )  # fmt: skip

    def primary_port(self) -> int | None:
        """The primary's port as the sentinels that answer agree on it; None
        while they disagree or none answers."""
        seen: set[int] = set()
        for sentinel in self.sentinels:
            if sentinel.process.poll() is not None:
                continue
            with self._ask(sentinel) as client:
                try:
                    address = client.sentinel_get_master_addr_by_name(SERVICE)
                except redis.RedisError:
                    return None
            if not address:
                return None
            seen.add(int(address[1]))
        return seen.pop() if len(seen) == 1 else None

    def primary(self) -> servers.RedisProcess:
        port = self.primary_port()
        if port is None:
            raise RuntimeError("the sentinels do not agree on a primary")
        return self.node(port)

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """The new primary's port, once the sentinels agree on one other than
        ``old_port`` and it answers as a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port:
                with self.client(port) as client:
                    try:
                        role = client.execute_command("ROLE")
                    except redis.RedisError:
                        role = None
                if role and role[0] in (b"master", "master"):
                    return port
            time.sleep(0.05)
        raise RuntimeError(f"no failover from {old_port} within {timeout} s")

    def _ready(self) -> bool:
        for sentinel in self.sentinels:
            with self._ask(sentinel) as client:
                try:
                    state = client.sentinel_master(SERVICE)
                except redis.RedisError:
                    return False
            if not (
                int(state.get("num-slaves", 0)) == len(self.nodes) - 1
                and int(state.get("num-other-sentinels", 0)) == len(self.sentinels) - 1
                and state.get("is_master")
                and not state.get("is_sdown")
            ):
                return False
        for node in self.nodes[1:]:
            with self.client(node.port) as client:
                try:
                    info = client.info("replication")
                except redis.RedisError:
                    return False
            if info.get("master_link_status") != "up":
                return False
        return True


def _log_tail(node: servers.RedisProcess, limit: int = 3000) -> str:
    try:
        return (node.tmpdir / "redis.log").read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _start(
    stack: ExitStack, binary: str, args: list[str], config: str | None = None
) -> servers.RedisProcess:
    """One ``redis-server`` (a sentinel when ``config`` is given: written to
    a file of its own, which Sentinel rewrites) answering PING; retried on
    port races."""
    logs: list[str] = []
    for _attempt in range(_START_ATTEMPTS):
        tmpdir = Path(tempfile.mkdtemp(prefix="freshcache-sentinel-"))
        stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        port = servers.free_port()
        command = [binary]
        if config is not None:
            (tmpdir / "sentinel.conf").write_text(config)
            command += [str(tmpdir / "sentinel.conf"), "--sentinel"]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmpdir)]
        command += args
        with open(tmpdir / "redis.log", "wb") as log:
            process = subprocess.Popen(
                command, cwd=tmpdir, stdout=log, stderr=subprocess.STDOUT
            )
        node = servers.RedisProcess(process, port, tmpdir, command)
        stack.callback(node._terminate)  # registered before anything can fail
        if servers._wait_for_ping(node, deadline=time.monotonic() + 10):
            return node
        logs.append(_log_tail(node))
    raise RuntimeError("redis-server did not answer PING:\n" + "\n---\n".join(logs))


@contextmanager
def own_redis_sentinel(
    *, replicas: int = 2, sentinels: int = 3, password: str = "pw-sentinel-nodes",
    sentinel_password: str | None = "pw-sentinel-sentinels",
) -> Iterator[SentinelSet]:  # fmt: skip
    """Start a private primary, ``replicas`` replicas and ``sentinels``
    sentinels (quorum: a majority); always stop and remove them."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH")
    with ExitStack() as stack:  # unwinds every callback, even if one raises
        found = SentinelSet(password, sentinel_password)
        data = ["--save", "", "--appendonly", "no"]
        data += ["--requirepass", password, "--masterauth", password]
        primary = _start(stack, binary, data)
        found.nodes.append(primary)
        follow = [*data, "--replicaof", "127.0.0.1", str(primary.port)]
        for _ in range(replicas):
            found.nodes.append(_start(stack, binary, follow))
        lines = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} {sentinels // 2 + 1}",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1",
            f"sentinel auth-pass {SERVICE} {password}",
        ]
        if sentinel_password is not None:
            lines += [
                f"requirepass {sentinel_password}",
                f"sentinel sentinel-pass {sentinel_password}",
            ]
        config = "\n".join(lines) + "\n"
        for _ in range(sentinels):
            found.sentinels.append(_start(stack, binary, [], config))
        deadline = time.monotonic() + READY_TIMEOUT
        while not found._ready():
            for node in found.nodes + found.sentinels:
                if node.process.poll() is not None:
                    raise RuntimeError(f"{node.port} exited:\n{_log_tail(node)}")
            if time.monotonic() >= deadline:
                tails = "\n---\n".join(_log_tail(s) for s in found.sentinels)
                raise RuntimeError(f"sentinel set-up not ready:\n{tails}")
            time.sleep(0.05)
        yield found
