"""Write-behind decisions: partitions, versions, entries, batches, retries.

Pure functions over stream entries as Redis returns them; the I/O lives in
``_async/redis/streams.py`` and ``_async/writebehind/worker.py``.

* A key always goes to the same partition (``partition_of``), so the writes
  to one key are in one stream, in order.
* A write's version is its stream entry id, as one integer: ids grow in a
  stream (Redis keeps the last id across restarts and never goes back, even
  if the clock does), so versions grow per key.
* A batch is coalesced to the newest write per key before it is applied.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from freshcache._core.layout import versioned

SEQUENCE_SPAN = 1_000_000  # ids are "ms-seq"; version = ms * SPAN + seq

MAX_PARTITIONS = 1024  # streams per write-behind queue
MAX_REPLICAS = 1000  # replicas a put may wait for


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key``: the same in every process and every run."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def version_of(entry_id: str | bytes) -> int:
    """The version of a stream entry id ``"1700000000000-3"``: one integer."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    sequence = int(seq or 0)
    if sequence >= SEQUENCE_SPAN:
        raise ValueError(f"stream id {text!r}: over {SEQUENCE_SPAN} writes in 1 ms")
    return int(ms) * SEQUENCE_SPAN + sequence


def encode_value(value: Any) -> str:
    """The JSON text a write carries to the database; TypeError if it has none."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"write-behind values must be JSON (dict, list, str, int, float, "
            f"bool, None), not {type(value).__name__}: {exc}"
        ) from exc


class Enqueued(NamedTuple):
    """A write on its way into the queue (what ``put`` hands the stream store)."""

    partition: int
    data_key: str  # the cache's full key now
    envelope: bytes  # what the cache stores (b"": not cacheable)
    px: int  # the entry's hard TTL in ms (0: none)
    key: str  # the key as the application gave it
    payload: str  # the value as JSON text
    head: str  # the cache's prefix and version
    namespace: str  # the key's namespace, as escaped in the full key
    base: str  # the full key under namespace version 0


@dataclass(frozen=True, slots=True)
class Write:
    """One write on its way to the database."""

    key: str  # the key as the application gave it ("user:1")
    payload: str = field(repr=False)  # the value as JSON text: never in a repr
    version: int  # grows per key; the sink keeps the highest
    entry_id: str  # where it came from: its stream entry
    stream: str = ""  # and its stream
    data_key: str = (
        ""  # the cache's full key when it was put (dropped if dead-lettered)
    )
    head: str = ""  # the cache's prefix and version ("fc:v1:")
    namespace: str = ""  # the key's namespace, as escaped in the full key
    base: str = ""  # the full key under namespace version 0

    @property
    def value(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class Malformed:
    """An entry that is not a write (foreign or corrupt): dead-lettered at once."""

    entry_id: str
    stream: str
    reason: str
    fields: Mapping[str, str] = field(repr=False)  # may hold a value


def _text(raw: str | bytes) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def decode_entry(
    stream: str, entry_id: str | bytes, fields: Mapping[Any, Any] | None
) -> Write | Malformed:
    """A stream entry as a ``Write``, or why it is not one."""
    ident = _text(entry_id)
    text = {_text(k): _text(v) for k, v in (fields or {}).items()}
    key, payload = text.get("k"), text.get("v")
    if not key or payload is None:
        return Malformed(ident, stream, "missing key or value", text)
    try:
        json.loads(payload)
        version = version_of(ident)
    except ValueError as exc:
        return Malformed(ident, stream, f"undecodable: {exc}", text)
    return Write(
        key, payload, version, ident, stream, text.get("d", ""),
        text.get("h", ""), text.get("n", ""), text.get("b", ""),
    )  # fmt: skip


def current_key(write: Write, namespace_version: int) -> str | None:
    """The full key ``write`` has under its namespace's version now (a
    ``bump`` since the put moves it); None for entries that do not say
    (queued by an older freshcache) or that do not add up (forged)."""
    parts = (write.head, write.namespace, write.base)
    if not all(parts) or any("{" in p or "}" in p for p in parts):
        return None
    if not write.base.startswith(write.head + write.namespace):
        return None
    return versioned(write.head, write.namespace, namespace_version, write.base)


def coalesce(writes: Iterable[Write]) -> list[Write]:
    """The newest write per key (highest version), in key order of first sight."""
    newest: dict[str, Write] = {}
    for write in writes:
        seen = newest.get(write.key)
        if seen is None or write.version > seen.version:
            newest[write.key] = write
    return list(newest.values())


class Outcome(enum.Enum):
    RETRY = "retry"  # leave it pending: redelivered after the claim delay
    DEAD_LETTER = "dead_letter"


def after_failure(*, permanent: bool) -> Outcome:
    """What to do with an entry whose apply failed with an error.

    A permanent error (a constraint violation, bad data) will fail again:
    dead-letter at once. A transient one (the database down or slow) is not
    the entry's fault: retry it, however long the outage lasts, and do not
    count the attempt (the worker resets its delivery count).
    """
    return Outcome.DEAD_LETTER if permanent else Outcome.RETRY


def too_many_deliveries(deliveries: int, max_deliveries: int) -> bool:
    """A reclaimed entry delivered more than ``max_deliveries`` times, each
    attempt ending without an outcome (the worker died holding it: a write
    that crashes workers), is not tried again."""
    return deliveries > max_deliveries


@dataclass(frozen=True)
class WriteBehindStats:
    """A write-behind queue's state, as every process sees it (kept in Redis)."""

    backlog: int  # entries not yet applied (new or being applied)
    pending: int  # of those, delivered to a worker and not yet acknowledged
    lag: float  # seconds since the oldest entry not yet applied was enqueued
    applied: int  # entries acknowledged after their database commit
    redelivered: int  # entries handed to a worker again (a crash, a failure)
    dead_lettered: int  # entries moved to the dead-letter stream


def lag_seconds(oldest_id: str | None, now: float) -> float:
    """Age of the oldest entry not yet applied (0 when there is none)."""
    if oldest_id is None:
        return 0.0
    enqueued = version_of(oldest_id) // SEQUENCE_SPAN / 1000
    return max(0.0, now - enqueued)


@dataclass
class WorkerTotals:
    """What this worker has done since it started."""

    batches: int = 0
    applied: int = 0  # entries acknowledged after the commit (incl. coalesced)
    coalesced: int = 0  # of those, older writes a newer one in the batch replaced
    redelivered: int = 0  # entries reclaimed from a pending list
    dead_lettered: int = 0
    failures: int = 0  # sink transactions that failed
