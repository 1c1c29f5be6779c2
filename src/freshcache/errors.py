"""Exceptions raised by freshcache.

The hierarchy::

    FreshcacheError
    ├── UnstableKeyError (TypeError)   an argument has no stable key form
    ├── SerializationError (TypeError) a value cannot be encoded (strict mode)
    │   ├── ValueTooLargeError         the envelope is over max_value_bytes
    │   └── RevivalError               cached data no longer fits the annotated type
    ├── StoreError                     a cache server failed (never escapes a read)
    │   ├── TransientStoreError        connection, timeout, loading, open circuit
    │   │   ├── CircuitOpenError       the breaker refused the call: Redis failed lately
    │   │   └── BacklogFullError       the write-behind queue is full (put refused)
    │   ├── CapacityStoreError         the server is out of memory
    │   └── ConfigStoreError           auth, ACL, WRONGTYPE: a misconfiguration
    │       └── UnsafeRedisError       the server may evict write-behind keys
    ├── PermanentWriteError            a sink's write can never succeed (dead-lettered)
    └── CacheClosedError (RuntimeError) the cache was closed: make a new one

Reads never raise ``StoreError``: the cache falls back to the loader and
counts the error. Bad arguments raise plain ``TypeError``/``ValueError``.
"""

from __future__ import annotations


class FreshcacheError(Exception):
    """Root of every freshcache exception."""


class UnstableKeyError(FreshcacheError, TypeError):
    """An argument has no stable, process-independent key form."""


class SerializationError(FreshcacheError, TypeError):
    """A value cannot be serialized by the configured codec."""


class ValueTooLargeError(SerializationError):
    """The encoded value is larger than ``max_value_bytes``."""


class RevivalError(SerializationError):
    """Cached data no longer fits the annotated type (treat it as a miss).

    Typically a dataclass or model that changed since the value was cached.
    """


class StoreError(FreshcacheError):
    """A cache server operation failed."""

    kind = "store"


class TransientStoreError(StoreError):
    """Connection refused, timeout, server loading, or the circuit is open."""

    kind = "transient"


class CircuitOpenError(TransientStoreError):
    """The circuit breaker refused the call: Redis failed recently, and the
    cache does not pay the deadline again until a probe succeeds."""


class CapacityStoreError(StoreError):
    """The server refused a write because it is out of memory."""

    kind = "capacity"


class ConfigStoreError(StoreError):
    """Authentication, ACL or WRONGTYPE: the deployment is misconfigured."""

    kind = "config"


class BacklogFullError(TransientStoreError):
    """The write-behind queue holds its limit: the write was not made."""

    kind = "backlog_full"


class UnsafeRedisError(ConfigStoreError):
    """The server may evict write-behind keys (its ``maxmemory-policy``)."""


class PermanentWriteError(FreshcacheError):
    """Raised by a sink for a write that will never succeed (bad data, a
    constraint): the worker dead-letters it without retrying."""


class CacheClosedError(FreshcacheError, RuntimeError):
    """The cache was closed (``close()``, ``aclose()``, or the end of its
    ``with`` block): closing is final, and every later call raises this."""
