"""freshcache: caching that knows when cached data is wrong, and does not serve it.

Every public name is here, in ``__all__`` (pinned by ``tests/test_public_api.py``);
each class reports ``freshcache`` as its module. ``freshcache.testing`` holds
the helpers for users' tests, ``freshcache.sinks`` the write-behind sinks.
"""

# The caches and what they return
from freshcache._async.cache import AsyncCache
from freshcache._async.decorator import AsyncCachedFunction
from freshcache._async.engine.events import AsyncEvents
from freshcache._async.live import AsyncLive
from freshcache._async.writebehind.producer import AsyncWriteBehind
from freshcache._async.writebehind.worker import AsyncWriteBehindWorker
from freshcache._async.writethrough import AsyncWriteThrough

# Options, sentinels, time
from freshcache._core.clock import Clock, SystemClock
from freshcache._core.config import L1
from freshcache._core.persistence import Verdict
from freshcache._core.sentinels import MISS, TTL, UNSET
from freshcache._core.streams import WorkerTotals, Write, WriteBehindStats

# The live view across processes, and inspect
from freshcache._inproc.live import (
    EnvelopeHeader,
    KeyInfo,
    L1View,
    LiveStats,
    ProcessStats,
)
from freshcache._sync.cache import Cache
from freshcache._sync.decorator import CachedFunction
from freshcache._sync.engine.events import Events
from freshcache._sync.live import Live
from freshcache._sync.writebehind.producer import WriteBehind
from freshcache._sync.writebehind.worker import WriteBehindWorker
from freshcache._sync.writethrough import WriteThrough

# Errors
from freshcache.errors import (
    BacklogFullError,
    CacheClosedError,
    CapacityStoreError,
    CircuitOpenError,
    ConfigStoreError,
    FreshcacheError,
    PermanentWriteError,
    RevivalError,
    SerializationError,
    StoreError,
    TransientStoreError,
    UnsafeRedisError,
    UnstableKeyError,
    ValueTooLargeError,
)

# Health
from freshcache.metrics import (
    BUCKETS,
    Bypass,
    CacheStats,
    ErrorClass,
    Event,
    Gauge,
    Latency,
    Lookups,
    Metrics,
    NamespaceStats,
    NullMetrics,
    Operation,
    Outcome,
    StatsRecorder,
    Tier,
)

# Write-behind sinks
from freshcache.sinks.base import Sink
from freshcache.sinks.callable import CallableSink

# Tracing
from freshcache.tracing import NullTracing, Span, SpanName, Tracing

__all__ = [
    "BUCKETS",
    "L1",
    "MISS",
    "TTL",
    "UNSET",
    "AsyncCache",
    "AsyncCachedFunction",
    "AsyncEvents",
    "AsyncLive",
    "AsyncWriteBehind",
    "AsyncWriteBehindWorker",
    "AsyncWriteThrough",
    "BacklogFullError",
    "Bypass",
    "Cache",
    "CacheClosedError",
    "CacheStats",
    "CachedFunction",
    "CallableSink",
    "CapacityStoreError",
    "CircuitOpenError",
    "Clock",
    "ConfigStoreError",
    "EnvelopeHeader",
    "ErrorClass",
    "Event",
    "Events",
    "FreshcacheError",
    "Gauge",
    "KeyInfo",
    "L1View",
    "Latency",
    "Live",
    "LiveStats",
    "Lookups",
    "Metrics",
    "NamespaceStats",
    "NullMetrics",
    "NullTracing",
    "Operation",
    "Outcome",
    "PermanentWriteError",
    "ProcessStats",
    "RevivalError",
    "SerializationError",
    "Sink",
    "Span",
    "SpanName",
    "StatsRecorder",
    "StoreError",
    "SystemClock",
    "Tier",
    "Tracing",
    "TransientStoreError",
    "UnsafeRedisError",
    "UnstableKeyError",
    "ValueTooLargeError",
    "Verdict",
    "WorkerTotals",
    "Write",
    "WriteBehind",
    "WriteBehindStats",
    "WriteBehindWorker",
    "WriteThrough",
]

for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__  # users see freshcache.Cache, not its file
del _name, _value
