"""Smoke test of ``python -m bench stampede`` in a tiny configuration, so the
command cannot rot: every approach builds, runs in two spawned processes and
reports. No timing is asserted (figures are for the benchmark, not tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.stampede import P4_ROWS

pytestmark = pytest.mark.slow


def test_stampede_p4_every_approach(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "p4.json"
    code = main(
        [
            "stampede",
            "--quick",
            "--scenario",
            "p4",
            "--callers",
            "3",
            "--redis-url",
            redis_url,
            "--json",
            str(out),
        ]
    )
    assert code == 0
    rows = json.loads(out.read_text())["p4"]
    assert [r["approach"] for r in rows] == P4_ROWS
    for row in rows:
        assert row["failure"] is None, row["failure"]
        assert row["callers"] == 2 * 3
        assert row["loader_calls"] >= 1
        assert row["verdict"] in {"meets", "misses"}


def test_stampede_p5_and_plot(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "p5.json"
    png = tmp_path / "expiry.png"
    only = ["naive", "fc-sync-l2", "fc-async"]
    args = [
        "stampede",
        "--quick",
        "--scenario",
        "p5",
        "--p5-callers",
        "2",
        "--redis-url",
        redis_url,
        "--json",
        str(out),
        "--plot",
        str(png),
    ]
    for approach in only:
        args += ["--only", approach]
    assert main(args) == 0
    rows = json.loads(out.read_text())["p5"]
    assert [r["approach"] for r in rows] == only
    for row in rows:
        assert row["failure"] is None, row["failure"]
        assert row["calls_plain"] > 0
        assert row["calls_across"] > 0
        assert row["db_calls"] >= 1  # the key expired during the run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
