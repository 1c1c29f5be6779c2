"""``freshcache stats``, ``inspect`` and ``keys`` as processes, against a
live workload: two processes (``tests/live_worker.py``) with an L1 each,
publishing their stats every 0.2 s; one holds a fill lease, the other has
a write-behind write pending. Never a cached value in the output."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from freshcache import L1, Cache
from tests.cluster import ClusterInfo
from tests.servers import own_redis_server

WORKER = Path(__file__).with_name("live_worker.py")
WAIT = 60.0  # seconds a step may take before the test fails (a busy box)


def cli(*args: str, url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freshcache.cli", *args, "--redis", url,
         "--prefix", prefix],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def start(url: str, prefix: str, role: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, prefix, role],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, line.split()[1]


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture
def workload(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> Iterator[tuple[str, str]]:
    """Two publishing processes: (the lease holder's id, the writer's id)."""
    lease, lease_id = start(redis_url, key_prefix, "lease")
    try:
        writes, writes_id = start(redis_url, key_prefix, "writes")
        try:
            with Cache(redis_url, prefix=key_prefix, timeout=1.0) as reader:
                deadline = time.monotonic() + WAIT
                while len(reader.live.processes()[0]) < 2:
                    assert time.monotonic() < deadline, "no snapshots published"
                    time.sleep(0.05)
            yield lease_id, writes_id
        finally:
            stop(writes)
    finally:
        stop(lease)


def test_stats_once_shows_each_process_and_the_total(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    result = cli(
        "stats", "--once", "--interval", "0.1", url=redis_url, prefix=key_prefix
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for process in workload:
        assert process in out
    assert "total (2 processes)" in out
    assert "namespaces (all processes)" in out
    assert "write-behind" in out  # queue q, with its backlog
    assert "secret-value" not in out
    assert "queued-value" not in out


def test_stats_refreshes_until_interrupted(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    """Without --once: a table that refreshes every --interval; Ctrl-C ends
    it (status 130) with the last table shown."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "freshcache.cli", "stats", "--redis", redis_url,
         "--prefix", key_prefix, "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    started = proc.stderr.readline()  # the loop runs: its first table is read
    assert "Ctrl-C" in started, started
    time.sleep(1.0)  # a few refreshes (nothing is asserted about time)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "total (2 processes)" in out
    for process in workload:
        assert process in out


def test_stats_json(workload: tuple[str, str], redis_url: str, key_prefix: str) -> None:
    result = cli(
        "stats", "--json", "--interval", "0.1", url=redis_url, prefix=key_prefix
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {p["process"] for p in data["processes"]} == set(workload)
    total = data["total"]
    assert total["lookups"]["hits"] == sum(
        p["stats"]["lookups"]["hits"] for p in data["processes"]
    )
    assert total["l1"]["hits"] >= 2  # each process read user:1 from its L1
    assert "user" in total["namespaces"]
    for p in data["processes"]:
        assert p["bus_connected"] is True
        assert p["l1_entries"] >= 1
    assert data["queues"]["q"]["backlog"] == 1  # no worker runs
    assert data["unreadable"] == []


def test_inspect_a_key_in_both_processes_l1(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    result = cli("inspect", "user:1", url=redis_url, prefix=key_prefix)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"redis key      {key_prefix}:v1:user:1" in out
    assert "envelope       json" in out
    assert "check crc-32" in out
    assert "tags           team:7" in out
    for process in workload:
        assert f"L1 {process}  held, fresh" in out
    assert "secret-value" not in out

    result = cli("inspect", "user:1", "--json", url=redis_url, prefix=key_prefix)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["in_redis"] is True
    assert info["undecodable"] is None
    assert info["header"]["codec"] == "json"
    assert info["header"]["fresh_until"] > info["header"]["created_at"]
    assert info["tags"] == ["team:7"]
    assert info["namespace_version"] == 0
    assert set(info["processes"]) == set(workload)
    assert all(v["present"] for v in info["processes"].values())
    assert "value" not in info
    assert "secret-value" not in result.stdout


def test_inspect_a_key_whose_lease_is_held(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    holder, _ = workload
    result = cli(
        "inspect", "slow:1", "--json", "--wait", "0", url=redis_url, prefix=key_prefix
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["in_redis"] is False
    assert info["lease_holder"] == holder
    assert info["lease_age"] >= 0
    assert info["lease_ttl"] > 0
    text = cli("inspect", "slow:1", "--wait", "0", url=redis_url, prefix=key_prefix)
    assert f"fill lease     held by {holder} for " in text.stdout


def test_inspect_a_key_with_a_pending_write(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    result = cli(
        "inspect", "wb:1", "--json", "--wait", "0", url=redis_url, prefix=key_prefix
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["write_pending"] is not None
    assert "-" in info["write_pending"]
    assert info["write_pending_age"] >= 0
    assert info["in_redis"] is True  # write-behind stored the value too
    assert "queued-value" not in result.stdout


def test_keys_lists_data_keys_only(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    result = cli("keys", "--limit", "100", url=redis_url, prefix=key_prefix)
    assert result.returncode == 0, result.stderr
    keys = set(result.stdout.split())
    assert {"user:1", "wb:1"} <= keys
    assert not any("!" in k or "lease" in k for k in keys)  # no bookkeeping
    result = cli(
        "keys", "--namespace", "user", "--json", url=redis_url, prefix=key_prefix
    )
    assert json.loads(result.stdout) == ["user:1"]


def test_bad_input_does_not_crash_the_commands(
    workload: tuple[str, str], redis_url: str, key_prefix: str
) -> None:
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.set(f"{key_prefix}:!stats:garbled", b"\xff{not json", px=60_000)
        raw.set(f"{key_prefix}:!stats:wrong", b'{"v": 1, "process": 3}', px=60_000)
        raw.set(f"{key_prefix}:v1:user:foreign", b"\x00foreign bytes")
        raw.hset(f"{key_prefix}:!inspect", "junk", b"\x00")  # a garbled request
        raw.hset(f"{key_prefix}:!wb:odd:meta", "partitions", "0")  # no such queue
        raw.hset(f"{key_prefix}:!wb:odder:meta", "partitions", "x")
        raw.pexpire(f"{key_prefix}:!inspect", 60_000)
        once = cli(
            "stats", "--once", "--interval", "0.1", url=redis_url, prefix=key_prefix
        )
        assert once.returncode == 0, once.stderr
        assert "unreadable snapshots: garbled, wrong" in once.stdout
        assert "total (2 processes)" in once.stdout
        data = json.loads(
            cli(
                "stats", "--json", "--interval", "0.1", url=redis_url, prefix=key_prefix
            ).stdout
        )
        assert data["unreadable"] == ["garbled", "wrong"]
        assert set(data["queues"]) == {"q"}  # the odd metas are skipped

        foreign = cli(
            "inspect", "user:foreign", "--json", url=redis_url, prefix=key_prefix
        )
        assert foreign.returncode == 0, foreign.stderr
        info = json.loads(foreign.stdout)
        assert info["in_redis"] is True
        assert info["undecodable"] == "magic"
        assert info["header"] is None
        text = cli(
            "inspect", "user:foreign", "--wait", "0", url=redis_url, prefix=key_prefix
        )
        assert "undecodable    magic" in text.stdout

        unknown = cli(
            "inspect", "user:nobody", "--wait", "0", url=redis_url, prefix=key_prefix
        )
        assert unknown.returncode == 0, unknown.stderr
        assert "in redis       no" in unknown.stdout
        assert "fill lease     none" in unknown.stdout

        bad_key = cli("inspect", "", url=redis_url, prefix=key_prefix)
        assert bad_key.returncode == 2
        assert "Traceback" not in bad_key.stderr
    finally:
        raw.close()


def test_without_redis_the_commands_say_so(key_prefix: str) -> None:
    for command in (["stats", "--json"], ["inspect", "user:1"], ["keys"]):
        result = subprocess.run(
            [sys.executable, "-m", "freshcache.cli", *command, "--prefix", key_prefix],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "say where Redis is" in result.stderr


def test_stats_keys_and_inspect_on_a_redis_cluster(
    redis_cluster: ClusterInfo, key_prefix: str
) -> None:
    """On a cluster every primary is scanned: keys (and snapshots) on every
    node are found."""
    url = f"redis+cluster://{','.join(redis_cluster.addresses)}/"
    with (
        Cache(url, prefix=key_prefix, l1=L1(), publish_stats=0.2, timeout=1.0) as a,
        Cache(url, prefix=key_prefix, publish_stats=0.2, timeout=1.0) as b,
    ):
        wanted = {f"user:{i}" for i in range(40)}
        for key in wanted:
            a.set(key, "v")
        a.get("user:1")
        b.get("user:1")
        deadline = time.monotonic() + WAIT
        while len(a.live.processes()[0]) < 2:
            assert time.monotonic() < deadline, "no snapshots published"
            time.sleep(0.05)
        owners = {
            redis_cluster.primary_for(f"{key_prefix}:v1:{k}").port for k in wanted
        }
        assert len(owners) > 1  # the keys are spread over primaries
        result = cli("keys", "--limit", "1000", "--json", url=url, prefix=key_prefix)
        assert result.returncode == 0, result.stderr
        assert set(json.loads(result.stdout)) == wanted
        stats = cli("stats", "--json", "--interval", "0.1", url=url, prefix=key_prefix)
        assert stats.returncode == 0, stats.stderr
        ids = {a.engine.process_name(), b.engine.process_name()}
        assert {p["process"] for p in json.loads(stats.stdout)["processes"]} == ids
        inspect = cli("inspect", "user:1", "--json", url=url, prefix=key_prefix)
        assert inspect.returncode == 0, inspect.stderr
        info = json.loads(inspect.stdout)
        assert info["in_redis"] is True
        assert set(info["processes"]) == ids
        assert info["processes"][a.engine.process_name()]["present"] is True
        a.clear()


def _forked_child(cache: Cache, out: Any) -> None:
    cache.get("user:1")  # the child's first call: its own bus and publisher
    deadline = time.monotonic() + WAIT
    while True:
        mine = [p for p in cache.live.processes()[0]
                if p.process == cache.engine.process_name()]  # fmt: skip
        if (mine and mine[0].stats.lookups.total) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    out.put((cache.engine.process_name(), [p.stats.lookups.total for p in mine]))


def test_a_forked_child_publishes_as_a_process_of_its_own(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    with Cache(
        redis_url, prefix=key_prefix, l1=L1(), publish_stats=0.1, timeout=1.0
    ) as cache:
        for _ in range(5):
            cache.get("user:1")  # five lookups in the parent
        parent = cache.engine.process_name()
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        child = context.Process(target=_forked_child, args=(cache, out))
        child.start()
        try:
            name, published = out.get(timeout=WAIT)
        finally:
            child.join(WAIT)
        assert name != parent
        assert name.split(":")[1] == str(child.pid)
        assert published == [1]  # its own stats: one lookup, not the parent's
        out.close()
        out.join_thread()


def test_keys_scans_and_never_sends_keys(key_prefix: str) -> None:
    """Counted by the server (commandstats, on a Redis of the test's own)."""
    with own_redis_server() as server:
        with Cache(server.url, prefix=key_prefix, timeout=1.0) as cache:
            for i in range(30):
                cache.set(f"user:{i}", i)
        raw = redis.Redis.from_url(server.url)
        try:
            raw.config_resetstat()
            result = cli("keys", "--limit", "100", url=server.url, prefix=key_prefix)
            assert result.returncode == 0, result.stderr
            assert len(result.stdout.split()) == 30
            calls = {
                name.removeprefix("cmdstat_")
                for name in raw.info("commandstats")
            }  # fmt: skip
        finally:
            raw.close()
        assert "scan" in calls
        assert "keys" not in calls
