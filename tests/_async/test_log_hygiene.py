"""Log hygiene: no cached value, row value or password reaches a log record,
an exception message, a ``repr`` or a public attribute.

One representative workload on a Redis with a password: reads, writes,
invalidations by key and tag, a failing loader (in the caller and in a
background refresh), a corrupt stored value, bus messages (an event, and
garbage), write-behind put and the worker's apply (a sink that fails with
the row in its message, transiently and for good), and a Redis that refuses
(a wrong password). Every log record at DEBUG, on the root logger, and every
exception freshcache raised are searched for the markers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from freshcache import (
    L1,
    MISS,
    AsyncCache,
    CallableSink,
    PermanentWriteError,
    StoreError,
    Write,
)
from freshcache._concurrency import asleep
from freshcache._core.layout import bus_channel
from tests._async.waiting import wait_until_listening
from tests.hygiene import CANARY
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

PASSWORD = "pw-SECRET-5b1e"
# (with the canary: conftest's check of the whole run looks for them too)
VALUE = f"SECRET-VALUE-7f3a-{CANARY}"  # cached values
ROW = (
    f"SECRET-ROW-c29d-{CANARY}"  # what the database (a loader, a sink) says about a row
)
MARKERS = (PASSWORD, VALUE, ROW)


def _leaks(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


def _chain(exc: BaseException) -> str:
    """What a traceback of ``exc`` would print: every message in its chain."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 10:
        parts.append(f"{type(seen).__name__}: {seen} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def _public(obj: object) -> dict[str, Any]:
    """An object's public attributes (instance dict, slots and properties
    that read without arguments)."""
    found: dict[str, Any] = {}
    names = set(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        names.update(getattr(klass, "__slots__", ()))
        names.update(n for n, v in vars(klass).items() if isinstance(v, property))
    for name in names:
        if name.startswith("_"):
            continue
        try:
            found[name] = getattr(obj, name)
        except Exception:  # a property that needs state: skip it
            continue
    return found


def _walk(obj: object, path: str, depth: int, seen: set[int], out: list[str]) -> None:
    """Check ``repr`` and ``str`` of ``obj`` and, ``depth`` levels down, of its
    public attributes; record what leaks."""
    if id(obj) in seen or isinstance(obj, int | float | bool | type(None)):
        return
    seen.add(id(obj))
    for shown in (repr(obj), str(obj)):
        if leaked := _leaks(shown):
            out.append(f"{path}: {leaked}")
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        items = list(enumerate(obj))
    elif depth > 0 and not callable(obj):
        items = list(_public(obj).items())
    elif depth > 0:  # an object with __call__ may still hold state
        items = list(_public(obj).items()) if hasattr(obj, "__dict__") else []
    else:
        items = []
    if depth <= 0:
        return
    for name, value in items:
        _walk(value, f"{path}.{name}", depth - 1, seen, out)


class FailingTable:
    """A sink whose database quotes the row in its errors (as PostgreSQL's
    "Failing row contains (...)" does): once transiently, then for good."""

    def __init__(self) -> None:
        self.calls = 0

    def apply(self, writes: Sequence[Write]) -> None:
        self.calls += 1
        text = ", ".join(w.payload for w in writes)
        if self.calls == 1:
            raise ConnectionError(f"server closed the connection; row ({text}) {ROW}")
        raise PermanentWriteError(f"Failing row contains ({text}) {ROW}")


async def test_no_value_row_or_password_in_logs_messages_or_reprs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    request.getfixturevalue("redis_url")  # skip (or fail in CI) without Redis
    caplog.set_level(logging.DEBUG)  # the root logger: every record
    errors: list[BaseException] = []
    objects: dict[str, object] = {}
    with own_redis_server("--requirepass", PASSWORD) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        wrong = f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0"
        raw = redis.Redis.from_url(url)
        async with (
            AsyncCache(url, prefix="hy", l1=L1(), timeout=1.0) as cache,
            AsyncCache(url, prefix="hy", l1=L1(), timeout=1.0) as other,
        ):
            heard: list[Any] = []
            other.events.on("renamed")(heard.append)
            await wait_until_listening(other)

            # reads, writes, invalidations by key and tag
            loaded = await cache.get_or_load("user:1", lambda: {"n": VALUE}, tags=["t"])
            assert loaded == {"n": VALUE}
            assert await cache.set("user:2", [VALUE], tags=["t"])
            assert await other.get("user:1") == {"n": VALUE}
            assert await other.get_many(["user:1", "user:2"])
            assert await cache.invalidate("user:1")
            assert await cache.invalidate_tags("t")
            assert await cache.get("user:2") is MISS

            # a failing loader: its exception reaches the caller as it is
            # (the application's own message), and nothing is logged
            def failing() -> Any:
                raise RuntimeError(f"database said {ROW}")

            with pytest.raises(RuntimeError):
                await cache.get_or_load("user:3", failing)

            # a background refresh that fails: served stale, logged
            await cache.set("user:4", VALUE, ttl=0.05, stale_ttl=60)
            await asleep(0.1)
            assert await cache.get_or_load("user:4", failing) == VALUE
            for _ in range(500):
                if cache.stats().errors.get("refresh"):
                    break
                await asleep(0.01)
            assert cache.stats().errors.get("refresh")

            # a corrupt stored value
            raw.set("hy:v1:user:5", b"\x00garbage " + VALUE.encode())
            assert await cache.get("user:5") is MISS

            # bus messages: an event with a value, and garbage
            await cache.events.publish("renamed", {"n": VALUE})
            raw.publish(bus_channel("hy"), b"not ours " + VALUE.encode())
            raw.publish(bus_channel("hy"), b'{"v":1,"o":"x","e":[1]}' + ROW.encode())
            for _ in range(500):
                if heard:
                    break
                await asleep(0.01)
            assert heard == [{"n": VALUE}]

            # write-behind: put, then the worker's apply failing with the row
            # in the message (transient, then permanent: dead-lettered)
            wb = cache.write_behind(name="q", partitions=1, allow_eviction=True)
            await wb.put("user:6", {"n": VALUE})
            table = FailingTable()
            worker = wb.worker(CallableSink(table.apply), block=0, claim_idle=0.01)
            for _ in range(200):
                await worker.run_once()
                if (await wb.stats()).dead_lettered:
                    break
                await asleep(0.02)
            assert (await wb.stats()).dead_lettered == 1
            objects.update(
                cache=cache, other=other, engine=cache.engine, wb=wb,
                endpoint=wb.endpoint, worker=worker, stats=cache.stats(),
                events=cache.events, wb_stats=await wb.stats(),
            )  # fmt: skip
            for name, obj in list(objects.items()):
                objects[f"vars({name})"] = dict(getattr(obj, "__dict__", {}))

            # a Redis that refuses: the wrong password
            async with AsyncCache(wrong, prefix="hy", timeout=1.0) as refused:
                assert await refused.get("user:1") is MISS  # reads never raise
                assert await refused.get_or_load("user:7", lambda: VALUE) == VALUE
                try:
                    await refused.bump("user")
                except StoreError as exc:
                    errors.append(exc)
                refused_wb = refused.write_behind(name="q")
                try:
                    await refused_wb.put("user:8", VALUE)
                except StoreError as exc:
                    errors.append(exc)
                objects.update(refused=refused, refused_wb=refused_wb)
                await refused_wb.aclose(flush=False)
            await worker.aclose()
            await wb.aclose(flush=False)
        raw.close()

    # a URL that is not one: the message shows no part of it
    try:
        AsyncCache(f"{PASSWORD}@127.0.0.1:6379/0")
    except ValueError as exc:
        errors.append(exc)

    assert len(errors) == 3, errors  # bump and put refused, the bad URL
    assert isinstance(errors[0], StoreError)
    leaks = [
        f"{record.name} {record.levelname}: {leaked}"
        for record in caplog.records
        if (leaked := _leaks(logging.Formatter().format(record)))
    ]
    leaks += [f"exception {_chain(e)!r}" for e in errors if _leaks(_chain(e))]
    for name, obj in objects.items():
        _walk(obj, name, 3, set(), leaks)
    assert leaks == []
    # and the records were there to search: the refusal, the refresh, the
    # sink's failures were all logged
    text = "\n".join(r.getMessage() for r in caplog.records)
    for expected in (
        "AuthenticationError",
        "background refresh failed",
        "sink failed",
        "dead-lettering",
    ):
        assert expected in text, text
