"""Write-behind crash test: nothing acknowledged is lost.

Run twice: on a redis-server of the test's own, and on a three-primary
Redis Cluster of its own (there the node killed and restarted is the
primary of partition 0's stream, and a dead letter may be copied twice if
a worker dies between copying and acknowledging it: the set of dead
letters must still be exactly the poison).

A redis-server of the test's own with AOF ``appendfsync always``; a real
PostgreSQL table; ``freshcache worker`` as real subprocesses, two at a time.
While two producer processes write distinct versioned values to 2,000 keys
(logging every acknowledgement), the test ``kill -9``s the workers at random
points and restarts them, several times right after a database commit and
before its XACK (through the worker's ``on_commit`` callback, in
``tests/crashing_worker.py``), and once ``kill -9``s Redis and restarts it
from its AOF. It injects poison entries: two writes the table's CHECK
constraint refuses, and one malformed entry.

After a drain: every key's row holds its highest acknowledged version (lost
= 0), no row holds a value that was never written, the dead-letter stream
holds exactly the poison entries, and no entry is pending.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from freshcache import Cache
from freshcache._core.layout import (
    WRITEBEHIND_GROUP,
    cluster_stream_key,
    writebehind_stream_key,
)
from freshcache._core.streams import partition_of

try:
    from tests import servers
    from tests.cluster import own_redis_cluster
except ImportError:  # tests/ is not a package: pytest put tests/ on sys.path
    import servers  # type: ignore[no-redef]
    from cluster import own_redis_cluster  # type: ignore[no-redef]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KEYS = 2000
WRITES = int(os.environ.get("FRESHCACHE_CRASH_WRITES", "15000"))  # per producer
NAME = "crash"
CRASHING_WORKER = ROOT / "tests" / "crashing_worker.py"


@pytest.fixture
def table(postgres_dsn: str) -> Iterator[str]:
    name = f"wb_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (key text PRIMARY KEY, value jsonb NOT NULL, "
            "version bigint NOT NULL, CHECK (NOT (value ? 'poison')))"
        )
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@dataclass
class Place:
    """Where the queue lives: its URL, a plain client, its streams' names,
    and the server the test kills and restarts."""

    url: str
    raw: Any  # redis.Redis, or redis.RedisCluster
    stream: Callable[[int], str]  # partition -> stream key
    victim: servers.RedisProcess
    cluster: bool


@contextmanager
def _place(where: str, prefix: str) -> Iterator[Place]:
    if where == "redis":
        with servers.own_redis_server(*servers.AOF_ALWAYS) as server:
            raw = redis.Redis.from_url(server.url, decode_responses=True)
            try:
                yield Place(
                    server.url, raw,
                    lambda i: writebehind_stream_key(prefix, NAME, i), server, False,
                )  # fmt: skip
            finally:
                raw.close()
        return
    with own_redis_cluster(nodes=3, args=servers.AOF_ALWAYS) as cluster:
        url = f"redis+cluster://{','.join(cluster.addresses)}/"
        raw = redis.RedisCluster(
            startup_nodes=cluster.startup_nodes, decode_responses=True
        )
        try:

            def stream(i: int) -> str:
                return cluster_stream_key(prefix, NAME, i, 4)

            yield Place(url, raw, stream, cluster.primary_for(stream(0)), True)
        finally:
            raw.close()


def _start_worker(
    url: str, prefix: str, dsn: str, table: str, log: Path, exit_after: int = 0,
    claim_idle: float = 0.5,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """``freshcache worker``; with ``exit_after``, one that exits right after
    that many database commits (``tests/crashing_worker.py``)."""
    arguments = [
        "--redis", url, "--prefix", prefix, "--name", NAME, "--postgres", dsn,
        "--table", table, "--batch-size", "200", "--block", "0.2",
        "--claim-idle", str(claim_idle), "--max-deliveries", "1000",
        "--report-every", "5",
    ]  # fmt: skip
    if exit_after:
        command = [sys.executable, str(CRASHING_WORKER), str(exit_after), *arguments]
    else:
        command = [sys.executable, "-m", "freshcache.cli", "worker", *arguments]
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def _start_producer(
    url: str, prefix: str, ident: int, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, str(ROOT / "tests" / "writebehind_producer.py"), url,
        prefix, NAME, str(ident), str(KEYS), str(WRITES), str(log),
    ]  # fmt: skip
    return subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _wait_for_exit(
    worker: subprocess.Popen[bytes], producers: list[subprocess.Popen[bytes]]
) -> None:
    """Until ``worker`` exits by itself, or the producers are done."""
    while worker.poll() is None and any(p.poll() is None for p in producers):
        time.sleep(0.05)


def _wait_until_started(log: Path, worker: subprocess.Popen[bytes]) -> None:
    """Until the worker runs, its signal handlers in place (it logs "started")."""
    marker = f"worker {os.uname().nodename}-{worker.pid}-"
    deadline = time.monotonic() + 60
    while marker not in log.read_text(errors="replace"):
        exited = worker.poll() is not None
        if exited and marker in log.read_text(errors="replace"):
            return  # started, then exited after a commit already
        assert not exited, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _read_logs(paths: list[Path]) -> tuple[dict[str, tuple[int, str]], set[str], int]:
    """Per key, the highest acknowledged (version, value); every value
    attempted; and how many puts raised."""
    acked: dict[str, tuple[int, str]] = {}
    attempted: set[str] = set()
    failed = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            kind, key, rest = line.split(" ", 2)
            if kind == "A":
                attempted.add(rest)
            elif kind == "K":
                version_text, value = rest.split(" ", 1)
                version = int(version_text)
                if key not in acked or acked[key][0] < version:
                    acked[key] = (version, value)
            else:
                failed += 1
    return acked, attempted, failed


@pytest.mark.parametrize("where", ["redis", "cluster"])
def test_write_behind_survives_kill_9_of_worker_and_redis(
    where: str, postgres_dsn: str, table: str, tmp_path: Path
) -> None:
    rng = random.Random()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with _place(where, prefix) as place:
        url, raw, server = place.url, place.raw, place.victim
        # Poison first, so that it is durable before Redis is killed.
        cache = Cache(url, prefix=prefix, timeout=1.0)
        wb = cache.write_behind(name=NAME, partitions=4)
        assert wb.start().durable
        # (stream, id): ids are unique per stream only
        poison_ids: set[tuple[str, str]] = set()
        for i in range(2):
            key = f"poison:{i}"
            version = wb.put(key, {"poison": True, "i": i})
            stream = place.stream(partition_of(key, 4))
            poison_ids.add((stream, f"{version // 1_000_000}-{version % 1_000_000}"))
        stream = place.stream(0)
        poison_ids.add((stream, raw.xadd(stream, {"garbage": "x"})))

        logs = [tmp_path / f"producer{i}.log" for i in (1, 2)]
        worker_log = tmp_path / "worker.log"
        producers = [
            _start_producer(url, prefix, i, log)
            for i, log in zip((1, 2), logs, strict=True)
        ]
        worker = _start_worker(url, prefix, postgres_dsn, table, worker_log)
        # A second worker on the same queue: batches of one key may be applied
        # concurrently, and each reclaims what the other left pending.
        buddy = _start_worker(url, prefix, postgres_dsn, table, worker_log)
        kills = exits_after_commit = rounds = 0
        redis_killed = False
        started = time.monotonic()
        try:
            exit_after = 0
            while any(p.poll() is None for p in producers):
                rounds += 1
                if rounds % 3 == 0:  # kill -9 the second one now and then
                    _wait_until_started(worker_log, buddy)
                    buddy.send_signal(signal.SIGKILL)
                    buddy.wait()
                    kills += 1
                    buddy = _start_worker(
                        url, prefix, postgres_dsn, table, worker_log,
                        claim_idle=rng.choice((0.3, 2.0)),
                    )  # fmt: skip
                _wait_until_started(worker_log, worker)  # then kill it at random
                time.sleep(rng.uniform(0.2, 1.2))
                if exit_after:  # give it time to exit after its commit
                    _wait_for_exit(worker, producers)
                if worker.poll() is None:
                    worker.send_signal(signal.SIGKILL)
                    kills += 1
                else:  # only the test-only exit after a commit ends it
                    assert worker.returncode == 99, worker_log.read_text()[-3000:]
                    exits_after_commit += 1
                worker.wait()
                if not redis_killed and time.monotonic() - started > 5:
                    server.kill()  # kill -9, then restart from the AOF
                    time.sleep(0.2)
                    server.restart()
                    redis_killed = True
                exit_after = rng.randint(1, 3) if rng.random() < 0.4 else 0
                # a long claim delay: new entries are applied before the dead
                # worker's older ones are reclaimed (the version guard's job)
                worker = _start_worker(
                    url, prefix, postgres_dsn, table, worker_log, exit_after,
                    claim_idle=rng.choice((0.3, 0.5, 2.0, 4.0)),
                )  # fmt: skip
            assert all(p.wait() == 0 for p in producers)
            if worker.poll() is None:  # one last kill -9: the drain needs a
                worker.send_signal(signal.SIGKILL)  # worker without exit_after
                kills += 1
            else:
                exits_after_commit += worker.returncode == 99
            worker.wait()
            buddy.send_signal(signal.SIGKILL)
            buddy.wait()
            kills += 1
            worker = _start_worker(url, prefix, postgres_dsn, table, worker_log)

            # Drain with one clean worker, then stop it with SIGTERM.
            deadline = time.monotonic() + 120
            while True:
                stats = wb.stats()
                if stats.backlog == 0 and stats.pending == 0:
                    break
                assert time.monotonic() < deadline, f"no drain: {stats}"
                assert worker.poll() is None, worker_log.read_text()[-3000:]
                time.sleep(0.2)
            _wait_until_started(worker_log, worker)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        finally:
            for process in [*producers, worker, buddy]:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        acked, attempted, failed = _read_logs(logs)
        with psycopg.connect(postgres_dsn) as conn:
            rows = {
                key: (version, _canonical(value))
                for key, value, version in conn.execute(
                    f"SELECT key, value::text, version FROM {table}"
                )
            }
        lost = [k for k, (v, _) in acked.items() if k not in rows or rows[k][0] < v]
        wrong = [
            k
            for k, (v, value) in acked.items()
            if k in rows and rows[k][0] == v and rows[k][1] != _canonical(value)
        ]
        attempted = {_canonical(value) for value in attempted}
        never_written = [k for k, (_, value) in rows.items() if value not in attempted]
        newer_unacked = [
            k for k, (v, _) in rows.items() if v > acked.get(k, (0, ""))[0]
        ]
        dead = raw.xrange(f"{prefix}:!wb:{NAME}:dead")
        dead_ids = {(fields["stream"], fields["id"]) for _, fields in dead}
        pending = sum(
            raw.xpending(place.stream(i), WRITEBEHIND_GROUP)["pending"]
            for i in range(4)
        )
        summary = (
            f"{len(acked)} keys acknowledged, {failed} puts raised, "
            f"{kills} worker kills, {exits_after_commit} exits after commit, "
            f"{len(newer_unacked)} rows newer than acknowledged (unacknowledged "
            f"writes that were made), Redis killed: {redis_killed}, "
            f"{len(dead) - len(dead_ids)} dead letters copied twice"
        )
        print(summary)
        assert lost == [], f"lost {len(lost)}: {lost[:10]}; {summary}"
        assert wrong == [], wrong[:10]
        assert never_written == [], never_written[:10]
        assert dead_ids == poison_ids, (dead_ids, poison_ids)
        if not place.cluster:  # a cluster's copy and ACK are two steps
            assert len(dead) == len(poison_ids), dead  # each one once
        assert pending == 0
        assert redis_killed, summary
        assert kills >= 3, summary
        assert exits_after_commit >= 1, summary
        assert len(acked) > KEYS * 0.9
        wb.close(flush=False)
        cache.close()


def _canonical(value: str) -> str:
    return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
