"""Write-behind's ``put_many`` is all or nothing, whatever Redis refuses.

One script appends every write to its partition's stream, sets each cache
entry and pending mark, and publishes one bus message. It must fail before
its first write or not at all: a stream that is not a stream (WRONGTYPE,
found by the script's first loop, before any write), or a Redis over its
``maxmemory`` under ``noeviction`` (refused at the script's first write).
Either way the call raises, and no stream entry, cache entry or pending
mark of the batch exists afterwards.
"""

from __future__ import annotations

import pytest
import redis

from freshcache import AsyncCache, CapacityStoreError, ConfigStoreError
from freshcache._core.streams import partition_of
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

PARTITIONS = 4
KEYS = [f"user:{i}" for i in range(24)]


def _batch_state(client: redis.Redis, prefix: str) -> tuple[list[int], int, int]:
    """Entries per stream (-1: not a stream), cache entries and pending
    marks of the batch's keys."""
    lengths = []
    for p in range(PARTITIONS):
        stream = f"{prefix}:!wb:q:p{p}"
        kind = client.type(stream)
        lengths.append(client.xlen(stream) if kind == b"stream" else -1)
    entries = sum(client.exists(f"{prefix}:v1:{k}") for k in KEYS)
    marks = sum(client.exists("{" + f"{prefix}:v1:{k}" + "}:wb") for k in KEYS)
    return lengths, entries, marks


async def test_a_stream_of_the_wrong_type_refuses_the_whole_batch(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    last = partition_of(KEYS[-1], PARTITIONS)  # a stream the batch reaches late
    assert {partition_of(k, PARTITIONS) for k in KEYS} == set(range(PARTITIONS))
    client = redis.Redis.from_url(redis_url)
    async with AsyncCache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=PARTITIONS)
        await wb.put("warm", 0)  # the queue exists (streams and group)
        stream = f"{key_prefix}:!wb:q:p{last}"
        before = _batch_state(client, key_prefix)
        client.delete(stream)
        client.set(stream, "not a stream")
        with pytest.raises(ConfigStoreError, match="WRONGTYPE"):
            await wb.put_many({k: {"n": i} for i, k in enumerate(KEYS)})
        lengths, entries, marks = _batch_state(client, key_prefix)
        expected = list(before[0])
        expected[last] = -1  # the string we planted
        assert (lengths, entries, marks) == (expected, 0, 0)
        client.delete(stream)
        await wb.aclose(flush=False)  # no worker here: nothing to wait for
    client.close()


async def test_a_full_redis_refuses_the_whole_batch(
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue("redis_url")  # fail in CI / skip locally without Redis
    with own_redis_server(
        "--maxmemory-policy", "noeviction", "--appendonly", "yes"
    ) as server:
        client = redis.Redis.from_url(server.url)
        async with AsyncCache(server.url, prefix="atomic", timeout=1.0) as cache:
            wb = cache.write_behind(name="q", partitions=PARTITIONS)
            await wb.put("warm", 0)
            before = _batch_state(client, "atomic")
            for i in range(40):  # 2 MB, then a 1 MB limit: over it
                client.set(f"filler:{i}", "x" * 50_000)
            client.config_set("maxmemory", 1024 * 1024)
            with pytest.raises(CapacityStoreError):
                await wb.put_many({k: {"n": i} for i, k in enumerate(KEYS)})
            assert _batch_state(client, "atomic") == before
            await wb.aclose(flush=False)
        client.close()
