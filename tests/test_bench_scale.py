"""``python -m bench scale --quick``: the command cannot rot, its tables have
the shape docs/performance.md quotes, and every read measured the kind of
read it claims (no speed is asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
TOPOLOGIES = {  # row name -> servers it runs on
    "1 node (redis://)": 1,
    "cluster, 1 primary": 1,
    "cluster, 2 primaries": 2,
    "cluster, 3 primaries": 3,
}


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("redis-cli"))
    and os.environ.get("FRESHCACHE_REQUIRE_SERVERS") != "1",
    reason="redis-server and redis-cli are not installed",
)
def test_bench_scale_quick_reports_every_topology_and_kind(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "bench", "scale", "--quick", "--plain",
            "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True
    sections = {s["id"]: s for s in data["sections"]}
    assert list(sections) == ["scale-hit", "scale-raw", "scale-miss"]
    for section in sections.values():
        assert section["id"] in result.stdout
        rows = section["rows"]
        assert {r["library"]: r["extra"]["servers"] for r in rows} == TOPOLOGIES
        assert [r["baseline"] for r in rows] == [True, False, False, False]
        assert rows[0]["ratio"] == 1.0
        for row in rows:
            assert row["ops_per_s"] > 0
            assert row["ratio"] == pytest.approx(
                row["ops_per_s"] / rows[0]["ops_per_s"]
            )
            extra = row["extra"]
            assert extra["reads"] > 0
            assert extra["wrong"] == 0, row  # hits were hits, misses misses
            assert extra["redis_commands_per_read"] >= 1  # a read is a round trip
            assert len(extra["rounds_reads_per_s"]) == 1  # --quick: one window
    hit_notes = [r["note"] for r in sections["scale-hit"]["rows"]]
    assert all("x raw GET" in note for note in hit_notes)
