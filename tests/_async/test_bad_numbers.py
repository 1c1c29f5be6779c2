"""Every TTL, size, count and timeout of the public API refuses bad numbers
with ``ValueError`` (a bool, NaN, infinity, negative, zero where zero has no
meaning, out of range), before anything is stored or connected. The table
follows the reliability plan's bad-input table (TTL 0, negative, sub-ms,
huge, None, timedelta)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from freshcache import L1, AsyncCache

NAN, INF = math.nan, math.inf
# Bad for every TTL: ttl, stale_ttl (0 means none there), negative_ttl, lease_ttl
BAD_TTLS = [
    0, 0.0, -1, -0.001, timedelta(seconds=-1), NAN, INF, -INF, True, False,
    10**400, 11 * 365 * 86400, timedelta(days=4000),
]  # fmt: skip
BAD_STALE = [t for t in BAD_TTLS if t not in (0, 0.0) or isinstance(t, bool)]
GOOD_TTLS = [1, 0.0001, timedelta(minutes=5), None]

# (keyword of AsyncCache, bad values)
CACHE_NUMBERS: list[tuple[str, list[Any]]] = [
    ("ttl", BAD_TTLS),
    ("stale_ttl", [*BAD_STALE, None]),
    ("lease_ttl", [*BAD_TTLS, None]),
    ("timeout", [0, -1, NAN, INF, True, 3601]),
    ("max_connections", [0, -1, 1.5, 16.0, NAN, INF, True, 1 << 17]),
    ("max_value_bytes", [0, -1, 1.5, True, 10]),
    ("compress_threshold", [-1, 1.5, True, NAN]),
    ("xfetch_beta", [-0.1, NAN, INF, True]),
    ("ttl_jitter", [-0.1, 1, 1.5, NAN, INF, True]),
    ("publish_stats", [0, -1, NAN, INF, True, 3601]),
]
L1_NUMBERS: list[tuple[str, list[Any]]] = [
    ("max_entries", [0, -1, 1.5, NAN, INF, True]),
    ("max_bytes", [0, -1, 1.5, NAN, INF, True]),
    ("ttl", [0, -1, NAN, INF, True]),
    ("max_staleness", [0, 0.001, 61, NAN, INF, True]),
    ("serve_stale_when_down", [-1, 3601, NAN, INF, True]),
]
WRITE_BEHIND_NUMBERS: list[tuple[str, list[Any]]] = [
    ("partitions", [0, -1, 1.5, NAN, True, 1025]),
    ("max_backlog", [0, 1, -1, 1.5, NAN, INF, True]),  # 1 < partitions (4)
    ("replicas", [-1, 1.5, NAN, True]),
    ("replica_timeout", [0, -1, NAN, INF, True]),
    ("timeout", [0, -1, NAN, INF, True]),
    ("recheck", [0, -1, NAN, INF, True]),
    ("ttl", BAD_TTLS),
    ("stale_ttl", BAD_STALE),
]
WORKER_NUMBERS: list[tuple[str, list[Any]]] = [
    ("batch_size", [0, -1, 1.5, NAN, True]),
    ("max_deliveries", [0, -1, 1.5, NAN, True]),
    ("block", [-1, NAN, INF, True]),
    ("claim_idle", [0, -1, NAN, INF, True]),
    ("timeout", [0, -1, NAN, INF, True]),
]


def _cases(table: list[tuple[str, list[Any]]]) -> list[Any]:
    return [
        pytest.param(name, value, id=f"{name}={value!r}")
        for name, values in table
        for value in values
    ]


@pytest.mark.parametrize(("name", "value"), _cases(CACHE_NUMBERS))
def test_cache_refuses(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        AsyncCache(**{name: value})


@pytest.mark.parametrize(("name", "value"), _cases(L1_NUMBERS))
def test_l1_refuses(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        L1(**{name: value})


@pytest.mark.parametrize("ttl", BAD_TTLS)
async def test_calls_refuse_a_bad_ttl_and_store_nothing(ttl: Any) -> None:
    async with AsyncCache() as cache:
        with pytest.raises(ValueError, match="ttl"):
            await cache.set("k", 1, ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            await cache.set_many({"k": 1}, ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            await cache.get_or_load("k", lambda: 1, ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            await cache.get_or_load("k", lambda: None, negative_ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            cache.cached("f:{x}", ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            cache.write_through("k", ttl=ttl)  # before the transaction
        assert await cache.get("k", None) is None  # nothing was stored


@pytest.mark.parametrize("stale_ttl", BAD_STALE)
async def test_calls_refuse_a_bad_stale_ttl(stale_ttl: Any) -> None:
    async with AsyncCache() as cache:
        with pytest.raises(ValueError, match="stale_ttl"):
            await cache.set("k", 1, stale_ttl=stale_ttl)
        with pytest.raises(ValueError, match="stale_ttl"):
            await cache.get_or_load("k", lambda: 1, stale_ttl=stale_ttl)
        with pytest.raises(ValueError, match="stale_ttl"):
            cache.cached(stale_ttl=stale_ttl)


@pytest.mark.parametrize("ttl", GOOD_TTLS)
async def test_good_ttls_are_taken(ttl: Any) -> None:
    async with AsyncCache() as cache:
        assert await cache.set("k", 1, ttl=ttl)
        assert await cache.get_or_load("j", lambda: 2, ttl=ttl, stale_ttl=0) == 2


def test_a_str_is_a_type_error_not_a_number() -> None:
    with pytest.raises(TypeError):
        AsyncCache(ttl="60")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AsyncCache(timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        L1(max_entries="10")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "value"), _cases(WRITE_BEHIND_NUMBERS))
async def test_write_behind_refuses(
    name: str, value: Any, redis_url: str, key_prefix: str
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix) as cache:  # nothing connects
        with pytest.raises(ValueError, match=name):
            cache.write_behind(name="q", **{name: value})


@pytest.mark.parametrize(("name", "value"), _cases(WORKER_NUMBERS))
async def test_worker_refuses(
    name: str, value: Any, redis_url: str, key_prefix: str
) -> None:
    from freshcache import CallableSink

    async with AsyncCache(redis_url, prefix=key_prefix) as cache:
        wb = cache.write_behind(name="q")
        with pytest.raises(ValueError, match=name):
            wb.worker(CallableSink(list), **{name: value})
        await wb.aclose(flush=False)
