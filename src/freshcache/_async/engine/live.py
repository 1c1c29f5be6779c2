"""The live view across processes: each process publishes a stats snapshot.

With ``publish_stats=N`` (seconds) a cache over Redis runs one background
loop (a task, or a daemon thread in the sync twin) that, every N seconds:

* writes its snapshot (``_core/live.py``) under ``prefix:!stats:<process id>``
  with one ``SET ... PX 3N``: a process that dies disappears when the key
  expires;
* reads the inspect requests (``HGETALL prefix:!inspect``) and, for at most
  a few it has not answered yet, writes its L1 view of the requested key
  (never the value) to ``prefix:!inspect:<request>`` (``HSET``, ``PEXPIRE``).

It starts with the cache's first Redis read (as the bus does: async needs a
running loop), stops with the loop or ``aclose``, and starts again in a new
loop or a forked child (with the child's own process id). It never raises:
a failure counts ``errors["live_publish"]`` and the next tick tries again.
Nothing of it runs on the read path.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from freshcache._concurrency import AsyncFlag, AsyncLoopOwner, AsyncWorker
from freshcache._core.codec.envelope import Codec, Undecodable, peek
from freshcache._core.entry import px
from freshcache._core.events import Origin
from freshcache._core.layout import (
    inspect_replies_key,
    inspect_requests_key,
    lease_key,
    pending_key,
    stats_key,
)
from freshcache._core.logs import LogEvent, failure
from freshcache._core.sentinels import MISS
from freshcache._inproc.l1 import LocalTier
from freshcache._inproc.live import (
    REPLY_TTL,
    REQUESTS_PER_TICK,
    STATS_TTL_PERIODS,
    EnvelopeHeader,
    KeyInfo,
    L1View,
    ProcessStats,
    encode_snapshot,
    finite,
    lease_holder,
    process_id,
    view_dict,
    write_mark_time,
)
from freshcache._inproc.logs import Log
from freshcache.errors import CacheClosedError, StoreError
from freshcache.metrics import CacheStats, ErrorClass, Metrics

if TYPE_CHECKING:
    from freshcache._async.redis.store import AsyncRedisStore

_HOST = socket.gethostname()


def library_version() -> str:
    try:
        from importlib.metadata import version

        return version("freshcache")
    except Exception:  # not installed (a source checkout on sys.path)
        return "unknown"


class ProcessName:
    """This process's id in the live view and in lease tokens:
    ``host:pid:token``, with a new token (and pid) in a forked child."""

    def __init__(self, origin: Origin) -> None:
        self._origin = origin

    def __call__(self) -> str:
        return process_id(_HOST, os.getpid(), self._origin.id[:6])


class AsyncStatsPublisher:
    """The publishing loop of one cache (see the module docstring)."""

    def __init__(
        self,
        l2: AsyncRedisStore,
        *,
        prefix: str,
        head: str,
        period: float,
        name: Callable[[], str],
        stats: Callable[[], CacheStats],
        extra: Callable[[], dict[str, Any]],
        peek: Callable[[str], L1View],
        now: Callable[[], float],
        metrics: Metrics,
        owner: AsyncLoopOwner,
    ) -> None:
        self._l2 = l2
        self._prefix = prefix
        self._head = head
        self.period = period
        self._name = name
        self._stats = stats
        self._extra = extra
        self._peek = peek
        self._now = now
        self._metrics = metrics
        self._log = Log("engine")
        self._library = library_version()
        self._stop = AsyncFlag()
        self._worker = AsyncWorker(self._loop, name=f"freshcache-stats:{head}")
        self._started: float | None = None
        self._answered: set[str] = set()
        self._requests = inspect_requests_key(prefix)
        owner.on_change(self._reset)
        owner.on_end(self.pause)
        owner.on_fork(self._forked)

    def start(self) -> None:
        """Start publishing (idempotent; async: needs a running loop)."""
        if not self._stop.is_set():
            self._worker.start()

    def _reset(self) -> None:
        self._stop = AsyncFlag()
        self._worker = AsyncWorker(self._loop, name=self._worker.name)
        self._answered = set()

    def _forked(self) -> None:
        self._started = None  # the child is a process of its own

    async def pause(self) -> None:
        """Stop the loop (its event loop ends, or the cache closes)."""
        self._stop.set()
        await self._worker.join(1.0)

    async def _loop(self) -> None:
        while True:
            await self.tick()
            if await self._stop.wait(self.period):
                return

    async def tick(self) -> None:
        """Publish once, then answer inspect requests. Never raises."""
        try:
            await self._publish()
            await self._answer()
        except CacheClosedError:
            self._stop.set()
        except StoreError:
            self._metrics.error(ErrorClass.LIVE_PUBLISH)
        except Exception as exc:  # a bug must not end the loop
            self._metrics.error(ErrorClass.LIVE_PUBLISH)
            self._log.error(
                LogEvent.LIVE_PUBLISH_FAILED,
                "publishing live stats failed: %s",
                failure(exc),
                error_class=ErrorClass.LIVE_PUBLISH.value,
            )

    def snapshot(self) -> ProcessStats:
        now = self._now()
        if self._started is None:
            self._started = now
        extra = self._extra()
        return ProcessStats(
            process=self._name(),
            started_at=self._started,
            published_at=now,
            library_version=self._library,
            head=self._head,
            period=self.period,
            stats=self._stats(),
            **extra,
        )

    async def _publish(self) -> None:
        snapshot = self.snapshot()
        key = stats_key(self._prefix, snapshot.process)
        ttl = px(self.period * STATS_TTL_PERIODS)
        await self._l2.command("set", key, encode_snapshot(snapshot), None, ttl)

    async def _answer(self) -> None:
        """Answer at most ``REQUESTS_PER_TICK`` inspect requests: this
        process's L1 view of each requested key (never its value)."""
        raw: dict[bytes, bytes] = await self._l2.command("hgetall", self._requests)
        open_requests = {
            r.decode("utf-8", "replace"): v for r, v in (raw or {}).items()
        }
        self._answered &= set(open_requests)  # forget the finished ones
        now_ms = int(self._now() * 1000)
        done = 0
        for request, body in open_requests.items():
            if request in self._answered or done >= REQUESTS_PER_TICK:
                continue
            self._answered.add(request)
            try:
                asked = orjson.loads(body)
                full, until = asked["k"], asked["u"]
                if not isinstance(full, str) or not isinstance(until, int):
                    raise TypeError("a request names a key and a time")
            except Exception:
                self._metrics.error(ErrorClass.LIVE_PUBLISH)
                continue
            if until < now_ms:
                continue
            done += 1
            view = orjson.dumps(view_dict(self._peek(full)))
            replies = inspect_replies_key(self._prefix, request)
            await self._l2.command("hset", replies, self._name(), view)
            await self._l2.command("pexpire", replies, px(REPLY_TTL))


def request_id() -> str:
    return secrets.token_hex(8)


def local_view(l1: LocalTier | None, full: str, now: float) -> L1View | None:
    """This process's L1 entry for ``full`` (None: no L1), never its value."""
    if l1 is None:
        return None
    found = l1.peek(full)
    if found is MISS:
        return L1View(False)
    entry, left = found
    return L1View(
        True, created_at=entry.created_at, fresh_until=finite(entry.fresh_until),
        stale_until=finite(entry.stale_until), expires_in=left,
        fresh=now < entry.fresh_until, tags=entry.tags,
    )  # fmt: skip


def _seconds(pttl: Any) -> float | None:
    """PTTL's reply as seconds: None for no expiry (-1) or no key (-2)."""
    return None if not isinstance(pttl, int) or pttl < 0 else pttl / 1000


async def inspect_redis(
    l2: AsyncRedisStore, codec: Codec, info: KeyInfo, *, now: float,
    with_value: bool,
) -> KeyInfo:  # fmt: skip
    """``info`` completed with what Redis holds for its key: the envelope's
    header (not its value, unless ``with_value``), its lease and pending
    write-behind mark. Raises ``StoreError``."""
    full = info.full_key
    data = await l2.command("get", full)
    ttl = await l2.command("pttl", full)
    token = await l2.command("get", lease_key(full))
    lease_left = await l2.command("pttl", lease_key(full))
    mark = await l2.command("get", pending_key(full))
    changes: dict[str, Any] = {}
    if data is not None:
        changes.update(in_redis=True, redis_ttl=_seconds(ttl))
        decoded = codec.decode(full, data)
        header = peek(data)
        if isinstance(decoded, Undecodable):
            changes["undecodable"] = decoded.reason
        elif with_value:
            changes["value"] = decoded.value
        if not isinstance(header, Undecodable):
            check = header.check
            if not isinstance(decoded, Undecodable):
                check = "hmac" if codec.signed else "crc-32"
            changes["header"] = EnvelopeHeader(
                header.codec, header.compressed, header.created_at,
                finite(header.fresh_until), finite(header.stale_until),
                header.delta, header.size, check,
            )  # fmt: skip
            if not isinstance(decoded, Undecodable):
                changes["tags"] = decoded.tags
            elif header.tags is not None:
                changes["tags"] = header.tags
    if token is not None:
        holder = lease_holder(token)
        changes["lease_holder"] = "unknown" if holder is None else holder[0]
        changes["lease_age"] = None if holder is None else max(0.0, now - holder[1])
        changes["lease_ttl"] = _seconds(lease_left)
    if mark is not None:
        text = mark.decode("utf-8", "replace") if isinstance(mark, bytes) else mark
        changes["write_pending"] = text
        queued = write_mark_time(text)
        changes["write_pending_age"] = (
            None if queued is None else max(0.0, now - queued)
        )
    return dataclasses.replace(info, **changes)
