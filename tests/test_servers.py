"""The test-server helpers in tests/servers.py, against a redis-server of our own."""

from __future__ import annotations

import os
import shutil
import socket
from typing import TYPE_CHECKING

import pytest
import redis

try:
    from tests import servers
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]

if TYPE_CHECKING:
    from freshcache.testing import FakeClock

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None
    and os.environ.get("FRESHCACHE_REQUIRE_SERVERS") != "1",
    reason="redis-server is not installed",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_redis_server
def test_own_redis_server_killed_is_gone_and_cleaned_up() -> None:
    with servers.own_redis_server() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert servers.redis_available(server.url)
        tmpdir = server.tmpdir
        assert tmpdir.is_dir()
        server.kill()
        assert not _alive(server.pid)
        assert not servers.redis_available(server.url, timeout=0.2)
    assert not tmpdir.exists()


@needs_redis_server
def test_own_redis_server_stop_cont_and_exit_while_stopped() -> None:
    with servers.own_redis_server("--maxmemory", "10mb") as server:
        server.stop()
        assert not servers.redis_available(server.url, timeout=0.2)
        server.cont()
        assert servers.redis_available(server.url)
        server.stop()  # leaving the block must still end it
        pid, tmpdir = server.pid, server.tmpdir
    assert not _alive(pid)
    assert not tmpdir.exists()


@needs_redis_server
def test_own_redis_server_with_a_password() -> None:
    with servers.own_redis_server("--requirepass", "s3cret") as server:
        assert not servers.redis_available(server.url)  # -NOAUTH
        authed = server.url.replace("redis://", "redis://:s3cret@")
        assert servers.redis_available(authed)
        assert not servers.redis_available(authed.replace("s3cret", "wrong"))


def test_probes_say_no_for_a_closed_port() -> None:
    port = servers.free_port()
    assert not servers.redis_available(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    assert not servers.postgres_available(f"postgresql://u@127.0.0.1:{port}/db", 0.2)
    assert not servers.postgres_available(f"host=127.0.0.1 port={port}", 0.2)


def test_redis_probe_sees_pong_only() -> None:
    with socket.socket() as listener:  # accepts, then answers something else
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        assert not servers.redis_available(url, timeout=0.2)


def test_default_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRESHCACHE_TEST_REDIS_URL", raising=False)
    monkeypatch.delenv("FRESHCACHE_TEST_POSTGRES_DSN", raising=False)
    assert servers.redis_url() == "redis://127.0.0.1:6379/0"
    assert servers.postgres_dsn() == "postgresql://postgres@127.0.0.1:5432/test"
    monkeypatch.setenv("FRESHCACHE_TEST_REDIS_URL", "redis://example:1/2")
    assert servers.redis_url() == "redis://example:1/2"


def test_delete_prefix_removes_only_that_prefix(
    redis_url: str, key_prefix: str
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        keys = [f"{key_prefix}:{i}" for i in range(1500)]
        client.mset(dict.fromkeys(keys, b"1"))
        client.set(f"x{key_prefix}", b"other")
        try:
            assert servers.delete_prefix(redis_url, key_prefix) == 1500
            assert client.exists(*keys) == 0
            assert client.get(f"x{key_prefix}") == b"other"
        finally:
            client.delete(f"x{key_prefix}")


def test_fixtures_mark_and_prefix(
    redis_url: str, redis_cleanup: None, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("redis") is not None
    assert request.node.get_closest_marker("postgres") is None
    assert key_prefix.startswith("t")
    assert len(key_prefix) == 13
    assert servers.redis_available(redis_url)


def test_postgres_fixture_marks(
    postgres_dsn: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert servers.postgres_available(postgres_dsn)


def test_fake_clock(fake_clock: FakeClock) -> None:
    before = fake_clock.time()
    fake_clock.advance(5)
    assert fake_clock.time() == before + 5
