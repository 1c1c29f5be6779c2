"""redis-py objects crossing the sync/async line.

redis-py keeps twin modules: ``redis.retry`` and ``redis.asyncio.retry``,
``redis.cluster`` and ``redis.asyncio.cluster``, and so on. The async source
must hand ``redis.asyncio`` clients the asyncio twin of each object, and
``scripts/unasync.py`` must turn it into the sync twin. A sync object handed to
an asyncio client works by accident at best: redis-py 8.2 converts a sync
``Retry`` and warns on every ``AsyncCache`` (which made the whole suite fail
under ``filterwarnings = error``). These tests audit every redis-py import in
the async sources, so the next twin redis-py adds is caught here, not by users.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_unasync import unasync

ROOT = Path(__file__).resolve().parent.parent
ASYNC_SOURCES = sorted(
    [
        *(ROOT / "src" / "freshcache" / "_async").rglob("*.py"),
        *(ROOT / "tests" / "_async").rglob("*.py"),
    ]
)

# The twins freshcache uses or will use (pools, retry, pub/sub, locks, cluster,
# sentinel): each pair must exist in the installed redis-py, be two different
# objects, and be mapped by the generator.
TWINS = [
    ("redis.asyncio", "Redis"),
    ("redis.asyncio", "ConnectionPool"),
    ("redis.asyncio", "BlockingConnectionPool"),
    ("redis.asyncio.retry", "Retry"),
    ("redis.asyncio.client", "PubSub"),
    ("redis.asyncio.client", "Pipeline"),
    ("redis.asyncio.lock", "Lock"),
    ("redis.asyncio.cluster", "RedisCluster"),
    ("redis.asyncio.cluster", "ClusterNode"),
    ("redis.asyncio.sentinel", "Sentinel"),
    ("redis.asyncio.sentinel", "SentinelConnectionPool"),
]


def _redis_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every ``from redis... import name`` in path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "redis" or node.module.startswith("redis."):
                found.extend((node.module, a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "redis" or alias.name.startswith("redis."):
                    found.append((alias.name, "", node.lineno))
    return found


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _sync_name(module: str) -> str:
    line = unasync.unasync_line(f"from {module} import x")
    assert line is not None
    return line.removeprefix("from ").removesuffix(" import x")


def test_the_async_sources_import_redis() -> None:
    # guards the audit below against scanning nothing
    assert sum(len(_redis_imports(p)) for p in ASYNC_SOURCES) >= 5


@pytest.mark.parametrize(
    "path", ASYNC_SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_async_sources_use_the_asyncio_twin(path: Path) -> None:
    """A name imported from a sync redis module whose asyncio twin also has it
    is a sync object headed for an asyncio client."""
    wrong = []
    for module, name, line in _redis_imports(path):
        if module.startswith("redis.asyncio") or not name:
            continue
        twin_name = "redis.asyncio" + module.removeprefix("redis")
        twin = _module(twin_name)
        if twin is not None and hasattr(twin, name):
            wrong.append(f"line {line}: from {module} import {name} ({twin_name})")
    assert not wrong, "use the asyncio twin:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "path", ASYNC_SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_generated_sync_imports_exist(path: Path) -> None:
    """Every asyncio import maps to a sync module that has the same name."""
    missing = []
    for module, name, line in _redis_imports(path):
        if not module.startswith("redis.asyncio"):
            continue
        sync = _module(_sync_name(module))
        if sync is None or (name and not hasattr(sync, name)):
            missing.append(f"line {line}: {_sync_name(module)}.{name}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize(("module", "name"), TWINS)
def test_twins_exist_and_are_mapped(module: str, name: str) -> None:
    sync_module = _sync_name(module)
    assert unasync.unasync_line(f"from {module} import {name}") == (
        f"from {sync_module} import {name}"
    )
    async_object = getattr(importlib.import_module(module), name)
    sync_object = getattr(importlib.import_module(sync_module), name)
    assert async_object is not sync_object


@pytest.mark.redis
async def test_async_cache_over_redis_warns_nothing(redis_url: str) -> None:
    from freshcache import AsyncCache

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = AsyncCache(redis_url, prefix="twins")
        try:
            await cache.set("k", 1)
            assert await cache.get("k") == 1
        finally:
            await cache.invalidate("k")
            await cache.aclose()


@pytest.mark.redis
def test_a_new_process_with_warnings_as_errors_is_silent(redis_url: str) -> None:
    code = (
        "import asyncio, sys, freshcache\n"
        "asyncio.run(freshcache.AsyncCache(sys.argv[1]).aclose())\n"
        "freshcache.Cache(sys.argv[1]).close()\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, redis_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
