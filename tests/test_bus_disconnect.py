"""The invalidation bus when its connection dies, and under RESP2 and RESP3.

``CLIENT KILL TYPE pubsub`` while readers and a writer run: each cache sees
its bus drop (``bus_disconnect``), stops serving L1 within the staleness
bound because its pings stop coming back (the watermark), resubscribes
(``bus_connect``, which flushes L1: messages sent meanwhile are lost), no
read is staler than the bound (100 ms), and once resubscribed a write in one
cache reaches the other's L1 within that bound again.

Every test here runs on a redis-server of its own (tests/servers.py): killing
every pub/sub client of the shared server would break other tests' buses.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import freshcache._sync.redis.connect
from freshcache import L1, MISS, Cache
from tests import harness
from tests.servers import own_redis_server

pytestmark = pytest.mark.redis

BOUND = 0.1  # seconds: L1's max_staleness, down or up
KILLS = 5
WAIT = 10.0  # seconds any awaited condition may take before the test fails


@pytest.fixture
def own_redis(request: pytest.FixtureRequest) -> Iterator[str]:
    request.getfixturevalue("redis_url")  # skip locally / fail in CI without Redis
    with own_redis_server() as server:
        yield server.url


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Poll ``condition``; the seconds it took, or fail the test."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)
    return time.monotonic() - started


def count(cache: Cache, name: str) -> int:
    return cache.stats().counts.get(name, 0)


def memory_hits(cache: Cache) -> int:
    return cache.stats().l1.hits


def kill_buses(url: str) -> int:
    with redis.Redis.from_url(url) as admin:
        killed: int = admin.client_kill_filter(_type="pubsub")
    return killed


@pytest.mark.slow
def test_pubsub_kill_resubscribes_and_stays_within_the_bound(
    own_redis: str, postgres_dsn: str
) -> None:
    work = harness.Workload(rows=20, hot_rows=5, write_pause=(0.002, 0.01))
    rng = random.Random(7)
    with harness.row_table(postgres_dsn, work.rows) as table:
        clients = [
            harness.FreshClient(
                own_redis,
                "disconnect",
                harness.Loader(table, work.loader_delay, work.slow_share, seed),
                work.ttl,
            )
            for seed in (1, 2)
        ]
        a, b = clients
        try:
            for client in clients:
                client.read(0)  # starts the bus
            wait_for(
                lambda: all(count(c.cache, "bus_connect") == 1 for c in clients),
                "both buses to subscribe",
            )
            stop = threading.Event()
            errors: Counter[str] = Counter()
            reads_a, writes = harness.Log(), harness.Log()
            reads_b = [harness.Log(), harness.Log()]
            threads = [
                threading.Thread(
                    target=harness.reader_loop,
                    args=(b, work, random.Random(i), stop, log, errors),
                )
                for i, log in enumerate(reads_b)
            ]
            threads.append(
                threading.Thread(
                    target=harness.reader_loop,
                    args=(a, work, random.Random(10), stop, reads_a, errors),
                )
            )
            threads.append(
                threading.Thread(
                    target=harness.writer_loop,
                    args=(a, table, work, random.Random(11), stop, writes, errors),
                )
            )
            for thread in threads:
                thread.start()
            killed = 0
            try:
                time.sleep(0.5)
                for kill in range(1, KILLS + 1):
                    killed += kill_buses(own_redis)
                    wait_for(
                        lambda k=kill: all(  # type: ignore[misc]
                            count(c.cache, "bus_connect") == k + 1 for c in clients
                        ),
                        f"both buses to resubscribe after kill {kill}",
                    )
                    time.sleep(rng.uniform(0.2, 0.6))
            finally:
                stop.set()
                for thread in threads:
                    thread.join()

            report = harness.check(writes, harness.Log.merged([*reads_b, reads_a]))
            own = harness.check(writes, reads_a, bounds=(0.0,))
            drops = [count(c.cache, "bus_disconnect") for c in clients]
            connects = [count(c.cache, "bus_connect") for c in clients]
            print(
                f"\n[disconnect] {KILLS} kills ({killed} pubsub clients), "
                f"bus_disconnect {drops}, bus_connect {connects}\n"
                f"  {report.summary()}\n  C3 in the writer: {own.summary()}\n"
                f"  errors {dict(errors)}"
            )
            assert killed == 2 * KILLS
            assert drops == [KILLS, KILLS]
            assert connects == [KILLS + 1, KILLS + 1]
            assert not [e for e in errors if e.startswith("read:")], errors
            assert report.reads > 1_000
            assert report.writes > 100
            assert report.phantoms == 0
            assert report.stale_at(BOUND) == 0, report.summary()
            assert own.stale_at(0.0) == 0, own.summary()  # C3 holds throughout

            # Recovered: a write in A reaches B's L1 within the healthy bound.
            latencies = []
            for row in range(work.rows):
                b.read(row)
                hits = memory_hits(b.cache)
                before = b.read(row)
                assert memory_hits(b.cache) == hits + 1  # B's L1 holds the row
                new = table.bump(row)
                assert before < new
                a.invalidate(row)
                latencies.append(
                    wait_for(lambda r=row, v=new: b.read(r) >= v, f"row {row} in B")  # type: ignore[misc]
                )
            latencies.sort()
            median = latencies[len(latencies) // 2]
            print(
                f"  after recovery: a write in A reached B's L1 in median "
                f"{median * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms "
                f"({len(latencies)} rows)"
            )
            # A sample may lose the CPU on a loaded host, but B refuses its
            # L1 once the watermark is older than the bound.
            assert median < BOUND
            assert latencies[-1] < 10 * BOUND
        finally:
            for client in clients:
                client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_invalidation_reaches_the_other_l1_under_resp(
    own_redis: str, protocol: int
) -> None:
    url = f"{own_redis}?protocol={protocol}"
    truth = {"version": 1}

    def load() -> dict[str, int]:
        return dict(truth)

    with (
        Cache(url, prefix="resp", l1=L1()) as a,
        Cache(url, prefix="resp", l1=L1()) as b,
    ):
        for cache in (a, b):
            assert cache.get("start:bus") is MISS
        wait_for(
            lambda: count(a, "bus_connect") == 1 and count(b, "bus_connect") == 1,
            "both buses to subscribe",
        )
        with redis.Redis.from_url(own_redis) as admin:
            me = str(admin.client_id())
            subscribers = admin.client_list(_type="pubsub")
            normal = [c for c in admin.client_list(_type="normal") if c["id"] != me]
        # Both buses, and the caches' own connections, speak the URL's protocol.
        assert [c["resp"] for c in subscribers] == [str(protocol)] * 2
        assert normal
        assert {c["resp"] for c in normal} == {str(protocol)}

        for reader, writer in ((b, a), (a, b)):
            for step in ("start clean", "invalidate"):
                if step == "invalidate":  # the reader's L1 holds the row
                    hits = memory_hits(reader)
                    assert reader.get_or_load("row", load) == truth
                    assert memory_hits(reader) == hits + 1
                received = count(reader, "invalidations_received")
                truth["version"] += 1
                writer.invalidate("row")
                wait_for(
                    lambda r=reader, n=received: count(r, "invalidations_received") > n,  # type: ignore[misc]
                    f"the invalidation to reach the other cache (RESP{protocol})",
                )
                assert reader.get_or_load("row", load) == truth


def _gate_the_bus(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every bus (re)connection wait until the returned event is set."""
    gate = threading.Event()
    gate.set()
    endpoint = freshcache._sync.redis.connect.Endpoint
    client = endpoint.client  # the bus's only way to a connection

    def gated(self: Any, **pool: Any) -> redis.Redis:
        gate.wait(WAIT)
        return client(self, **pool)

    monkeypatch.setattr(endpoint, "client", gated)
    return gate


def test_a_read_across_a_resubscribe_does_not_keep_a_missed_invalidation(
    own_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C1/C2 around a reconnect. B is disconnected; a read in B gets the old
    value from Redis; A's write and invalidation land while B is still away
    (the message is lost); B resubscribes; then B's read stores the old value
    in its L1. It must not be served: the resubscribe flush cancels the fill
    (its snapshot is older), and the watermark bounds what L1 may serve."""
    gate = _gate_the_bus(monkeypatch)
    truth = {"version": 1}

    def load() -> dict[str, int]:
        return dict(truth)

    try:
        with (
            Cache(own_redis, prefix="reconnect", l1=L1(ttl=30)) as a,
            Cache(own_redis, prefix="reconnect", l1=L1(ttl=30)) as b,
        ):
            assert a.get_or_load("row", load) == {"version": 1}  # in Redis
            assert b.get("start:bus") is MISS
            wait_for(lambda: count(b, "bus_connect") == 1, "B's bus to subscribe")
            gate.clear()
            assert kill_buses(own_redis) >= 1
            wait_for(lambda: count(b, "bus_disconnect") == 1, "B's bus to drop")

            assert b.engine.l2 is not None
            store = b.engine.l2
            real_get = store.get

            def get_then_race(key: str) -> Any:
                hit = real_get(key)  # the old value, read while B is away
                truth["version"] = 2
                a.invalidate("row")  # the message B will never see
                gate.set()
                wait_for(lambda: count(b, "bus_connect") == 2, "B to resubscribe")
                return hit

            monkeypatch.setattr(store, "get", get_then_race)
            assert b.get_or_load("row", load) == {"version": 1}  # concurrent: fine
            monkeypatch.setattr(store, "get", real_get)

            time.sleep(BOUND + 0.1)
            assert b.get_or_load("row", load) == {"version": 2}
    finally:
        gate.set()


def test_a_namespace_version_read_across_a_resubscribe_is_not_kept(
    own_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for namespace versions: B reads version 1 while away,
    A bumps to 2 (message lost), B resubscribes and then caches version 1 as
    current, so it keeps reading the orphaned keys for as long as the bus
    stays up."""
    gate = _gate_the_bus(monkeypatch)
    try:
        with (
            Cache(own_redis, prefix="nsrace", l1=L1(ttl=30)) as a,
            Cache(own_redis, prefix="nsrace", l1=L1(ttl=30)) as b,
        ):
            assert a.bump("row") == 1
            assert a.get_or_load("row:1", lambda: "old") == "old"  # under version 1
            assert b.get("start:bus") is MISS
            wait_for(lambda: count(b, "bus_connect") == 1, "B's bus to subscribe")
            gate.clear()
            assert kill_buses(own_redis) >= 1
            wait_for(lambda: count(b, "bus_disconnect") == 1, "B's bus to drop")

            assert b.engine.l2 is not None
            store = b.engine.l2
            real_version = store.version

            def version_then_race(namespace: str) -> int:
                found = real_version(namespace)  # 1, read while B is away
                assert a.bump("row") == 2  # the message B will never see
                gate.set()
                wait_for(lambda: count(b, "bus_connect") == 2, "B to resubscribe")
                return found

            monkeypatch.setattr(store, "version", version_then_race)
            assert b.get_or_load("row:1", lambda: "new") == "old"  # concurrent: fine
            monkeypatch.setattr(store, "version", real_version)

            time.sleep(BOUND + 0.1)
            assert b.get_or_load("row:1", lambda: "new") == "new"
    finally:
        gate.set()
