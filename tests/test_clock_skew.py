"""Processes whose clocks disagree by 20 minutes agree on freshness.

Each process runs ``tests/skewed_worker.py`` with its wall clock 10 minutes
ahead of the real time, or 10 minutes behind. Freshness is written and
judged on the Redis server's clock, which each process estimates (to within
half a round trip) whenever it refreshes its registration. Before, each
wrote and judged it on its own clock: the process ahead found every value
the other wrote already stale (no hits), and the process behind served
values 20 minutes past their TTL, as long as Redis kept them (a stale
window).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytestmark = pytest.mark.redis

SKEW = 600.0  # seconds each process's clock is off, one ahead, one behind


class Skewed:
    """A cache in a process whose clock is ``skew`` seconds off."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def __call__(self, *command: object) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(" ".join(map(str, command)) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())


@contextmanager
def skewed(url: str, prefix: str, skew: float) -> Iterator[Skewed]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-m", "tests.skewed_worker", url, prefix, str(skew)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            assert json.loads(process.stdout.readline()) == "ready"
            yield Skewed(process)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(10)


def test_processes_with_clocks_20_minutes_apart_agree_on_freshness(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    with (
        skewed(redis_url, key_prefix, +SKEW) as ahead,
        skewed(redis_url, key_prefix, -SKEW) as behind,
    ):
        # A value the process behind wrote is a hit for the process ahead.
        assert behind("load", "user:1", "row-1", 60) == ["row-1", True]
        assert ahead("load", "user:1", "other", 60) == ["row-1", False]
        assert ahead("get", "user:1") == "row-1"
        # And the other way round.
        assert ahead("set", "user:2", "row-2", 60, 0) is True
        assert behind("get", "user:2") == "row-2"
        # A value past its TTL is stale for both, though Redis keeps it for
        # its stale window: the process behind does not serve it as fresh.
        assert ahead("set", "user:3", "row-3", 1, 60) is True
        assert behind("get", "user:3") == "row-3"
        time.sleep(1.5)
        assert behind("get", "user:3") is None
        assert ahead("get", "user:3") is None
