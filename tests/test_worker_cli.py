"""``freshcache worker`` as a process: SIGTERM finishes the batch in hand."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from freshcache import Cache
from tests.cluster import ClusterInfo


def test_sigterm_finishes_the_batch_in_hand(
    redis_url: str, key_prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL)"
        )
    cache = Cache(redis_url, prefix=key_prefix, timeout=1.0)
    wb = cache.write_behind(name="q")
    for i in range(10):
        wb.put(f"k{i}", i)
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the worker's transaction has to wait
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "freshcache.cli", "worker", "--redis", redis_url,
             "--prefix", key_prefix, "--name", "q", "--sqlite", str(path),
             "--table", "t", "--block", "0.1"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while wb.stats().pending < 10:  # it holds the batch, blocked on the lock
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        lock.execute("COMMIT")  # now its transaction can go through
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        lock.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    stats = wb.stats()
    assert (stats.backlog, stats.pending, stats.applied) == (0, 0, 10)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (10,)
    assert "stopped after" in log.read_text()
    wb.close(flush=False)
    cache.close()


def test_until_idle_through_sqlalchemy(
    redis_url: str, key_prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER)")
    cache = Cache(redis_url, prefix=key_prefix, timeout=1.0)
    wb = cache.write_behind(name="q")
    wb.put_many({"a": 1, "b": [2]})
    wb.put("a", 3)
    result = subprocess.run(
        [sys.executable, "-m", "freshcache.cli", "worker", "--redis", redis_url,
         "--prefix", key_prefix, "--name", "q", "--sqlalchemy", f"sqlite:///{path}",
         "--table", "t", "--key-column", "k", "--value-column", "v",
         "--version-column", "n", "--block", "0", "--until-idle"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "applied 3" in result.stderr  # the report at the end
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT k, v FROM t").fetchall())
    assert rows == {"a": "3", "b": "[2]"}
    wb.close()  # nothing left to flush
    cache.close()


def test_the_worker_drains_a_queue_on_a_redis_cluster(
    redis_cluster: ClusterInfo, key_prefix: str, tmp_path: Path
) -> None:
    """``--redis redis+cluster://...``: the same command on a cluster, whose
    partitions live on every primary."""
    url = f"redis+cluster://{','.join(redis_cluster.addresses)}/"
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL)"
        )
    with Cache(url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        wb.put_many({f"k{i}": i for i in range(20)})
        wb.put("k0", "last")
        result = subprocess.run(
            [sys.executable, "-m", "freshcache.cli", "worker", "--redis", url,
             "--prefix", key_prefix, "--name", "q", "--sqlite", str(path),
             "--table", "t", "--block", "0", "--until-idle"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "applied 21" in result.stderr
        with sqlite3.connect(path) as db:
            rows = dict(db.execute("SELECT key, value FROM t").fetchall())
        assert rows == {f"k{i}": str(i) for i in range(1, 20)} | {"k0": '"last"'}
        assert wb.stats().backlog == 0
        wb.close()
