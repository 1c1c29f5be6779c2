"""Reading the live view: every process's stats, keys, a key in every L1.

``cache.live`` (an ``AsyncLive``) reads what the processes sharing the
cache's prefix publish (``_async/engine/live.py``) and what Redis holds;
``freshcache stats``, ``freshcache keys`` and ``freshcache inspect`` are
built on it. Keys are listed with SCAN (never KEYS), on every primary of a
Redis Cluster. Nothing here is on a cache's read path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from freshcache._async.engine.live import request_id
from freshcache._concurrency import asleep
from freshcache._core.entry import px
from freshcache._core.keys import escape, glob_escape
from freshcache._core.layout import (
    inspect_replies_key,
    inspect_requests_key,
    stats_pattern,
    writebehind_meta_key,
)
from freshcache._core.streams import WriteBehindStats
from freshcache._inproc.live import (
    REPLY_TTL,
    KeyInfo,
    L1View,
    LiveStats,
    ProcessStats,
    parse_snapshot,
    parse_view,
    total,
)
from freshcache.errors import StoreError

if TYPE_CHECKING:
    from freshcache._async.engine.tiers import AsyncEngine
    from freshcache._async.writebehind.producer import AsyncWriteBehind

_POLL = 0.1  # seconds between looks for inspect replies
MAX_QUEUES = 100  # write-behind queues read by one ``stats()``


class AsyncLive:
    """The live view of every process sharing this cache's prefix (see the
    module docstring). Raises ``StoreError`` when Redis cannot be read, and
    ``ValueError`` for the embedded cache, which has no other processes."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        prefix: str,
        inspect: Callable[[str], Awaitable[KeyInfo]],
        queue: Callable[[str, int], AsyncWriteBehind],
    ) -> None:
        self._engine = engine
        self._prefix = prefix
        self._inspect = inspect
        self._queue = queue
        self._sampled = False

    async def _redis(self) -> Any:
        """The Redis tier, its clock sampled once (times shown and compared
        across processes are the server's)."""
        l2 = self._engine.l2
        if l2 is None:
            raise ValueError("the live view needs a cache over Redis")
        self._engine.check_open()
        if not self._sampled:
            await l2.sample_time()
            self._sampled = True
        return l2

    async def processes(self) -> tuple[list[ProcessStats], list[str]]:
        """Every published snapshot, and the ids of the unreadable ones."""
        l2 = await self._redis()
        found, unreadable = [], []
        start = len(self._prefix) + len(":!stats:")
        for key in sorted(await l2.scan_all(stats_pattern(self._prefix))):
            data = await l2.command("get", key)
            if data is None:
                continue  # expired since the SCAN
            snapshot = parse_snapshot(data)
            if snapshot is None:
                unreadable.append(key[start:])
            else:
                found.append(snapshot)
        return found, unreadable

    async def queues(self) -> dict[str, WriteBehindStats]:
        """Every write-behind queue of the prefix: backlog, pending, lag and
        the workers' totals, read from its streams."""
        l2 = await self._redis()
        pattern = glob_escape(self._prefix) + ":!wb:*:meta"
        head = len(writebehind_meta_key(self._prefix, ""))  # prefix:!wb::meta
        found: dict[str, WriteBehindStats] = {}
        for key in sorted(await l2.scan_all(pattern, MAX_QUEUES)):
            name = key[head - len(":meta") : -len(":meta")]
            partitions = await l2.command("hget", key, "partitions")
            if not name or partitions is None or not partitions.isdigit():
                continue
            try:  # a partition count freshcache would not write: skipped
                queue = self._queue(name, int(partitions))
            except ValueError:
                continue
            try:
                found[name] = await queue.stats()
            except (StoreError, ValueError):
                continue
            finally:
                await queue.aclose()
        return found

    async def stats(self, *, queues: bool = True) -> LiveStats:
        """Every live process's snapshot, their total, and (``queues``) the
        write-behind queues' state."""
        found, unreadable = await self.processes()
        return LiveStats(
            processes=found,
            total=total(found),
            queues=await self.queues() if queues else {},
            unreadable=unreadable,
            read_at=self._engine.now(),
        )

    async def keys(self, namespace: str | None = None, *, limit: int = 20) -> list[str]:
        """Up to ``limit`` keys of this cache's ``prefix:version:`` in Redis
        (all namespace versions), relative (as ``get`` takes them; a
        namespace's older versions show as ``ns~N:...``), in no order;
        ``namespace``: only its keys. SCAN, never KEYS; bookkeeping keys
        are left out."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        l2 = await self._redis()
        head = self._engine.head
        base = glob_escape(head)
        if namespace is None:
            patterns = [base + "*"]
        else:
            ns = glob_escape(escape(namespace))
            patterns = [f"{base}{ns}:*", f"{base}{ns}~*"]
        found: list[str] = []
        bookkeeping = head + "!"
        for pattern in patterns:
            keys = await l2.scan_all(
                pattern, limit - len(found), lambda k: not k.startswith(bookkeeping)
            )
            found += [key[len(head) :] for key in keys]
            if len(found) >= limit:
                break
        return found

    async def inspect(self, key: str, *, wait: float = 0.0) -> KeyInfo:
        """``cache.inspect(key)``, and, with ``wait`` (seconds, about one
        publishing period), the L1 entry of every process that publishes
        its stats: a request is left in Redis, each process answers it on
        its next tick (its L1 view, never the value), and the answers that
        came within ``wait`` are in ``processes``."""
        l2 = await self._redis()
        info = await self._inspect(key)
        if wait <= 0 or info.error is not None:
            return info
        expected = len((await self.processes())[0])
        request = request_id()
        requests = inspect_requests_key(self._prefix)
        replies_key = inspect_replies_key(self._prefix, request)
        until = int((self._engine.now() + wait) * 1000)
        body = orjson.dumps({"k": info.full_key, "u": until})
        await l2.command("hset", requests, request, body)
        await l2.command("pexpire", requests, px(wait + REPLY_TTL))
        deadline = time.monotonic() + wait
        replies: dict[bytes, bytes] = {}
        try:
            while True:
                replies = await l2.command("hgetall", replies_key) or {}
                if len(replies) >= expected or time.monotonic() >= deadline:
                    break
                await asleep(_POLL)
        finally:
            await l2.command("hdel", requests, request)
            await l2.command("unlink", replies_key)
        views: dict[str, L1View] = {
            p.decode("utf-8", "replace"): parse_view(v)
            for p, v in sorted(replies.items())
        }
        return dataclasses.replace(info, processes=views)
