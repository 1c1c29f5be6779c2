"""Stored values cannot be corrupted silently, end to end: every bit of an
envelope in Redis flipped with a raw client reads through the cache as a
miss, counted as a decode error, and the damaged key is removed. The L1's
copy mode, which keeps envelopes in memory, is held to the same rule.

Before the envelope carried a checksum, a flip without ``secret=`` could
decode to a different value (``{'tser': 'alice', ...}``).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from freshcache import L1, MISS, AsyncCache
from freshcache._core.entry import Entry
from tests.core.test_envelope_integrity import version_1

pytestmark = pytest.mark.redis

VALUE = {"user": "alice", "role": "admin", "team": "blue"}


def _decode_errors(cache: AsyncCache) -> dict[str, int]:
    errors = cache.stats().errors
    return {kind: n for kind, n in errors.items() if kind.startswith("decode:")}


@pytest.mark.parametrize(
    ("serializer", "secret"),
    [
        pytest.param("json", None, id="json"),
        pytest.param("msgpack", None, id="msgpack"),
        pytest.param("json", "s3cret-key", id="json-secret"),
        pytest.param("msgpack", "s3cret-key", id="msgpack-secret"),
    ],
)
async def test_every_flipped_bit_in_redis_is_a_counted_miss(
    redis_url: str, key_prefix: str, redis_cleanup: None, serializer: Any, secret: Any
) -> None:
    raw = redis.Redis.from_url(redis_url)
    full = f"{key_prefix}:v1:user:1"
    try:
        async with AsyncCache(
            redis_url, prefix=key_prefix, serializer=serializer, secret=secret
        ) as cache:
            assert await cache.set("user:1", VALUE)
            stored = raw.get(full)
            assert stored is not None
            wrong: list[tuple[int, object]] = []  # flips that read as a value
            kept: list[int] = []  # flips whose damaged bytes stayed in Redis
            for bit in range(len(stored) * 8):
                damaged = bytearray(stored)
                damaged[bit // 8] ^= 1 << (bit % 8)
                raw.set(full, bytes(damaged))
                got = await cache.get("user:1")
                if got is not MISS:
                    wrong.append((bit, got))
                elif raw.exists(full):
                    kept.append(bit)
            different = [(bit, got) for bit, got in wrong if got != VALUE]
            assert different == [], f"{len(different)} flips: {different[:3]}"
            # nor the value itself: a damaged header (a later fresh_until) is
            # no more to be trusted than a damaged payload
            assert wrong == [], f"{len(wrong)} flips returned a value: {wrong[:3]}"
            assert kept == [], f"{len(kept)} damaged envelopes stayed: {kept[:5]}"
            errors = _decode_errors(cache)
            assert sum(errors.values()) == len(stored) * 8
            assert errors.get("decode:signature" if secret else "decode:checksum")
            # the key works again once a good value is stored
            raw.set(full, stored)
            assert await cache.get("user:1") == VALUE
            raw.set(full, stored[:-1] + bytes([stored[-1] ^ 0x10]))
            assert await cache.get_or_load("user:1", lambda: "from-db") == "from-db"
            assert await cache.get("user:1") == "from-db"
    finally:
        raw.close()


async def test_a_damaged_envelope_in_a_copying_l1_is_a_counted_miss() -> None:
    async with AsyncCache(l1=L1(copy=True)) as cache:
        assert await cache.set("user:1", VALUE)
        assert await cache.get("user:1") == VALUE
        tier = cache.engine.l1
        assert tier is not None
        (full,) = tier.store._map  # the only entry
        entry = tier.store.get(full)
        damaged = bytearray(entry.value)  # copy mode: the envelope's bytes
        damaged[len(damaged) // 2] ^= 0x04
        tier.store.set(full, entry._replace(value=bytes(damaged)), ttl=None)
        assert await cache.get("user:1") is MISS
        assert _decode_errors(cache) == {"decode:checksum": 1}
        assert full not in tier.store._map, "the damaged entry is dropped"
        assert await cache.get_or_load("user:1", lambda: "loaded") == "loaded"


@pytest.mark.parametrize("secret", [None, "s3cret-key"], ids=["plain", "secret"])
async def test_an_older_format_entry_in_redis_is_a_counted_miss(
    redis_url: str, key_prefix: str, redis_cleanup: None, secret: Any
) -> None:
    """What the previous release (envelope format 1) stored under the same
    key: a miss, never an exception or a value, then replaced by a fill."""
    raw = redis.Redis.from_url(redis_url)
    full = f"{key_prefix}:v1:user:1"
    key = secret.encode() if secret else None
    raw.set(full, version_1("json", key, full, Entry(VALUE, 1.0)))
    try:
        async with AsyncCache(redis_url, prefix=key_prefix, secret=secret) as cache:
            assert await cache.get("user:1") is MISS
            assert _decode_errors(cache) == {"decode:format": 1}
            assert raw.exists(full) == 0
            assert await cache.get_or_load("user:1", lambda: VALUE) == VALUE
            assert await cache.get("user:1") == VALUE
            assert raw.get(full)[1] == 2  # type: ignore[index]
    finally:
        raw.close()
