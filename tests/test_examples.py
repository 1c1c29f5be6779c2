"""The README's examples run, in-process and on Redis."""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests import servers

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name", ["quickstart.py", "quickstart_async.py"])
def test_example_runs_in_process(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "hit rate" in result.stdout


@pytest.mark.parametrize("name", ["quickstart.py", "quickstart_async.py"])
def test_example_runs_on_redis(name: str, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), redis_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "hit rate" in result.stdout


def test_coherence_example_runs(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "coherence.py"), redis_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "coherent:" in result.stdout


@pytest.mark.parametrize("where", ["in-process", "redis"])
def test_herds_example_runs(where: str, request: pytest.FixtureRequest) -> None:
    url = [] if where == "in-process" else [request.getfixturevalue("redis_url")]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "herds.py"), *url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "single flight: 200 callers, 1 build" in result.stdout
    assert "one background rebuild" in result.stdout
    assert "early refresh: " in result.stdout


def test_examples_are_importable() -> None:
    for path in EXAMPLES.glob("*.py"):
        runpy.run_path(str(path), run_name="not_main")


def test_writebehind_example_runs(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "writebehind.py"), redis_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "cache: {'visits': 93}" in result.stdout
    assert "database: 10 rows; applied 100 writes, backlog 0" in result.stdout


@pytest.mark.parametrize("where", ["in-process", "redis"])
def test_otel_example_runs(where: str, request: pytest.FixtureRequest) -> None:
    url = [] if where == "in-process" else [request.getfixturevalue("redis_url")]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "otel_app.py"), *url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    spans = [line.split(":")[0] for line in lines if line.startswith("span ")]
    assert spans == [
        "span SELECT users (child)",  # the loader's query, inside the load
        "span freshcache.load (child)",
        "span freshcache.fill (child)",
        "span GET /users/1",
        "span GET /users/1 again",  # a hit: no cache span under it
        "span freshcache.invalidate",
    ]
    assert (
        "metric freshcache.lookups {'freshcache.namespace': 'user', "
        "'freshcache.outcome': 'hit'} = 1"
    ) in lines
    assert "metric freshcache.loads {} = 1" in lines


DJANGO_PROJECT = EXAMPLES / "django_project"


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=DJANGO_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped after it."""
    import psycopg

    name = f"fc_example_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(postgres_dsn)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def django_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    redis_cleanup: None,
) -> dict[str, str]:
    """The example project's environment: the test Redis under a prefix of
    the test's own, and a database of its own."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        database = request.getfixturevalue("postgres_database")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database,
        FRESHCACHE_PREFIX=key_prefix,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        ),
    )
    return env


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


@contextlib.contextmanager
def _runserver(env: dict[str, str]) -> Iterator[str]:
    """``manage.py runserver`` on a free port, stopped after the block."""
    port = servers.free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=DJANGO_PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "runserver did not listen in 60 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_django_project_runs(django_env: dict[str, str]) -> None:
    """migrate, check, runserver: the first GET of a product renders it, the
    second is a hit, and a save through the ORM in another process (the
    ``set_price`` command) changes the server's next response."""
    _manage(django_env, "migrate", "--noinput")
    _manage(django_env, "check")
    _manage(django_env, "set_price", "1", "2500")
    with _runserver(django_env) as base:
        assert _get(f"{base}/stats/")[1]["loads"] == 0
        first = _get(f"{base}/products/1/")
        second = _get(f"{base}/products/1/")
        assert first == second
        assert first[0] == 200
        assert first[1]["price"] == 2500
        assert _get(f"{base}/stats/")[1]["loads"] == 1  # rendered once
        assert _get(f"{base}/products/2/")[0] == 404  # rendered, not cached
        assert _get(f"{base}/products/2/")[0] == 404
        assert _get(f"{base}/stats/")[1]["loads"] == 3

        # Another process saves the product through the ORM: its commit
        # invalidates the page in every process sharing the Redis. The server
        # keeps an L1, which sees the invalidation over the bus, within its
        # staleness bound (100 ms); a read never serves the old page past it.
        _manage(django_env, "set_price", "1", "2200")
        time.sleep(0.3)
        after = _get(f"{base}/products/1/")
        assert after[0] == 200
        assert after[1]["price"] == 2200
        assert _get(f"{base}/stats/")[1]["loads"] == 4


def test_django_project_tests_pass(django_env: dict[str, str]) -> None:
    """The project's own tests (``manage.py test``, Django's test client)."""
    result = _manage(django_env, "test", "--noinput")
    assert "Ran 4 tests" in result.stderr
    assert result.stderr.rstrip().endswith("OK") or "\nOK" in result.stderr
