"""Write-behind on a real Redis: enqueue, the worker, flushing, limits, refusals.

The crash test (tests/test_writebehind_crash.py) kills workers and Redis;
these tests check each rule on its own, with a callable sink that records
what it is given. Every test that takes ``server`` runs twice: on the
shared Redis and on the session's private Redis Cluster (where a put is
several single-slot steps: tests/_async/test_writebehind_cluster.py has
the cluster's own tests). Their caches get a 1 s deadline: on a loaded
machine the default 50 ms is short for a cluster client's first call,
which connects to the nodes (a put then raises, as it should).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis

from freshcache import (
    L1,
    MISS,
    AsyncCache,
    AsyncWriteBehind,
    BacklogFullError,
    CallableSink,
    PermanentWriteError,
    StoreError,
    UnsafeRedisError,
    Write,
)
from freshcache._concurrency import AsyncFlag, asleep
from freshcache._core.layout import (
    WRITEBEHIND_GROUP,
    cluster_stream_key,
    writebehind_stream_key,
)
from tests._async.waiting import WAIT, run_in_background
from tests.cluster import raw_client
from tests.servers import AOF_ALWAYS, delete_prefix, free_port, own_redis_server

pytestmark = pytest.mark.redis

CLUSTER = "redis+cluster://"


@pytest.fixture(params=["redis", "cluster"])
def server(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[str]:
    """The shared Redis (its keys of the test removed afterwards), or the
    session's private cluster (``redis+cluster://``)."""
    if request.param == "cluster":
        # No password: write-behind speaks RESP2, whose AUTH a node without
        # one refuses (the suite's cluster_url carries one for RESP3's HELLO).
        cluster = request.getfixturevalue("redis_cluster")
        yield f"{CLUSTER}{','.join(cluster.addresses)}/"
        return
    url = request.getfixturevalue("redis_url")
    yield url
    delete_prefix(url, key_prefix)


def stream_key(url: str, prefix: str, name: str, partition: int, of: int) -> str:
    """Where a queue's partition lives (on a cluster: in a slot of its own)."""
    if url.startswith(CLUSTER):
        return cluster_stream_key(prefix, name, partition, of)
    return writebehind_stream_key(prefix, name, partition)


class Table:
    """A dict with a version guard: what a real sink does, in memory."""

    def __init__(self, fail: int = 0, poison: str = "") -> None:
        self.rows: dict[str, tuple[int, object]] = {}
        self.batches: list[list[Write]] = []
        self.fail = fail  # the next `fail` batches raise a transient error
        self.poison = poison  # a key whose writes always fail permanently

    def apply(self, writes: Sequence[Write]) -> None:
        self.batches.append(list(writes))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database restarting")
        if any(w.key == self.poison for w in writes):
            raise PermanentWriteError("violates a constraint")
        for w in writes:
            if w.key not in self.rows or self.rows[w.key][0] < w.version:
                self.rows[w.key] = (w.version, w.value)

    def values(self) -> dict[str, object]:
        return {k: v for k, (_, v) in self.rows.items()}


async def _drain(wb: AsyncWriteBehind, table: Table, **options: object) -> None:
    worker = wb.worker(CallableSink(table.apply), block=0, **options)
    try:
        await worker.run(until_idle=True)
    finally:
        await worker.aclose()


async def test_put_updates_the_cache_and_queues_versioned_writes(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", allow_eviction=False)
        first = await wb.put("user:1", {"name": "Ada"})
        second = await wb.put("user:1", {"name": "Ada L."})
        assert second > first  # versions grow per key
        assert await cache.get("user:1") == {"name": "Ada L."}
        stats = await wb.stats()
        assert stats.backlog == 2
        table = Table()
        await _drain(wb, table)
        assert table.values() == {"user:1": {"name": "Ada L."}}
        assert table.rows["user:1"][0] == second
        assert [len(b) for b in table.batches] == [1]  # coalesced to the newest
        stats = await wb.stats()
        assert (stats.backlog, stats.pending, stats.applied) == (0, 0, 2)
        assert cache.stats().counts["writebehind:applied"] == 2
        assert cache.stats().counts["writebehind:enqueued"] == 2
        gauges = cache.stats().gauges  # as of the last wb.stats()
        assert gauges["writebehind_backlog"] == 0
        assert gauges["writebehind_applied"] == 2
        assert gauges["writebehind_lag"] == 0
        await wb.aclose()


async def test_put_drops_the_key_from_every_l1(server: str, key_prefix: str) -> None:
    async with (
        AsyncCache(server, prefix=key_prefix, timeout=1.0, l1=L1()) as writer,
        AsyncCache(server, prefix=key_prefix, timeout=1.0, l1=L1()) as reader,
    ):
        await writer.set("user:1", "old")
        assert await reader.get("user:1") == "old"  # now in reader's L1
        for _ in range(200):  # until reader's bus is subscribed
            if reader.stats().counts.get("bus_connect"):
                break
            await asleep(0.01)
        wb = writer.write_behind(name="q")
        await wb.put("user:1", "new")
        assert await writer.get("user:1") == "new"  # read-your-writes
        for _ in range(200):  # the bus message reaches the reader's L1
            if await reader.get("user:1") == "new":
                break
            await asleep(0.01)
        assert await reader.get("user:1") == "new"
        await wb.aclose(flush=False)


async def test_put_revokes_a_fill_in_flight(server: str, key_prefix: str) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")

        async def slow_old_row() -> str:
            await wb.put("user:1", "new")  # lands while the loader runs
            return "old"

        assert await cache.get_or_load("user:1", slow_old_row) == "old"
        assert await cache.get("user:1") == "new"  # the old fill was not stored
        await wb.aclose(flush=False)


async def test_no_loader_fills_a_key_while_its_write_is_queued(
    server: str, key_prefix: str
) -> None:
    """Until the worker applied a put, the database holds an older row: a
    loader that reads it (after the cache entry was dropped) must not store
    it, or the older value would be served until its TTL."""
    database = {"user:1": "old"}

    async def load() -> str:
        return database["user:1"]

    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("user:1", "new")
        await cache.invalidate("user:1")  # e.g. evicted, or an invalidation
        assert await cache.get_or_load("user:1", load) == "old"  # the database
        assert await cache.get("user:1") is MISS  # ... but not cached
        assert cache.stats().counts["fill_skipped:write_pending"] == 1
        table = Table()
        await _drain(wb, table)
        database.update(table.values())  # the worker committed "new"
        assert await cache.get_or_load("user:1", load) == "new"
        assert await cache.get("user:1") == "new"  # fills work again
        await wb.aclose()


async def test_a_load_that_read_before_the_commit_is_not_stored_after_it(
    server: str, key_prefix: str
) -> None:
    """The worker's commit revokes the key's lease along with the mark: a
    loader that read the older row while the write was queued cannot store
    it once the mark is gone."""
    database = {"user:1": "old"}
    reading, go = AsyncFlag(), AsyncFlag()

    async def load() -> str:
        row = database["user:1"]  # before the worker's commit: "old"
        reading.set()
        assert await go.wait(WAIT)
        return row

    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("user:1", "new")
        await cache.invalidate("user:1")  # the cached copy is gone (or expired)
        reader = await run_in_background(lambda: cache.get_or_load("user:1", load))
        assert await reading.wait(WAIT)  # it holds the lease and read "old"
        table = Table()
        await _drain(wb, table)  # commit "new", XACK, clear the mark
        database.update(table.values())
        go.set()
        await reader.join(WAIT)
        assert await cache.get("user:1") is MISS  # "old" was not stored
        assert await cache.get_or_load("user:1", load_now(database)) == "new"
        await wb.aclose()


def load_now(database: dict[str, str]) -> Any:
    return lambda: database["user:1"]


async def test_an_older_write_applied_keeps_a_newer_writes_mark(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("user:1", "v1")
        table = Table()
        await _drain(wb, table)  # v1 applied: its mark is cleared
        await wb.put("user:1", "v2")  # v2 queued: a new mark
        await cache.invalidate("user:1")
        assert await cache.get_or_load("user:1", lambda: "v1") == "v1"
        assert await cache.get("user:1") is MISS  # v2 is still on its way
        await wb.aclose(flush=False)


async def test_a_bump_while_a_write_is_queued_leaves_no_older_row_cached(
    server: str, key_prefix: str
) -> None:
    """A bump moves the key to a new name that carries no pending-write mark,
    so a loader may cache the database's older row there while the write is
    queued; once the worker has committed the write, that row is dropped
    from Redis and from every L1 (before, it stayed until its TTL)."""
    database = {"user:1": "old"}
    async with (
        AsyncCache(server, prefix=key_prefix, timeout=1.0, l1=L1()) as cache,
        AsyncCache(server, prefix=key_prefix, timeout=1.0, l1=L1()) as other,
        AsyncCache(server, prefix=key_prefix, timeout=1.0) as redis_only,
    ):
        wb = cache.write_behind(name="q")
        await wb.put("user:1", "new")
        await cache.bump("user")
        # The worker's lag: the database still has the older row, and the
        # bumped key has no mark, so it is cached (in Redis and other's L1).
        assert await other.get_or_load("user:1", load_now(database)) == "old"
        assert await cache.get("user:1") == "old"
        table = Table()
        await _drain(wb, table)
        database.update(table.values())
        assert await redis_only.get("user:1") is MISS  # dropped from Redis
        # ... and from every L1, by a bus message: within the staleness bound
        # (on a cluster the message crosses the cluster bus, and a read right
        # after the worker returned may still be served by an L1: allowed)
        await eventually(lambda: cache.get("user:1"), MISS)
        await eventually(lambda: other.get("user:1"), MISS)
        assert await other.get_or_load("user:1", load_now(database)) == "new"
        await wb.aclose()


async def test_a_write_whose_mark_vanished_drops_the_row_cached_meanwhile(
    server: str, key_prefix: str
) -> None:
    """The mark can vanish before the worker applies its write (evicted under
    volatile-lru, or the queue removed with force): a loader then caches the
    database's older row. The worker's commit drops it."""
    database = {"user:1": "old"}
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("user:1", "new")
        client = raw_client(server)
        try:
            marks = list(client.scan_iter(match=f"{{{key_prefix}*}}:wb"))
            assert len(marks) == 1, marks
            client.delete(*marks)  # as an eviction would
            data = marks[0][: -len(b":wb")].strip(b"{}")
            client.delete(data)  # the entry went too
        finally:
            client.close()
        assert await cache.get_or_load("user:1", load_now(database)) == "old"
        assert await cache.get("user:1") == "old"  # cached: nothing forbade it
        table = Table()
        await _drain(wb, table)
        database.update(table.values())
        assert await cache.get("user:1") is MISS
        assert await cache.get_or_load("user:1", load_now(database)) == "new"
        await wb.aclose()


async def eventually(read: Any, expected: object) -> None:
    """Poll ``read()`` until it returns ``expected`` (the bus's delivery)."""
    for _ in range(400):
        if await read() == expected:
            return
        await asleep(0.005)
    assert await read() == expected


async def test_full_backlog_raises_and_changes_nothing(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1, max_backlog=3)
        for i in range(3):
            await wb.put(f"k{i}", i)
        with pytest.raises(BacklogFullError):
            await wb.put("k9", 9)
        assert await cache.get("k9") is MISS
        assert (await wb.stats()).backlog == 3
        await _drain(wb, Table())
        await wb.put("k9", 9)  # room again once applied
        await wb.aclose(flush=False)


async def test_flush_waits_for_the_worker_and_times_out_without_one(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        with pytest.raises(TimeoutError):
            await wb.flush(timeout=0.05)
        table = Table()
        await _drain(wb, table)
        await wb.flush(timeout=5)
        await wb.aclose(timeout=5)
        assert table.values() == {"k": 1}


async def test_clear_never_touches_the_queue(server: str, key_prefix: str) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        await cache.clear()
        assert await cache.get("k") is MISS
        assert (await wb.stats()).backlog == 1
        await wb.aclose(flush=False)


async def test_bad_input_is_refused_before_anything_is_written(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        with pytest.raises(TypeError):
            await wb.put("k", {1, 2})  # a set has no JSON form
        assert await cache.get("k") is MISS
        with pytest.raises(ValueError):
            cache.write_behind(name="bad name")
        with pytest.raises(ValueError):
            AsyncCache().write_behind(name="q")  # needs Redis
        await wb.put("k", 1)
        other = cache.write_behind(name="q", partitions=8)
        with pytest.raises(ValueError):  # a queue's partition count is fixed
            await other.start()
        await other.aclose()
        await wb.aclose(flush=False)


async def test_transient_failures_are_retried_and_nothing_is_acked_before(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("a", 1)
        await wb.put("b", 2)
        table = Table(fail=2)
        worker = wb.worker(CallableSink(table.apply), block=0, claim_idle=0.01)
        for _ in range(100):  # the failed batch stays pending, then is reclaimed
            await worker.run_once()
            if table.rows:
                break
            assert (await wb.stats()).backlog == 2  # not acknowledged
            await asleep(0.02)
        assert table.values() == {"a": 1, "b": 2}
        stats = await wb.stats()
        assert (stats.backlog, stats.pending, stats.dead_lettered) == (0, 0, 0)
        assert stats.redelivered >= 2
        await worker.aclose()
        await wb.aclose(flush=False)


async def test_permanent_error_dead_letters_only_the_culprit_after_one_attempt(
    server: str, key_prefix: str
) -> None:
    async with (
        AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache,
        AsyncCache(server, prefix=key_prefix, timeout=1.0, l1=L1()) as reader,
    ):
        wb = cache.write_behind(name="q", partitions=1)
        await wb.put("good", 1)
        await wb.put("bad", 2)
        await wb.put("good2", 3)
        assert await reader.get("bad") == 2  # now in the reader's L1
        for _ in range(200):  # until reader's bus is subscribed
            if reader.stats().counts.get("bus_connect"):
                break
            await asleep(0.01)
        table = Table(poison="bad")
        await _drain(wb, table)
        assert table.values() == {"good": 1, "good2": 3}
        dead = await wb.dead_letters()
        assert [fields["k"] for _, fields in dead] == ["bad"]
        assert "PermanentWriteError" in dead[0][1]["reason"]
        assert await cache.get("bad") is MISS  # the cache no longer shows it
        for _ in range(200):  # nor, once the bus message is in, any L1
            if await reader.get("bad") is MISS:
                break
            await asleep(0.01)
        assert await reader.get("bad") is MISS
        stats = await wb.stats()
        assert (stats.backlog, stats.pending, stats.dead_lettered) == (0, 0, 1)
        await wb.aclose(flush=False)


async def test_a_database_outage_never_dead_letters_a_write(
    server: str, key_prefix: str
) -> None:
    """Transient failures, however many, do not count as deliveries: once the
    database is back, the write is applied."""
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        table = Table(fail=8)  # the database is down for 8 attempts
        worker = wb.worker(
            CallableSink(table.apply), block=0, claim_idle=0.01, max_deliveries=3
        )
        for _ in range(400):
            await worker.run_once()
            if table.rows:
                break
            await asleep(0.02)
        assert len(table.batches) == 9  # 8 failures, then applied
        assert table.values() == {"k": 1}
        stats = await wb.stats()
        assert (stats.dead_lettered, stats.backlog) == (0, 0)
        await worker.aclose()
        await wb.aclose(flush=False)


class Crash(BaseException):
    """Stands for a worker process dying while it applies a batch."""


async def test_a_write_that_crashes_workers_is_dead_lettered_after_max_deliveries(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        attempts: list[int] = []

        def crash(writes: Sequence[Write]) -> None:
            attempts.append(len(writes))
            raise Crash

        worker = wb.worker(
            CallableSink(crash), block=0, claim_idle=0.01, max_deliveries=3
        )
        for _ in range(200):
            with contextlib.suppress(Crash):  # pending, delivered once more
                await worker.run_once()
            if (await wb.stats()).dead_lettered:
                break
            await asleep(0.02)
        # Three deliveries, then a last try alone (under a mark in Redis),
        # which crashed too: the next reclaim finds the mark.
        assert attempts == [1, 1, 1, 1]
        [(_, fields)] = await wb.dead_letters()
        assert fields["k"] == "k"
        assert fields["reason"].startswith("a worker died applying it alone")
        assert (await wb.stats()).backlog == 0
        await worker.aclose()
        await wb.aclose(flush=False)


async def test_workers_killed_while_the_database_is_slow_dead_letter_nothing(
    server: str, key_prefix: str
) -> None:
    """A table stays locked and the worker waiting on it is killed, again and
    again (a liveness probe, a deploy): each kill is a delivery without an
    outcome. Past ``max_deliveries`` (5, the default; five kills, as in the
    run that found this) the write gets a last try alone, which succeeds
    once the database answers. Before, that acknowledged write went to the
    dead-letter stream, and its cache entry was dropped."""
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        table = Table()
        kills = [Crash] * 5  # the worker dies five times while it waits

        def slow_database(writes: Sequence[Write]) -> None:
            if kills:
                raise kills.pop()
            table.apply(writes)

        worker = wb.worker(CallableSink(slow_database), block=0, claim_idle=0.01)
        for _ in range(200):
            with contextlib.suppress(Crash):
                await worker.run_once()
            if table.values() or (await wb.stats()).dead_lettered:
                break
            await asleep(0.02)
        assert table.values() == {"k": 1}
        assert await wb.dead_letters() == []
        assert (await wb.stats()).backlog == 0
        assert await cache.get("k") == 1
        await worker.aclose()
        await wb.aclose(flush=False)


async def test_malformed_entry_is_dead_lettered_at_once(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1)
        await wb.start()
        raw = raw_client(server)
        raw.xadd(stream_key(server, key_prefix, "q", 0, 1), {"k": "x", "v": "{"})
        raw.close()
        table = Table()
        await _drain(wb, table)
        assert table.batches == []
        [(_, fields)] = await wb.dead_letters()
        assert fields["reason"].startswith("malformed entry")
        await wb.aclose(flush=False)


async def test_entries_of_a_dead_worker_are_reclaimed(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1)
        await wb.put("k", 1)
        raw = raw_client(server)
        stream = stream_key(server, key_prefix, "q", 0, 1)
        raw.xreadgroup(WRITEBEHIND_GROUP, "dead", {stream: ">"})  # then it "dies"
        raw.close()
        assert (await wb.stats()).pending == 1
        table = Table()
        worker = wb.worker(CallableSink(table.apply), block=0, claim_idle=0.01)
        for _ in range(100):
            await worker.run_once()
            if table.rows:
                break
            await asleep(0.02)
        assert table.values() == {"k": 1}
        stats = await wb.stats()
        assert (stats.pending, stats.redelivered, stats.applied) == (0, 1, 1)
        await worker.aclose()
        await wb.aclose(flush=False)


async def test_put_raises_while_redis_is_down(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("redis_url")
    async with AsyncCache(f"redis://127.0.0.1:{free_port()}/0", prefix="wb") as cache:
        wb = cache.write_behind(name="q", timeout=0.2)
        with pytest.raises(StoreError):
            await wb.put("k", 1)
        await wb.aclose()
    with own_redis_server() as server:
        async with AsyncCache(server.url, prefix="wb") as cache:
            wb = cache.write_behind(name="q", allow_eviction=True, timeout=0.2)
            await wb.put("k", 1)
            server.kill()
            for _ in range(3):
                with pytest.raises(StoreError):
                    await wb.put("k", 2)
            await wb.aclose(flush=False)


async def test_refuses_a_server_that_can_evict_the_queue(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    request.getfixturevalue("redis_url")
    with own_redis_server("--maxmemory-policy", "allkeys-lru") as server:
        async with AsyncCache(server.url, prefix="wb") as cache:
            wb = cache.write_behind(name="q")
            with pytest.raises(UnsafeRedisError, match="allkeys-lru"):
                await wb.put("k", 1)
            assert await cache.get("k") is MISS
            await wb.aclose()
            with caplog.at_level(logging.WARNING):
                wb = cache.write_behind(name="q", allow_eviction=True)
                await wb.put("k", 1)  # overridden: starts, and says why it is unsafe
            assert "allkeys-lru" in caplog.text
            assert "appendonly" in caplog.text
            assert not wb.durable
            await wb.aclose(flush=False)


async def test_an_evicting_policy_set_after_start_is_refused(
    request: pytest.FixtureRequest,
) -> None:
    """Settings are read again every ``recheck`` seconds: switched to an
    evicting policy under a running queue (before, unnoticed: 201 of 201
    queued writes were evicted), ``put`` raises from the next check on."""
    request.getfixturevalue("redis_url")
    with own_redis_server("--maxmemory-policy", "noeviction") as server:
        async with AsyncCache(server.url, prefix="wb") as cache:
            wb = cache.write_behind(name="q", recheck=0.05)
            await wb.put("k", 1)
            raw = redis.Redis.from_url(server.url)
            raw.config_set("maxmemory-policy", "allkeys-lru")
            raw.close()
            await asleep(0.1)
            with pytest.raises(UnsafeRedisError, match="allkeys-lru"):
                await wb.put("k", 2)
            assert cache.stats().errors["writebehind:unsafe_settings"] == 1
            assert await cache.get("k") == 1  # the refused put changed nothing
            await wb.aclose(flush=False)


async def test_durable_on_aof_always(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("redis_url")
    with own_redis_server(*AOF_ALWAYS) as server:
        async with AsyncCache(server.url, prefix="wb") as cache:
            wb = cache.write_behind(name="q")
            verdict = await wb.start()
            assert verdict.durable
            assert verdict.warnings == ()
            assert wb.durable
            await wb.aclose()


async def test_replicas_are_waited_for(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("redis_url")
    with own_redis_server("--repl-diskless-sync-delay", "0") as primary:
        async with AsyncCache(primary.url, prefix="wb") as cache:
            alone = cache.write_behind(name="q", replicas=1, replica_timeout=0.05)
            with pytest.raises(StoreError, match="replicas"):
                await alone.put("k", 1)  # no replica: not reported as done
            await alone.aclose(flush=False)
            with own_redis_server(
                "--replicaof", "127.0.0.1", str(primary.port)
            ) as replica:
                link = redis.Redis.from_url(replica.url, decode_responses=True)
                for _ in range(1000):  # until the replica has synced
                    if link.info("replication")["master_link_status"] == "up":
                        break
                    await asleep(0.01)
                link.close()
                wb = cache.write_behind(name="q", replicas=1, replica_timeout=30)
                await wb.put("k", 2)  # returns once the replica has it
                await wb.aclose(flush=False)


async def test_remove_refuses_to_lose_writes_unless_forced(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        await wb.put("k", 1)
        with pytest.raises(ValueError, match="still holds"):
            await wb.remove()
        await wb.remove(force=True)
        raw = raw_client(server)
        assert list(raw.scan_iter(match=f"*{key_prefix}:!wb:*")) == []
        raw.close()
        await wb.put("k", 2)  # a new queue, group and all
        assert (await wb.stats()).backlog == 1
        await wb.aclose(flush=False)


async def test_a_value_too_large_to_cache_is_queued_and_uncached(
    server: str, key_prefix: str
) -> None:
    async with AsyncCache(
        server, prefix=key_prefix, timeout=1.0, max_value_bytes=200
    ) as cache:
        await cache.set("k", "small")
        wb = cache.write_behind(name="q")
        await wb.put("k", "x" * 1000)
        assert await cache.get("k") is MISS  # never the old value
        table = Table()
        await _drain(wb, table)
        assert table.values() == {"k": "x" * 1000}
        await wb.aclose(flush=False)


async def test_put_many_is_all_or_nothing(server: str, key_prefix: str) -> None:
    async with AsyncCache(server, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q", partitions=1, max_backlog=3)
        versions = await wb.put_many({"a": 1, "b": 2})
        assert list(versions) == ["a", "b"]
        assert versions["a"] < versions["b"]
        assert await cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
        with pytest.raises(BacklogFullError):  # 2 + 2 > 3: none is made
            await wb.put_many({"a": 10, "c": 3})
        assert await cache.get_many(["a", "c"]) == {"a": 1}
        assert (await wb.stats()).backlog == 2
        assert await wb.put_many({}) == {}
        with pytest.raises(TypeError):
            await wb.put_many([("a", 1)])  # type: ignore[arg-type]
        table = Table()
        await _drain(wb, table)
        assert table.values() == {"a": 1, "b": 2}
        await wb.aclose(flush=False)


async def test_an_entry_two_workers_hold_is_dead_lettered_once(
    server: str, key_prefix: str
) -> None:
    """A slow worker's entry is claimed by another; both give up on it. One
    dead letter, counted once: the second finds it acknowledged."""
    from freshcache._async.redis.streams import AsyncStreamStore
    from freshcache._core.streams import Malformed

    store = AsyncStreamStore(server, prefix=key_prefix, name="q", partitions=1)
    try:
        await store.prepare()
        raw = raw_client(server, decode_responses=True)
        stream = store.streams[0]
        entry_id = raw.xadd(stream, {"garbage": "x"})
        assert [e[1] for e in await store.read_new("slow", 10, 0)] == [entry_id]
        claimed = await store.reclaim("other", 0, 10)  # idle 0 ms: claim at once
        assert [e[0][1] for e in claimed] == [entry_id]
        item = Malformed(entry_id, stream, "not a write", {"garbage": "x"})
        await store.dead_letter(item, "malformed entry")  # the other worker
        await store.dead_letter(item, "malformed entry")  # the slow one, later
        dead = await store.dead_lettered()
        assert len(dead) == 1
        assert dead[0][1]["id"] == entry_id
        assert (await store.stats()).dead_lettered == 1
        assert raw.xlen(stream) == 0
        raw.close()
    finally:
        await store.aclose()
