"""The README's examples run, in-process and on Redis."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


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
