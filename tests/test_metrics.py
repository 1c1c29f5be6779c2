"""Built-in stats and the null sink."""

from __future__ import annotations

import json
import math

from freshcache.metrics import (
    BUCKETS,
    Bypass,
    CacheStats,
    ErrorClass,
    Latency,
    Lookups,
    NullMetrics,
    StatsRecorder,
    Tier,
)


def test_fresh_recorder_snapshot_is_empty_and_safe() -> None:
    stats = StatsRecorder().snapshot()
    assert stats.hit_rate == 0.0
    assert stats.lookups.total == 0
    assert stats.latency == {}
    assert stats == CacheStats()


def test_lookups_by_tier_outcome_and_namespace() -> None:
    rec = StatsRecorder()
    rec.hit("l1", "user")  # an L1 hit
    rec.miss("l1", "user")  # an L1 miss, then a Redis hit
    rec.hit("redis", "user")
    rec.miss("l1", "team")  # missed everywhere
    rec.miss("redis", "team")
    rec.miss("cache", "team")
    rec.bypass("l1", "team", Bypass.STALE_BOUND)  # L1 refused, Redis down
    rec.bypass("redis", "team", Bypass.CIRCUIT_OPEN)
    rec.bypass("cache", "team", Bypass.CIRCUIT_OPEN)
    stats = rec.snapshot()
    assert stats.lookups == Lookups(2, 1, {"circuit_open": 1})
    assert stats.lookups.total == 4
    assert stats.hit_rate == 0.5
    assert stats.l1 == Lookups(1, 2, {"stale_bound": 1})
    assert stats.redis == Lookups(1, 1, {"circuit_open": 1})
    assert stats.namespaces["user"].lookups == Lookups(hits=2)
    assert stats.namespaces["user"].redis == Lookups(hits=1)
    assert stats.namespaces["team"].lookups.bypassed == 1
    assert stats.namespaces["team"].l1.total == 2
    assert list(stats.lookups.bypasses) == ["circuit_open"]  # plain str keys
    assert Tier.L1 == "l1"
    assert Tier.CACHE == "cache"


def test_loads_evictions_errors_latency() -> None:
    rec = StatsRecorder()
    rec.load("user", 0.002, failed=False)
    rec.load("user", 0.5, failed=True)
    rec.eviction("l1", "bytes")
    rec.error("transient")
    rec.error("transient")
    stats = rec.snapshot()
    assert (stats.loads, stats.load_errors) == (2, 1)
    assert stats.load_seconds == 0.502
    assert stats.evictions == {"l1:bytes": 1}
    assert stats.errors == {"transient": 2}
    load = stats.latency["load"]
    assert load.count == 2
    assert math.isclose(load.sum, 0.502)
    assert load.quantile(0.5) == 0.0025
    assert load.quantile(1.0) == 0.5
    assert load.p50 == 0.0025
    assert load.p99 == 0.5
    assert load.bounds == BUCKETS
    assert dict(load.buckets)[0.0025] == 1


def test_latency_quantiles() -> None:
    assert Latency().quantile(0.99) is None
    assert Latency().mean is None
    counts = [0] * len(BUCKETS)
    counts[0] = 99
    counts[-1] = 1
    latency = Latency(tuple(counts), sum=20.0)
    assert latency.quantile(0.5) == BUCKETS[0]
    assert latency.quantile(1.0) == float("inf")
    assert latency.mean == 0.2


def test_null_metrics_record_nothing() -> None:
    null = NullMetrics()
    null.hit("l1", "x")
    null.bypass("cache", "x", Bypass.DISABLED)
    null.load("x", 1.0, failed=False)
    assert null.snapshot() == CacheStats()


def test_to_dict_is_plain_json_of_every_field() -> None:
    recorder = StatsRecorder()
    recorder.hit(Tier.L1, "user")
    recorder.miss(Tier.L1, "user")
    recorder.miss(Tier.REDIS, "user")
    recorder.miss(Tier.CACHE, "user")
    recorder.bypass(Tier.CACHE, "team", Bypass.CIRCUIT_OPEN)
    recorder.load("user", 0.002, failed=False)
    recorder.error(ErrorClass.DECODE.detail("checksum"))
    recorder.gauge("writebehind_lag", 1.5)
    recorder.gauge("broken", math.nan)
    stats = recorder.snapshot()
    out = json.loads(json.dumps(stats.to_dict(), allow_nan=False))
    assert out["lookups"] == {
        "hits": 1, "misses": 1, "bypasses": {"circuit_open": 1}, "hit_rate": 1 / 3,
    }  # fmt: skip
    assert out["l1"]["hit_rate"] == 0.5
    assert out["namespaces"]["team"]["lookups"]["bypasses"] == {"circuit_open": 1}
    assert out["loads"] == 1
    assert out["errors"] == {"decode:checksum": 1}
    assert out["gauges"] == {"writebehind_lag": 1.5}  # NaN is left out
    load = out["latency"]["load"]
    assert sum(load["counts"]) == 1
    assert load["sum"] == 0.002
    assert "latency" not in stats.to_dict(latency=False)
