"""freshcache: caching that knows when cached data is wrong, and does not serve it."""

from freshcache._async.cache import AsyncCache
from freshcache._async.decorator import AsyncCachedFunction
from freshcache._async.worker import AsyncWriteBehindWorker
from freshcache._async.writebehind import AsyncWriteBehind
from freshcache._async.writethrough import AsyncWriteThrough
from freshcache._sync.cache import Cache
from freshcache._sync.decorator import CachedFunction
from freshcache._sync.worker import WriteBehindWorker
from freshcache._sync.writebehind import WriteBehind
from freshcache._sync.writethrough import WriteThrough
from freshcache._types import MISS, TTL, UNSET
from freshcache.clock import Clock, FakeClock, SystemClock
from freshcache.config import L1
from freshcache.core.streams import Write, WriteBehindStats
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
