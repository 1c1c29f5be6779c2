"""Where things live in Redis: the names of every key and channel freshcache uses.

Data keys never contain ``{`` or ``}`` (see ``keys.py``), so wrapping a whole
data key in braces is a Redis Cluster hash tag that puts the key's lease in
the data key's own slot: one Lua call can touch both. Everything else starts
with ``head + "!"``; ``!`` is escaped inside namespaces, so no data key can
take these names.
"""

from __future__ import annotations

from freshcache._core.keys import glob_escape


def lease_key(data_key: str) -> str:
    """The key's fill lease, in the data key's slot."""
    return "{" + data_key + "}:lease"


def pending_key(data_key: str) -> str:
    """The id of the key's newest write-behind write not yet in the database,
    in the data key's slot; while it exists, no loader may fill the key (the
    database it read from lacks that write)."""
    return "{" + data_key + "}:wb"


def tag_key(head: str, tag: str) -> str:
    """The set of data keys that depend on ``tag`` (in the tag's own slot)."""
    return f"{head}!tag:{tag}"


def taken_key(tag_set: str) -> str:
    """Where a tag invalidation keeps the members it took from ``tag_set``
    until their deletions are done (the ``TAKE`` script), in its slot."""
    return "{" + tag_set + "}:taken"


def epoch_key(head: str) -> str:
    """Counter bumped by every tag invalidation (a fill with tags checks it)."""
    return f"{head}!epoch"


def namespace_version_key(head: str, namespace: str) -> str:
    """Counter bumped by ``bump(namespace)``."""
    return f"{head}!ns:{namespace}"


def read_counter(stored: object) -> int | None:
    """A bookkeeping counter (a namespace version, the tag epoch) as Redis
    returned it: ``None`` (no key) is 0, a decimal integer is itself, and
    anything else, which freshcache never writes, is None (the caller treats
    the counter as unreadable and counts an error); never an exception that
    would carry the foreign bytes."""
    if stored is None:
        return 0
    if isinstance(stored, str):
        stored = stored.encode("utf-8", "replace")
    if isinstance(stored, int) and not isinstance(stored, bool):
        return stored if stored >= 0 else None
    if not isinstance(stored, bytes) or not 0 < len(stored) <= 20:
        return None
    if not stored.isdigit():  # ASCII digits only (bytes.isdigit)
        return None
    return int(stored)


def bus_channel(prefix: str) -> str:
    """The pub/sub channel of every cache sharing ``prefix``."""
    return f"{prefix}:!bus"


def live_key(prefix: str) -> str:
    """The registry of live versions: a hash of version -> the time (ms,
    Redis server time) its entry expires. It hangs off ``prefix:!``, which no
    data key can take (a version cannot contain ``!``), and ``clear()``
    (``prefix:version:*``) never matches it."""
    return f"{prefix}:!live"


def lapsed_key(prefix: str) -> str:
    """A hash of version -> a mark: versions whose entry in ``live_key``
    expired while their keys stayed in Redis. Invalidations stopped reaching
    those keys, so a process of such a version clears them before it reads
    Redis, then removes the mark."""
    return f"{prefix}:!lapsed"


def cluster_live_key(prefix: str) -> str:
    """``live_key`` on a Redis Cluster: the hash tag ``{prefix:!}`` puts it in
    the slot of ``cluster_lapsed_key``, since one script reads both."""
    return "{" + prefix + ":!}live"


def cluster_lapsed_key(prefix: str) -> str:
    """``lapsed_key`` on a Redis Cluster (the slot of ``cluster_live_key``)."""
    return "{" + prefix + ":!}lapsed"


def ping_channel(prefix: str, origin: str) -> str:
    """The channel on which one process pings itself over the bus connection
    (its watermark: see ``_async/redis/bus.py``)."""
    return f"{prefix}:!ping:{origin}"


def stats_key(prefix: str, process: str) -> str:
    """One process's live stats snapshot (the live view), with a TTL of a few
    publishing periods: a process that dies disappears with it."""
    return f"{prefix}:!stats:{process}"


def stats_pattern(prefix: str) -> str:
    """The SCAN pattern of every ``stats_key`` of ``prefix`` (glob-escaped)."""
    return glob_escape(prefix) + ":!stats:*"


def inspect_requests_key(prefix: str) -> str:
    """A hash of request id -> the full key ``freshcache inspect`` asks every
    publishing process about (each reads it on its publishing tick)."""
    return f"{prefix}:!inspect"


def inspect_replies_key(prefix: str, request: str) -> str:
    """A hash of process id -> that process's L1 view of the requested key."""
    return f"{prefix}:!inspect:{request}"


def versioned(head: str, namespace: str, version: int, key: str) -> str:
    """``key`` (a full key of ``namespace``) under namespace version ``version``.

    Version 0 is the plain key; later versions insert ``~N`` after the
    namespace (``~`` is escaped in namespaces, so this stays injective).
    """
    if not version:
        return key
    cut = len(head) + len(namespace)
    return f"{key[:cut]}~{version}{key[cut:]}"


# Write-behind keys hang off ``prefix:!wb:`` (not ``head``): a new cache
# ``version`` must not orphan writes still on their way to the database, and
# ``clear()`` (which deletes ``prefix:version:*``) never matches them, since
# a version cannot contain ``!``.


def writebehind_stream_key(prefix: str, name: str, partition: int) -> str:
    """Partition ``partition`` of the write-behind queue ``name``."""
    return f"{prefix}:!wb:{name}:p{partition}"


def writebehind_dead_letter_key(prefix: str, name: str) -> str:
    """Where entries go that could not be applied."""
    return f"{prefix}:!wb:{name}:dead"


def writebehind_meta_key(prefix: str, name: str) -> str:
    """A hash: the queue's partition count, and the workers' totals."""
    return f"{prefix}:!wb:{name}:meta"


WRITEBEHIND_GROUP = "freshcache-writebehind"
"""The consumer group every worker of a queue reads with."""


# Redis Cluster: which slot a key hashes to (CRC16/XMODEM of the key, or of
# its hash tag: the first ``{...}`` with something inside), as Redis computes it.

SLOTS = 16384


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16 = _crc16_table()


def key_slot(key: str) -> int:
    """The Redis Cluster hash slot of ``key``."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS


_SPREAD = 64  # slot ranges the partitions of a cluster queue are spread over


def cluster_stream_key(prefix: str, name: str, partition: int, partitions: int) -> str:
    """Partition ``partition`` of the write-behind queue ``name`` on a Redis
    Cluster: a hash tag chosen so that the ``partitions`` streams sit in
    evenly spaced slots (the first in the first of ``min(partitions, 64)``
    equal slot ranges, the next in the next, and so on), hence on every
    primary of a cluster whose slots are shared out in ranges. Every process
    computes the same names (the first tag that lands in its range)."""
    ranges = min(partitions, _SPREAD)
    index = partition % ranges
    low, high = index * SLOTS // ranges, (index + 1) * SLOTS // ranges
    base = f"{prefix}:!wb:{name}:p{partition}"
    tag, attempt = base, 0
    while not low <= key_slot(tag) < high:
        attempt += 1
        tag = f"{base}~{attempt}"
    return "{" + tag + "}"
