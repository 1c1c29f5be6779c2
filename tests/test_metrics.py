"""Built-in stats and the null sink."""

from __future__ import annotations

from freshcache.metrics import BUCKETS, CacheStats, Latency, NullMetrics, StatsRecorder


def test_fresh_recorder_snapshot_is_empty_and_safe() -> None:
    stats = StatsRecorder().snapshot()
    assert stats.hit_rate == 0.0
    assert stats.requests == 0
    assert stats.latency == {}


def test_hits_misses_by_tier_and_namespace() -> None:
    rec = StatsRecorder()
    rec.hit("memory", "user")
    rec.hit("redis", "user")
    rec.miss("memory", "team")
    rec.miss("redis", "team")
    rec.miss("all", "team")
    stats = rec.snapshot()
    assert stats.hits == {"memory": 1, "redis": 1}
    assert stats.misses == {"memory": 1, "redis": 1, "all": 1}
    assert stats.hits_by_namespace == {"user": 2}
    assert stats.misses_by_namespace == {"team": 1}
    assert stats.requests == 3
    assert stats.hit_rate == 2 / 3


def test_loads_evictions_errors_latency() -> None:
    rec = StatsRecorder()
    rec.load("user", 0.002, failed=False)
    rec.load("user", 0.5, failed=True)
    rec.eviction("memory", "bytes")
    rec.error("transient")
    rec.error("transient")
    stats = rec.snapshot()
    assert (stats.loads, stats.load_errors) == (2, 1)
    assert stats.load_seconds == 0.502
    assert stats.evictions == {"memory:bytes": 1}
    assert stats.errors == {"transient": 2}
    assert stats.latency["load"].count == 2
    assert stats.latency["load"].quantile(0.5) == 0.0025
    assert stats.latency["load"].quantile(1.0) == 0.5


def test_latency_quantiles() -> None:
    assert Latency().quantile(0.99) is None
    counts = [0] * len(BUCKETS)
    counts[0] = 99
    counts[-1] = 1
    latency = Latency(tuple(counts))
    assert latency.quantile(0.5) == BUCKETS[0]
    assert latency.quantile(1.0) == float("inf")


def test_null_metrics_record_nothing() -> None:
    null = NullMetrics()
    null.hit("memory", "x")
    null.load("x", 1.0, failed=False)
    assert null.snapshot() == CacheStats()
