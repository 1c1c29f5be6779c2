"""freshcache over TLS (``rediss://``), sync and async.

The per-call deadline wraps each connection's socket (``_async/redis/
deadline.py``); over TLS that socket is an ``ssl.SSLSocket``, and a value
of 20 KB comes in several TLS records. This runs a real TLS Redis with a
throwaway certificate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from freshcache import L1, MISS, AsyncCache, Cache
from tests.servers import free_port, own_redis_server

pytestmark = pytest.mark.redis


@pytest.fixture
def tls_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    with own_redis_server(
        "--tls-port", str(port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no",
    ):  # fmt: skip
        yield f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"


def test_sync_over_tls(tls_url: str) -> None:
    big = "v" * 20_000  # several TLS records
    with Cache(tls_url, prefix="tls", l1=L1(), timeout=1.0) as cache:
        assert cache.set("k", big) is True
        assert cache.get("k") == big
        assert cache.get_or_load("other", lambda: "loaded") == "loaded"
        assert cache.invalidate("k") is True
        assert cache.get("k") is MISS
        assert cache.stats().errors == {}


async def test_async_over_tls(tls_url: str) -> None:
    big = "v" * 20_000
    async with AsyncCache(tls_url, prefix="tls", l1=L1(), timeout=1.0) as cache:
        assert await cache.set("k", big) is True
        assert await cache.get("k") == big
        assert await cache.get_or_load("other", lambda: "loaded") == "loaded"
        assert await cache.invalidate("k") is True
        assert await cache.get("k") is MISS
        assert cache.stats().errors == {}
