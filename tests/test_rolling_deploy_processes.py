"""A rolling deploy with real processes: two of ``version="v1"`` and two of
``version="v2"`` on one Redis, each with its L1, all reading and writing.

The source of truth is a plain Redis key per row, outside the cache's
prefix (the "database"). Each process reads rows through its cache with a
loader that tags the row with the process's version (the format a version
caches), and in turn changes a row in the database and then tells its cache
in one of the ways an application does: ``invalidate``, ``delete``, ``set``
of the new row, or ``invalidate_tags``. Once every process is quiet, each
reads every row: it must see the database's row (0 stale rows, on either
side), and no process may ever get a row in another version's format. The
in-process twin is ``tests/_async/test_rolling_deploy.py``.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
import redis

from freshcache import L1, Cache

pytestmark = pytest.mark.redis

ROWS = 12
PROCESSES = (("v1", 0), ("v1", 1), ("v2", 2), ("v2", 3))
ROUNDS = 4
GAP = 0.25  # seconds between two writes (each process writes in its turn)
HOW = ("invalidate", "delete", "set", "tags")


def _run(url: str, prefix: str, version: str, me: int, start: float, out: Any) -> None:
    raw = redis.Redis.from_url(url)
    cache = Cache(url, prefix=prefix, version=version, l1=L1())

    def truth(row: int) -> int:
        return int(raw.get(f"{prefix}-db:{row}") or 0)

    def read(row: int) -> dict[str, Any]:
        value: dict[str, Any] = cache.get_or_load(
            f"row:{row}",
            lambda: {"format": version, "n": truth(row)},
            tags=[f"row:{row}"],
        )
        return value

    foreign = 0
    writes = [
        (start + (r * len(PROCESSES) + me) * GAP, (r * len(PROCESSES) + me) % ROWS)
        for r in range(ROUNDS)
    ]
    end = start + ROUNDS * len(PROCESSES) * GAP
    turn = 0
    while time.monotonic() < end:
        for row in range(ROWS):
            foreign += read(row)["format"] != version
        if turn < len(writes) and time.monotonic() >= writes[turn][0]:
            row = writes[turn][1]
            n = int(raw.incr(f"{prefix}-db:{row}"))  # the commit
            how = HOW[(me + turn) % len(HOW)]
            if how == "invalidate":
                assert cache.invalidate(f"row:{row}")
            elif how == "delete":
                cache.delete(f"row:{row}")
            elif how == "set":
                assert cache.set(
                    f"row:{row}", {"format": version, "n": n}, tags=[f"row:{row}"]
                )
            else:
                assert cache.invalidate_tags(f"row:{row}")
            turn += 1
        time.sleep(0.005)
    time.sleep(1.0)  # quiet: every bus message delivered, every bound passed
    stale = [row for row in range(ROWS) if read(row)["n"] != truth(row)]
    out.put((me, version, turn, foreign, stale))
    cache.close()
    raw.close()


def test_two_versions_side_by_side_keep_every_row_fresh(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    context = multiprocessing.get_context("spawn")
    out: Any = context.Queue()
    start = time.monotonic() + 3.0  # every process started and subscribed
    processes = [
        context.Process(target=_run, args=(redis_url, key_prefix, v, me, start, out))
        for v, me in PROCESSES
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
        assert process.exitcode == 0
    raw = redis.Redis.from_url(redis_url)
    raw.delete(*[f"{key_prefix}-db:{row}" for row in range(ROWS)])
    raw.close()
    for me, version, turns, foreign, stale in sorted(results):
        assert turns == ROUNDS, (me, version)
        assert foreign == 0, (me, version)  # never another version's format
        assert stale == [], (me, version, stale)
