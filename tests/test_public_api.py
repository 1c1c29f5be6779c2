"""The public surface: exported names, and sync/async parity."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import freshcache
from freshcache import AsyncCache, AsyncCachedFunction, Cache, CachedFunction

SRC = Path(freshcache.__file__).parent


def _public_methods(cls: type) -> set[str]:
    names = {n for n in dir(cls) if not n.startswith("_")}
    return names | {n for n in ("__enter__", "__exit__") if hasattr(cls, n)}


PUBLIC = {
    "L1", "MISS", "TTL", "UNSET",
    "AsyncCache", "AsyncCachedFunction", "AsyncEvents", "AsyncWriteBehind",
    "AsyncWriteBehindWorker", "AsyncWriteThrough",
    "Cache", "CachedFunction", "Events", "WriteBehind", "WriteBehindWorker",
    "WriteThrough",
    "Clock", "SystemClock", "Verdict", "WorkerTotals", "Write", "WriteBehindStats",
    "FreshcacheError", "UnstableKeyError", "SerializationError",
    "ValueTooLargeError", "RevivalError", "StoreError", "TransientStoreError",
    "BacklogFullError", "CapacityStoreError", "ConfigStoreError",
    "UnsafeRedisError", "PermanentWriteError", "CacheClosedError",
    "CircuitOpenError",
    "CacheStats", "Latency", "Metrics", "NullMetrics", "StatsRecorder",
    "BUCKETS", "Bypass", "ErrorClass", "Event", "Lookups", "NamespaceStats",
    "Outcome", "Tier", "Operation", "Gauge",
    "Sink", "CallableSink",
    "NullTracing", "Span", "SpanName", "Tracing",
    "AsyncLive", "Live", "EnvelopeHeader", "KeyInfo", "L1View", "LiveStats",
    "ProcessStats",
}  # fmt: skip


def test_all_is_pinned() -> None:
    """A name added to or dropped from the public surface is a decision: make
    it here too."""
    assert set(freshcache.__all__) == PUBLIC
    assert len(freshcache.__all__) == len(PUBLIC)


def test_all_lists_exactly_the_public_names() -> None:
    exported = {n for n in dir(freshcache) if not n.startswith("_")}
    modules = {n for n in exported if inspect.ismodule(getattr(freshcache, n))}
    assert set(freshcache.__all__) == exported - modules


def test_public_classes_report_the_package_as_their_module() -> None:
    for name in freshcache.__all__:
        value = getattr(freshcache, name)
        if isinstance(value, type):
            assert value.__module__ == "freshcache", name
    assert repr(Cache) == "<class 'freshcache.Cache'>"


def test_every_exception_is_exported() -> None:
    import freshcache.errors

    defined = {
        name
        for name, value in vars(freshcache.errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert len(defined) >= 12
    assert defined <= set(freshcache.__all__)
    for name in defined:  # each one is drawn in the module's hierarchy
        assert name in (freshcache.errors.__doc__ or ""), name


def test_testing_helpers_import_without_pytest() -> None:
    """pytest is no dependency: ``freshcache.testing`` (FakeClock) must not
    import it; only ``freshcache.testing.contract`` does."""
    code = (
        "import sys, freshcache, freshcache.testing\n"
        "freshcache.testing.FakeClock().advance(1)\n"
        "names = ('pytest', '_pytest', 'freshcache.testing.contract')\n"
        "loaded = [m for m in sys.modules if m.startswith(names)]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_freshcache_imports_no_extra() -> None:
    """Every integration and optional codec is an extra: ``import freshcache``
    (the whole public surface) loads none of them, installed or not."""
    extras = (
        "django", "sqlalchemy", "greenlet", "fastapi", "starlette", "flask",
        "werkzeug", "prometheus_client", "opentelemetry", "rich", "psycopg",
        "msgpack", "pydantic", "httpx", "pytest",
    )  # fmt: skip
    code = (
        "import sys, freshcache, freshcache.testing\n"
        f"extras = {extras!r}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(extras))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_contract_is_shipped_in_both_colors() -> None:
    import freshcache.testing.contract as contract
    from freshcache.testing.contract import AsyncCacheContract, CacheContract

    assert contract.__all__ == ["AsyncCacheContract", "CacheContract"]

    def tests(cls: type) -> set[str]:
        return {n for n in dir(cls) if n.startswith("test_")}

    assert tests(CacheContract) == tests(AsyncCacheContract)
    assert len(tests(CacheContract)) >= 20
    for cls in (CacheContract, AsyncCacheContract):  # pytest collects Test* only
        assert not cls.__name__.startswith("Test")


def test_sync_and_async_caches_have_the_same_methods() -> None:
    sync = _public_methods(Cache)
    asynchronous = {
        {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}.get(
            n, n
        )
        for n in _public_methods(AsyncCache) | {"__aenter__", "__aexit__"}
    }
    assert sync == asynchronous
    assert "close" in sync
    assert "get_or_load" in sync


def test_async_methods_are_coroutines_and_sync_ones_are_not() -> None:
    for name in ("get", "set", "get_many", "set_many", "get_or_load", "invalidate"):
        assert inspect.iscoroutinefunction(getattr(AsyncCache, name)), name
        assert not inspect.iscoroutinefunction(getattr(Cache, name)), name


def test_cached_function_protocols_match() -> None:
    assert _public_methods(CachedFunction) == _public_methods(AsyncCachedFunction)


PURE = {
    "__future__", "dataclasses", "enum", "hashlib", "inspect", "math",
    "re", "typing", "unicodedata", "collections", "datetime", "decimal",
    "uuid", "functools", "itertools", "operator", "collections.abc",
    "string", "json", "freshcache.errors",
}  # fmt: skip
# The codec encodes and decodes bytes: computation, still no I/O.
CODEC = {
    "hmac", "pickle", "struct", "zlib", "orjson", "base64", "zoneinfo", "sys",
    "types", "contextlib", "msgpack",
}  # fmt: skip
# The clock reads time: injected everywhere else, defined here.
CLOCK = {"time"}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_core_is_pure() -> None:
    """_core/ imports no I/O, concurrency or redis (docs/architecture.md)."""
    paths = sorted((SRC / "_core").rglob("*.py"))
    assert len(paths) > 10
    for path in paths:
        relative = path.relative_to(SRC).as_posix()
        allowed = PURE | (CODEC if "/codec/" in relative else set())
        allowed |= CLOCK if relative == "_core/clock.py" else set()
        for name in _imports(path):
            pure = name in allowed or name.startswith("freshcache._core")
            assert pure, f"{relative} imports {name}"


def test_only_the_redis_folders_import_redis() -> None:
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(("_async/redis/", "_sync/redis/")):
            continue
        for name in _imports(path):
            assert name.split(".")[0] != "redis", relative


def test_sync_and_async_write_behind_have_the_same_methods() -> None:
    from freshcache import (
        AsyncWriteBehind,
        AsyncWriteBehindWorker,
        WriteBehind,
        WriteBehindWorker,
    )

    renames = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
    for sync, asynchronous in (
        (WriteBehind, AsyncWriteBehind),
        (WriteBehindWorker, AsyncWriteBehindWorker),
    ):
        dunders = {n for n in ("__aenter__", "__aexit__") if hasattr(asynchronous, n)}
        assert _public_methods(sync) == {
            renames.get(n, n) for n in _public_methods(asynchronous) | dunders
        }
    assert inspect.iscoroutinefunction(AsyncWriteBehind.put)
    assert not inspect.iscoroutinefunction(WriteBehind.put)
