"""gunicorn ``--preload`` with 2 workers: every worker sees every write.

The application module (``tests/deploy_app.py``) makes its cache and uses it
at import, in gunicorn's master; the workers are forked from it. Readers
hit the workers over HTTP while this process writes through a cache of its
own: no read that started more than the staleness bound after a write
returned may answer an older value, in any worker. Each worker subscribes
to the bus itself (before, only the master was subscribed) and its stats
are its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from freshcache import L1, Cache

pytestmark = pytest.mark.redis

BOUND = 0.1  # the default L1(max_staleness=...)
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        body: dict[str, object] = json.loads(reply.read())
        return body


def test_every_preforked_worker_sees_every_write(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DEPLOY_APP_REDIS_URL": redis_url,
        "DEPLOY_APP_PREFIX": key_prefix,
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "tests.deploy_app:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    writer = Cache(redis_url, prefix=key_prefix, l1=L1())
    link = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port, "/read")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        reads: list[tuple[float, int, str]] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                started = time.monotonic()
                body = _get(port, "/read")
                reads.append((started, int(body["pid"]), str(body["value"])))  # type: ignore[call-overload]

        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        writes: list[tuple[float, str]] = []
        time.sleep(0.5)
        for n in range(6):
            while not writer.set("k", f"w{n}"):  # a missed deadline: again
                time.sleep(0.01)
            writes.append((time.monotonic(), f"w{n}"))
            time.sleep(0.4)
        stop.set()
        for reader in readers:
            reader.join()
        order = {"start": -1} | {value: i for i, (_, value) in enumerate(writes)}
        stale = [
            (started, pid, value)
            for started, pid, value in reads
            if (landed := [order[v] for at, v in writes if at + BOUND < started])
            and value != "missing"  # Redis missed its deadline: no value
            and order[value] < max(landed)
        ]
        pids = {pid for _, pid, _ in reads}
        assert len(pids) == 2, pids  # both workers answered
        assert server.pid not in pids
        assert len(reads) > 200
        assert stale == [], stale[:5]
        # The master, both workers and this process's cache each subscribed.
        assert link.pubsub_numsub(f"{key_prefix}:!bus")[0][1] == 4
        seen: dict[int, dict[str, object]] = {}
        while len(seen) < 2 and time.monotonic() < deadline + 30:
            body = _get(port, "/stats")
            seen[int(body["pid"])] = body  # type: ignore[call-overload]
        for body in seen.values():
            assert body["bus_connect"] == 1, body  # its own subscription
            assert int(body["l1_hits"]) > 0, body  # type: ignore[call-overload]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
        writer.close()
        link.close()
