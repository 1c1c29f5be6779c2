"""Where the test servers are, whether they answer, and a Redis of a test's own.

The shared servers come from the environment (``FRESHCACHE_TEST_REDIS_URL``,
``FRESHCACHE_TEST_POSTGRES_DSN``). ``own_redis_server()`` starts a private
``redis-server`` on a free port, for fault tests that kill or pause it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PROBE_TIMEOUT = 1.0


def redis_url() -> str:
    return os.environ.get("FRESHCACHE_TEST_REDIS_URL") or DEFAULT_REDIS_URL


def postgres_dsn() -> str:
    return os.environ.get("FRESHCACHE_TEST_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN


def _resp(*parts: str) -> bytes:
    """One Redis command in the RESP wire format."""
    encoded = [part.encode() for part in parts]
    chunks = [b"*%d\r\n" % len(encoded)]
    chunks += [b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded]
    return b"".join(chunks)


def _redis_reply(url: str, timeout: float) -> bytes | None:
    """The server's reply to (AUTH and) PING, or None if nothing answered."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"cannot probe {parts.scheme!r} URLs; use redis://")
    request = b"PING\r\n"
    if parts.password is not None:  # AUTH [user] password first
        auth = [unquote(parts.password)]
        if parts.username:
            auth.insert(0, unquote(parts.username))
        request = _resp("AUTH", *auth) + request
    reply = b""
    try:
        address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            while b"+PONG" not in reply and not reply.startswith(b"-"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:  # refused, unreachable, timed out
        return None
    return reply or None


def redis_available(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a ``redis://`` server answers PING within ``timeout`` seconds."""
    reply = _redis_reply(url or redis_url(), timeout)
    return reply is not None and b"+PONG" in reply


def _postgres_address(dsn: str) -> tuple[str, int]:
    if "://" in dsn:
        parts = urlsplit(dsn)
        return parts.hostname or "127.0.0.1", parts.port or 5432
    fields = dict(f.split("=", 1) for f in dsn.split() if "=" in f)  # key=value form
    return fields.get("host", "127.0.0.1"), int(fields.get("port", "5432"))


def postgres_available(dsn: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if something accepts TCP connections at the DSN's host and port."""
    try:
        with socket.create_connection(
            _postgres_address(dsn or postgres_dsn()), timeout
        ):
            return True
    except OSError:
        return False


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN, never KEYS or FLUSHDB)."""
    deleted = 0
    with redis.Redis.from_url(url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    return deleted


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A running ``redis-server`` owned by one test."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        tmpdir: Path,
        command: list[str] | None = None,
    ) -> None:
        self.process = process
        self.port = port
        self.tmpdir = tmpdir
        self.stopped = False
        self.command = command or []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, like a crash; waits until the process is gone."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.stopped = False

    def restart(self) -> None:
        """Start the server again on the same port and directory (after
        ``kill()``): it reloads its AOF or RDB. Returns once it answers PONG
        (not LOADING)."""
        if self.process.poll() is None:
            raise RuntimeError("restart() needs a stopped server: kill() it first")
        with open(self.tmpdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.tmpdir, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            reply = _redis_reply(self.url, timeout=0.2)
            if reply is not None and b"+PONG" in reply:
                return
            time.sleep(0.02)
        log_text = (self.tmpdir / "redis.log").read_text(errors="replace")
        raise RuntimeError(f"redis-server did not come back:\n{log_text[-3000:]}")

    def stop(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing."""
        self.process.send_signal(signal.SIGSTOP)
        self.stopped = True

    def cont(self) -> None:
        """SIGCONT: resume after ``stop()``."""
        self.process.send_signal(signal.SIGCONT)
        self.stopped = False

    def _terminate(self) -> None:
        if self.process.poll() is None:
            if self.stopped:
                self.cont()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
"""``own_redis_server(*AOF_ALWAYS)``: every write fsynced before its reply."""


@contextmanager
def own_redis_server(*extra_args: str) -> Iterator[RedisProcess]:
    """Start a private ``redis-server`` on a free port; always stop and remove it.

    ``extra_args`` come after the defaults (``--save "" --appendonly no``), so
    they override them: ``own_redis_server(*AOF_ALWAYS)``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH")
    tmpdir = Path(tempfile.mkdtemp(prefix="freshcache-redis-"))
    server: RedisProcess | None = None
    try:
        for _attempt in range(3):  # the free port may be taken before we bind it
            port = free_port()
            args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--dir", str(tmpdir), *extra_args]
            with open(tmpdir / "redis.log", "wb") as log:
                process = subprocess.Popen(
                    [binary, *args], cwd=tmpdir, stdout=log, stderr=subprocess.STDOUT
                )
            server = RedisProcess(process, port, tmpdir, [binary, *args])
            if _wait_for_ping(server, deadline=time.monotonic() + 10):
                break
        else:
            log_text = (tmpdir / "redis.log").read_text(errors="replace")
            raise RuntimeError(f"redis-server did not answer PING:\n{log_text}")
        yield server
    finally:
        if server is not None:
            server._terminate()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _wait_for_ping(server: RedisProcess, deadline: float) -> bool:
    """True once the server answers (even -NOAUTH); False if it exits or hangs."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if _redis_reply(server.url, timeout=0.2) is not None:
            return True
        time.sleep(0.02)
    server._terminate()
    return False
