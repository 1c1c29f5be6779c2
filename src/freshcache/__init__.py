"""freshcache: caching that knows when cached data is wrong, and does not serve it."""

from freshcache._async.cache import AsyncCache
from freshcache._async.decorator import AsyncCachedFunction
from freshcache._async.writethrough import AsyncWriteThrough
from freshcache._sync.cache import Cache
from freshcache._sync.decorator import CachedFunction
from freshcache._sync.writethrough import WriteThrough
from freshcache._types import MISS, TTL, UNSET
from freshcache.clock import Clock, FakeClock, SystemClock
from freshcache.config import L1
from freshcache.errors import (
    CapacityStoreError,
    ConfigStoreError,
    FreshcacheError,
    SerializationError,
    StoreError,
    TransientStoreError,
    UnstableKeyError,
)
from freshcache.metrics import CacheStats, Latency, Metrics, NullMetrics, StatsRecorder

__all__ = [
    "L1",
    "MISS",
    "TTL",
    "UNSET",
    "AsyncCache",
    "AsyncCachedFunction",
    "AsyncWriteThrough",
    "Cache",
    "CacheStats",
    "CachedFunction",
    "CapacityStoreError",
    "Clock",
    "ConfigStoreError",
    "FakeClock",
    "FreshcacheError",
    "Latency",
    "Metrics",
    "NullMetrics",
    "SerializationError",
    "StatsRecorder",
    "StoreError",
    "SystemClock",
    "TransientStoreError",
    "UnstableKeyError",
    "WriteThrough",
]
