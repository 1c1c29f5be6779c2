"""freshcache: caching that knows when cached data is wrong, and does not serve it."""

from freshcache._async.cache import AsyncCache
from freshcache._async.decorator import AsyncCachedFunction
from freshcache._async.writebehind.producer import AsyncWriteBehind
from freshcache._async.writebehind.worker import AsyncWriteBehindWorker
from freshcache._async.writethrough import AsyncWriteThrough
from freshcache._core.clock import Clock, FakeClock, SystemClock
from freshcache._core.config import L1
from freshcache._core.sentinels import MISS, TTL, UNSET
from freshcache._core.streams import Write, WriteBehindStats
from freshcache._sync.cache import Cache
from freshcache._sync.decorator import CachedFunction
from freshcache._sync.writebehind.producer import WriteBehind
from freshcache._sync.writebehind.worker import WriteBehindWorker
from freshcache._sync.writethrough import WriteThrough
from freshcache.errors import (
    BacklogFullError,
    CapacityStoreError,
    ConfigStoreError,
    FreshcacheError,
    PermanentWriteError,
    SerializationError,
    StoreError,
    TransientStoreError,
    UnsafeRedisError,
    UnstableKeyError,
)
from freshcache.metrics import CacheStats, Latency, Metrics, NullMetrics, StatsRecorder
from freshcache.sinks.base import Sink
from freshcache.sinks.callable import CallableSink

__all__ = [
    "L1",
    "MISS",
    "TTL",
    "UNSET",
    "AsyncCache",
    "AsyncCachedFunction",
    "AsyncWriteBehind",
    "AsyncWriteBehindWorker",
    "AsyncWriteThrough",
    "BacklogFullError",
    "Cache",
    "CacheStats",
    "CachedFunction",
    "CallableSink",
    "CapacityStoreError",
    "Clock",
    "ConfigStoreError",
    "FakeClock",
    "FreshcacheError",
    "Latency",
    "Metrics",
    "NullMetrics",
    "PermanentWriteError",
    "SerializationError",
    "Sink",
    "StatsRecorder",
    "StoreError",
    "SystemClock",
    "TransientStoreError",
    "UnsafeRedisError",
    "UnstableKeyError",
    "Write",
    "WriteBehind",
    "WriteBehindStats",
    "WriteBehindWorker",
    "WriteThrough",
]
