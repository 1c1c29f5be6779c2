"""Failure policy on a real Redis: killed, paused, misconfigured, corrupted.

Each fault test starts its own redis-server (tests/servers.py) so that it can
kill or pause it without touching the shared one.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
import redis

from freshcache import MISS, AsyncCache
from freshcache._concurrency import asleep
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis


def _require_redis_server(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis


async def test_killed_server_falls_back_to_the_loader(
    request: pytest.FixtureRequest,
) -> None:
    _require_redis_server(request)
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="faults") as cache:
            assert await cache.get_or_load("k", lambda: "from-db") == "from-db"
            assert await cache.get("k") == "from-db"
            server.kill()
            loads = 0

            def loader() -> str:
                nonlocal loads
                loads += 1
                return "from-db"

            for _ in range(20):  # no exception reaches the caller
                assert await cache.get_or_load("k", loader) == "from-db"
                assert await cache.get("k") is MISS
                assert await cache.set("k", "v") is False
            assert loads == 20
            errors = cache.stats().errors
            assert errors["transient"] >= 5
            assert errors["circuit_open"] > 0  # the breaker stopped paying the deadline
            assert await cache.invalidate("k") is False  # queued: never dropped
            assert cache.stats().pending_invalidations == 1


async def test_paused_server_costs_a_deadline_not_a_default_timeout(
    request: pytest.FixtureRequest,
) -> None:
    _require_redis_server(request)
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="faults", timeout=0.05) as cache:
            await cache.set("k", "cached")
            server.stop()
            started = time.monotonic()
            for _ in range(10):
                assert await cache.get_or_load("k", lambda: "from-db") == "from-db"
            elapsed = time.monotonic() - started
            server.cont()
            # redis-py's defaults would take 5 s per call; 10 calls under our
            # deadline and breaker take well under one default timeout.
            assert elapsed < 5.0
            assert cache.stats().errors["transient"] >= 1


async def test_server_recovers_after_the_breaker_opens(
    request: pytest.FixtureRequest,
) -> None:
    _require_redis_server(request)
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="faults", timeout=0.05) as cache:
            server.stop()
            for _ in range(6):
                await cache.get("k")
            server.cont()
            deadline = time.monotonic() + 5
            while await cache.set("k", "back") is False:
                assert time.monotonic() < deadline, "cache never used Redis again"
                await asleep(0.05)
            assert await cache.get("k") == "back"


async def test_wrongtype_is_loud_and_falls_back(
    redis_url: str,
    key_prefix: str,
    redis_cleanup: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = redis.Redis.from_url(redis_url)
    raw.rpush(f"{key_prefix}:v1:k", "not-a-string")
    raw.close()
    async with AsyncCache(redis_url, prefix=key_prefix) as cache:
        with caplog.at_level(logging.ERROR, logger="freshcache"):
            assert await cache.get_or_load("k", lambda: "from-db") == "from-db"
        assert cache.stats().errors["config"] >= 1
        assert any("WRONGTYPE" in r.getMessage() for r in caplog.records)


async def test_auth_failure_is_loud(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    _require_redis_server(request)
    with own_redis_server("--requirepass", "s3cret") as server:
        url = server.url.replace("redis://", "redis://:pw-Zq81-secret@")
        async with AsyncCache(url, prefix="faults") as cache:
            with caplog.at_level(logging.ERROR, logger="freshcache"):
                assert await cache.get_or_load("k", lambda: 1) == 1
            assert cache.stats().errors["config"] >= 1
            assert caplog.records, "an auth failure must be logged loudly"
            assert "pw-Zq81-secret" not in caplog.text  # never log secrets


async def test_corrupt_bytes_are_a_miss_and_are_removed(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    raw = redis.Redis.from_url(redis_url)
    full = f"{key_prefix}:v1:k"
    for garbage in [b"\xfc", b"not an envelope", b"\x80\x04K\x01."]:
        raw.set(full, garbage)
        async with AsyncCache(redis_url, prefix=key_prefix) as cache:
            assert await cache.get("k") is MISS
            assert any(kind.startswith("decode:") for kind in cache.stats().errors)
        assert raw.exists(full) == 0, "undecodable bytes are unlinked"
    # An empty string reads as no value at all (reads use GETRANGE, which
    # answers a missing key with one): a fill replaces it.
    raw.set(full, b"")
    async with AsyncCache(redis_url, prefix=key_prefix) as cache:
        assert await cache.get("k") is MISS
        assert await cache.get_or_load("k", lambda: "loaded") == "loaded"
        assert await cache.get("k") == "loaded"
    raw.close()


async def test_value_from_another_key_is_rejected(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix) as cache:
        await cache.set("a", "value of a")
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"{key_prefix}:v1:b", raw.get(f"{key_prefix}:v1:a") or b"")
        raw.close()
        assert await cache.get("b") is MISS  # cross-talk caught by the key check
        assert cache.stats().errors.get("decode:key_check") == 1


@dataclasses.dataclass
class ProfileV1:
    id: int


@dataclasses.dataclass
class ProfileV2:
    id: int
    email: str  # a required field added by a deploy


async def test_data_that_no_longer_fits_its_type_is_a_miss(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    async with AsyncCache(redis_url, prefix=key_prefix) as old_deploy:

        @old_deploy.cached("profile:{pid}")
        async def old(pid: int) -> ProfileV1:
            return ProfileV1(pid)

        assert await old(1) == ProfileV1(1)
    async with AsyncCache(redis_url, prefix=key_prefix) as new_deploy:

        @new_deploy.cached("profile:{pid}")
        async def new(pid: int) -> ProfileV2:
            return ProfileV2(pid, "a@example.com")

        assert await new(1) == ProfileV2(1, "a@example.com")
        # Two looks at the old entry (the read, and the lease's second look),
        # then one load whose fill replaces it.
        assert new_deploy.stats().errors["decode:revive"] == 2
        assert await new(1) == ProfileV2(1, "a@example.com")  # refilled
        assert new_deploy.stats().loads == 1


async def test_a_reader_of_another_type_deletes_nothing(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """One caller reading a key as the wrong type gets a miss; the entry
    stays for everyone else (it used to be deleted on each such read, so a
    hot key could stay uncached)."""
    async with AsyncCache(redis_url, prefix=key_prefix) as cache:
        assert await cache.set("profile:1", {"pid": 1}) is True
        for _ in range(5):
            assert await cache.get("profile:1", returns=ProfileV2) is MISS
        assert cache.stats().errors["decode:revive"] == 5
        assert await cache.get("profile:1") == {"pid": 1}
