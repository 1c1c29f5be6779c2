"""Write-behind's pure decisions: partitions, versions, entries, coalescing, retries."""

from __future__ import annotations

import pytest
from redis.crc import key_slot as redis_key_slot

from freshcache._core.layout import cluster_stream_key, key_slot
from freshcache._core.persistence import judge, weakest
from freshcache._core.streams import (
    Malformed,
    Outcome,
    Write,
    after_failure,
    coalesce,
    current_key,
    decode_entry,
    encode_value,
    lag_seconds,
    partition_of,
    too_many_deliveries,
    version_of,
)


def test_partition_is_stable_and_spreads_keys() -> None:
    assert partition_of("user:1", 4) == partition_of("user:1", 4)
    assert partition_of("user:1", 1) == 0
    counts = [0] * 4
    for i in range(4000):
        counts[partition_of(f"user:{i}", 4)] += 1
    assert min(counts) > 800  # roughly even


def test_versions_follow_stream_ids() -> None:
    assert version_of("1700000000000-0") < version_of("1700000000000-1")
    assert version_of("1700000000000-999999") < version_of("1700000000001-0")
    assert version_of(b"5-3") == 5_000_003
    with pytest.raises(ValueError):
        version_of("5-1000000")


def test_values_must_be_json() -> None:
    assert encode_value({"a": [1, None]}) == '{"a":[1,null]}'
    with pytest.raises(TypeError, match="JSON"):
        encode_value({1, 2})
    with pytest.raises(TypeError):
        encode_value(float("nan"))


def test_decode_entry() -> None:
    write = decode_entry("s", b"7-1", {b"k": b"user:1", b"v": b'{"a":1}', b"d": b"x"})
    assert write == Write("user:1", '{"a":1}', 7_000_001, "7-1", "s", "x")
    assert isinstance(write, Write)
    assert write.value == {"a": 1}
    assert isinstance(decode_entry("s", "7-1", {"garbage": "x"}), Malformed)
    assert isinstance(decode_entry("s", "7-1", {"k": "a", "v": "{"}), Malformed)
    assert isinstance(decode_entry("s", "7-1", None), Malformed)


def test_current_key_follows_namespace_bumps() -> None:
    fields = {"k": "user:1", "v": "1", "d": "fc:v1:user:1"}
    put = dict(fields, h="fc:v1:", n="user", b="fc:v1:user:1")
    write = decode_entry("s", "7-1", put)
    assert isinstance(write, Write)
    assert current_key(write, 0) == "fc:v1:user:1"
    assert current_key(write, 3) == "fc:v1:user~3:1"
    old = decode_entry("s", "7-1", fields)  # queued by an older freshcache
    assert isinstance(old, Write)
    assert current_key(old, 3) is None
    for forged in (dict(put, b="other:user:1"), dict(put, n="us{er")):
        bad = decode_entry("s", "7-1", forged)
        assert isinstance(bad, Write)
        assert current_key(bad, 3) is None


def _w(key: str, version: int) -> Write:
    return Write(key, str(version), version, f"{version}-0")


def test_coalesce_keeps_the_newest_per_key_whatever_the_order() -> None:
    batch = [_w("a", 1), _w("b", 2), _w("a", 5), _w("a", 3)]
    assert coalesce(batch) == [_w("a", 5), _w("b", 2)]
    assert coalesce([]) == []


def test_retry_or_dead_letter() -> None:
    assert after_failure(permanent=True) is Outcome.DEAD_LETTER
    assert after_failure(permanent=False) is Outcome.RETRY  # an outage: never
    assert not too_many_deliveries(5, 5)
    assert too_many_deliveries(6, 5)


def test_lag() -> None:
    assert lag_seconds(None, 100.0) == 0.0
    assert lag_seconds("98000-0", 100.0) == pytest.approx(2.0)
    assert lag_seconds("101000-0", 100.0) == 0.0


def test_persistence_verdict() -> None:
    safe = {"maxmemory-policy": "noeviction", "appendonly": "yes"}
    verdict = judge({**safe, "appendfsync": "always"})
    assert (verdict.durable, verdict.refusals, verdict.warnings) == (True, (), ())
    everysec = judge({**safe, "appendfsync": "everysec"})
    assert not everysec.durable
    assert "second" in everysec.warnings[0]
    assert "appendonly" in judge({**safe, "appendonly": "no"}).warnings[0]
    lru = {**safe, "appendfsync": "always", "maxmemory-policy": "allkeys-lru"}
    assert judge(lru).refusals
    assert not judge(lru).durable
    overridden = judge(lru, allow_eviction=True)
    assert (overridden.refusals, len(overridden.warnings)) == ((), 1)
    assert judge({**lru, "maxmemory-policy": "volatile-lru"}).durable
    assert len(judge({}).warnings) == 2  # CONFIG refused: cannot tell
    replicated = {**safe, "appendfsync": "always", "role": "master"}
    assert "failover" in judge({**replicated, "connected_slaves": "1"}).warnings[0]
    assert judge({**replicated, "connected_slaves": "1"}, replicas=1).warnings == ()


def test_key_slot_is_redis_clusters() -> None:
    keys = ["user:1", "{user1000}.following", "foo{}bar", "foo{bar}baz", "{", "é"]
    keys += [f"app:v1:item:{n}" for n in range(500)]
    for key in keys:
        assert key_slot(key) == redis_key_slot(key.encode()), key


def test_cluster_streams_sit_in_evenly_spaced_slots() -> None:
    for partitions in (1, 3, 4, 6, 100):
        slots = [
            key_slot(cluster_stream_key("app", "q", i, partitions))
            for i in range(partitions)
        ]
        ranges = min(partitions, 64)
        for i, slot in enumerate(slots):
            index = i % ranges
            assert index * 16384 // ranges <= slot < (index + 1) * 16384 // ranges
    names = {cluster_stream_key("app", "q", i, 4) for i in range(4)}
    assert len(names) == 4
    assert all(n.startswith("{app:!wb:q:p") and n.endswith("}") for n in names)
    assert cluster_stream_key("app", "q", 2, 4) == cluster_stream_key("app", "q", 2, 4)


def test_the_weakest_primary_decides_a_clusters_verdict() -> None:
    good = {
        "maxmemory-policy": "noeviction", "appendonly": "yes",
        "appendfsync": "always", "role": "master", "connected_slaves": "0",
    }  # fmt: skip
    assert judge(weakest([good, good])).durable
    lazy = {**good, "appendfsync": "everysec"}
    assert not judge(weakest([good, lazy])).durable
    evicting = {**good, "maxmemory-policy": "allkeys-lru"}
    assert judge(weakest([evicting, good])).refusals
    hidden = {k: v for k, v in good.items() if k != "appendonly"}
    assert "appendonly" not in weakest([good, hidden])
    replicated = {**good, "connected_slaves": "1"}
    assert weakest([good, replicated])["connected_slaves"] == "1"
    assert judge(weakest([good, replicated])).warnings  # replicas=0 with replicas
    assert weakest([]) == {}
