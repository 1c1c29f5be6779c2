"""Logging that fits: records under ``freshcache.<area>`` with structured
fields, repeats held back, transitions logged once, and no value, password
or private key in any record or exception message.

Every value and private key planted here holds ``CANARY``; besides the
checks in each test, ``conftest.py`` fails the run if any freshcache
record of the whole suite shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis

from freshcache import L1, MISS, AsyncCache, CallableSink, StoreError, Write
from freshcache._concurrency import asleep
from freshcache._core.layout import bus_channel
from tests._async.waiting import wait_until, wait_until_listening
from tests.hygiene import CANARY, leaks, record_text
from tests.servers import own_redis_server


@pytest.fixture(autouse=True)
def _servers(request: pytest.FixtureRequest) -> None:
    """Each test starts its own Redis: skip (or fail in CI) without one."""
    if request.node.get_closest_marker("redis") is not None:
        request.getfixturevalue("redis_url")


VALUE = {"token": f"{CANARY}-value"}
PRIVATE_KEY = f"session:{CANARY}-token"
FIELDS = (
    "freshcache_event",
    "freshcache_tier",
    "freshcache_namespace",
    "freshcache_error_class",
    "freshcache_repeated",
)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every freshcache record the test makes; and none shows a canary."""
    handler = Collect()
    logger = logging.getLogger("freshcache")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    shown = [
        (r.name, found) for r in handler.records if (found := leaks(record_text(r)))
    ]
    assert shown == []


def _of(records: list[logging.LogRecord], event: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "freshcache_event", None) == event]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name, "(missing)") for name in FIELDS}


async def _until_logged(records: list[logging.LogRecord], event: str) -> None:
    async def logged() -> bool:
        return bool(_of(records, event))

    await wait_until(logged)


@pytest.mark.redis
async def test_a_paused_redis_logs_circuit_opened_once_per_transition(
    records: list[logging.LogRecord],
) -> None:
    """Redis paused twice under a read loop: two "circuit opened" records
    and two "closed" ones, however many calls failed or were refused and
    however many probes failed while it was paused (the old code logged
    one per failed probe)."""
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="lg", timeout=0.1) as cache:
            assert await cache.set("k", VALUE)
            reads = 0

            async def read() -> None:
                nonlocal reads
                assert await cache.get_or_load("k", lambda: VALUE) == VALUE
                reads += 1
                await asleep(0.005)

            def failed() -> int:
                return cache.stats().errors.get("transient", 0)

            for _ in range(2):
                server.stop()
                # until the breaker opened (5 failures) and then three
                # probes failed, one a second (each reopens it)
                until = failed() + 8
                while failed() < until:
                    await read()
                server.cont()
                while not await cache.set("k", VALUE):  # until it closed
                    await read()
            refused = cache.stats().errors.get("circuit_open", 0)
    opened = [
        r for r in records
        if r.levelno == logging.WARNING and "circuit opened" in r.getMessage()
    ]  # fmt: skip
    closed_records = _of(records, "circuit_closed")
    assert len(opened) == 2, [r.getMessage() for r in opened]
    assert len(closed_records) == 2
    assert all(r.levelno == logging.INFO for r in closed_records)
    assert refused > 2  # many calls, two records
    assert reads > 2
    reopened = [r for r in _of(records, "circuit_opened") if r.levelno == logging.DEBUG]
    assert len(reopened) >= 6  # the failed probes: three per outage
    assert opened[0].name == "freshcache.redis"
    assert _fields(opened[0]) == {
        "freshcache_event": "circuit_opened",
        "freshcache_tier": "redis",
        "freshcache_namespace": None,
        "freshcache_error_class": "transient",
        "freshcache_repeated": 0,
    }


@pytest.mark.redis
async def test_records_carry_structured_fields(
    records: list[logging.LogRecord],
) -> None:
    """The invalidation queued, the bus lost (and back), an undecodable
    entry and a write-behind sink that fails: each record says what, where
    (tier, namespace) and which error class, with bounded values."""
    with own_redis_server() as server:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(server.url, prefix="lg", l1=L1(), timeout=0.2) as cache:
            assert await cache.get("warm") is MISS  # starts the bus
            await wait_until_listening(cache)

            # an undecodable entry (foreign bytes holding a value)
            raw.set("lg:v1:user:5", b"\x00garbage " + CANARY.encode())
            assert await cache.get("user:5") is MISS
            (decode,) = _of(records, "decode_error")
            assert decode.name == "freshcache.redis"
            assert decode.levelno == logging.WARNING
            fields = _fields(decode)
            assert fields["freshcache_tier"] == "redis"
            assert fields["freshcache_namespace"] == "user"
            assert str(fields["freshcache_error_class"]).startswith("decode:")

            # the bus connection lost: killed by the server, then back
            raw.client_kill_filter(_type="pubsub")
            await _until_logged(records, "bus_lost")
            await wait_until_listening(cache)
            (lost,) = _of(records, "bus_lost")
            assert lost.name == "freshcache.bus"
            assert lost.levelno == logging.WARNING
            assert _fields(lost)["freshcache_tier"] == "bus"
            assert _fields(lost)["freshcache_error_class"] == "bus_disconnect"
            await _until_logged(records, "bus_connected")
            back = [
                r for r in _of(records, "bus_connected") if r.levelno == logging.INFO
            ]
            assert back
            assert "reconnected" in back[-1].getMessage()

            # an invalidation Redis does not take in time: queued
            server.stop()
            try:
                assert await cache.invalidate("user:7") is False
            finally:
                server.cont()
            (queued,) = _of(records, "invalidation_queued")
            assert queued.name == "freshcache.engine"
            assert queued.levelno == logging.WARNING
            assert _fields(queued) == {
                "freshcache_event": "invalidation_queued",
                "freshcache_tier": "redis",
                "freshcache_namespace": "user",
                "freshcache_error_class": "transient",
                "freshcache_repeated": 0,
            }

            # the pause may have opened the breaker (it did beside CPU hogs):
            # until it lets calls through again
            async def answered() -> bool:
                return bool(await cache.set("probe", 1))

            await wait_until(answered)

            # a write-behind sink that fails with the row in its message
            wb = cache.write_behind(name="q", partitions=1, allow_eviction=True)
            await wb.put("user:6", VALUE)

            def failing(writes: Sequence[Write]) -> None:
                rows = ", ".join(w.payload for w in writes)
                raise ConnectionError(f"server closed the connection; row ({rows})")

            worker = wb.worker(CallableSink(failing), block=0, claim_idle=0.01)
            await worker.run_once()
            (sink,) = _of(records, "sink_failed")
            assert sink.name == "freshcache.worker"
            assert sink.levelno == logging.WARNING
            assert "ConnectionError" in sink.getMessage()
            assert _fields(sink) == {
                "freshcache_event": "sink_failed",
                "freshcache_tier": "sink",
                "freshcache_namespace": "user",
                "freshcache_error_class": "writebehind_sink",
                "freshcache_repeated": 0,
            }
            await worker.aclose()
            await wb.aclose(flush=False)
        raw.close()
    for record in records:  # every record carries every field
        assert "(missing)" not in _fields(record).values(), record.getMessage()
        assert record.name.split(".")[:2] in (
            ["freshcache", area]
            for area in ("redis", "bus", "engine", "writebehind", "worker")
        )


@pytest.mark.redis
async def test_repeated_failures_are_held_back_and_counted(
    records: list[logging.LogRecord],
) -> None:
    """Fifty reads of foreign bytes: fifty errors counted, one record (the
    next after 10 s would say how many were held back)."""
    with own_redis_server() as server:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(server.url, prefix="lg", timeout=1.0) as cache:
            for i in range(50):
                raw.set(f"lg:v1:user:{i}", b"\x00garbage")
                assert await cache.get(f"user:{i}") is MISS
            counted = sum(
                n for k, n in cache.stats().errors.items() if k.startswith("decode:")
            )
        raw.close()
    assert counted == 50
    assert 1 <= len(_of(records, "decode_error")) < 10


@pytest.mark.redis
async def test_pipeline_errors_show_neither_keys_nor_values(
    records: list[logging.LogRecord],
) -> None:
    """redis-py writes a failed pipeline command, with its arguments (keys,
    and the envelope that holds the value), into the error's message. A
    full Redis refusing ``set_many`` and a wrong-type key under ``get_many``:
    neither the records nor the errors raised show a key or a value."""
    with own_redis_server("--maxmemory-policy", "noeviction") as server:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(
            server.url, prefix="lg", timeout=1.0, compress_threshold=None
        ) as cache:
            raw.rpush(f"lg:v1:{PRIVATE_KEY}", "a list, not an entry")
            assert await cache.get_many([PRIVATE_KEY, "user:1"]) == {}
            for i in range(40):
                raw.set(f"filler:{i}", "x" * 50_000)
            raw.config_set("maxmemory", 1024 * 1024)
            assert await cache.set_many({"s:1": VALUE, PRIVATE_KEY: VALUE}) is False
            wb = cache.write_behind(name="q", partitions=1)
            with pytest.raises(StoreError) as refused:
                await wb.put_many({PRIVATE_KEY: VALUE, "s:2": VALUE})
            await wb.aclose(flush=False)
        raw.close()
    shown = []
    seen: BaseException | None = refused.value
    while seen is not None:
        shown.append(f"{seen!r} {seen}")
        seen = seen.__cause__ or seen.__context__
    assert leaks("\n".join(shown)) == []
    loud = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert any("WRONGTYPE" in m for m in loud), loud
    assert any("capacity error" in m for m in loud), loud


@pytest.mark.redis
async def test_private_keys_values_and_payloads_stay_out_of_messages(
    records: list[logging.LogRecord],
) -> None:
    """A private namespace's key in an exception message is redacted; a
    value that cannot be cached, an event handler's failure and garbage on
    the bus are logged without the value, the payload or the bytes."""

    class Unserializable:
        def __repr__(self) -> str:
            return f"Unserializable({CANARY})"

        __str__ = __repr__

    with own_redis_server() as server:
        raw = redis.Redis.from_url(server.url)
        async with AsyncCache(
            server.url, prefix="lg", l1=L1(), timeout=1.0,
            private_namespaces={"session"}, max_value_bytes=1024,
        ) as cache:  # fmt: skip
            assert await cache.get("warm") is MISS  # starts the bus
            await wait_until_listening(cache)
            with pytest.raises(KeyError) as missing:
                await cache.incr(PRIVATE_KEY)
            assert CANARY not in str(missing.value)
            assert str(missing.value).startswith("'session:<redacted:")
            assert cache.redact(PRIVATE_KEY) == str(missing.value).strip("'")
            assert cache.redact("user:1") == "user:1"

            assert await cache.set("user:1", Unserializable()) is False
            assert await cache.set("user:2", CANARY * 1000) is False  # too large
            not_cached = _of(records, "value_not_cached")
            assert {r.freshcache_error_class for r in not_cached} == {  # type: ignore[attr-defined]
                "serialize",
                "oversize",
            }

            raw.publish(bus_channel("lg"), b"not ours " + CANARY.encode())
            await _until_logged(records, "bus_decode_error")
        raw.close()


@pytest.mark.redis
async def test_a_url_password_never_reaches_a_record(
    records: list[logging.LogRecord],
) -> None:
    """A wrong password: the refusal is logged loudly, without it."""
    password = f"{CANARY}-pw"
    with own_redis_server("--requirepass", "right") as server:
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        async with AsyncCache(url, prefix="lg", timeout=1.0) as cache:
            assert await cache.get_or_load("k", lambda: 1) == 1
    assert [r for r in records if r.levelno >= logging.ERROR]


async def test_an_event_handler_failure_is_logged_without_the_payload(
    records: list[logging.LogRecord],
) -> None:
    """An application's handler raising with the event's payload in its
    message: logged (ERROR) by class, handler and place, never the message
    or its traceback (the old code logged the traceback)."""

    def handler(payload: Any) -> None:
        raise ValueError(f"cannot handle {payload}")

    async with AsyncCache() as cache:
        cache.events.on("renamed")(handler)
        await cache.events.publish("renamed", {"n": CANARY})
    (failed,) = [r for r in records if r.levelno == logging.ERROR]
    assert "handler" in failed.getMessage()
    assert "ValueError" in failed.getMessage()


def test_private_namespaces_is_a_collection_of_names() -> None:
    with pytest.raises(TypeError, match="not one str"):
        AsyncCache(private_namespaces="session")
    with pytest.raises(TypeError, match="non-empty str"):
        AsyncCache(private_namespaces=[""])
    cache = AsyncCache(private_namespaces=["session"])
    assert cache.redact("session:x").startswith("session:<redacted:")


def test_a_cached_function_can_mark_its_namespace_private() -> None:
    cache = AsyncCache()

    @cache.cached("token:{token}", private=True)
    async def check(token: str) -> bool:
        return True

    @cache.cached("user:{user_id}")
    async def user(user_id: int) -> int:
        return user_id

    assert cache.redact(check.key(CANARY)).startswith("token:<redacted:")
    assert cache.redact(user.key(1)) == "user:1"
