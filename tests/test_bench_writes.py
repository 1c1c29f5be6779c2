"""``python -m bench writes`` in a tiny configuration: the command cannot rot,
and what it reports adds up (no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.redis
@pytest.mark.postgres
def test_bench_writes_runs_and_drains_everything(
    tmp_path: Path, postgres_dsn: str
) -> None:
    out = tmp_path / "writes.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "bench", "writes", "--writes", "200",
            "--block", "50", "--clients", "1,2", "--postgres", postgres_dsn,
            "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "P8 with 1 client(s)" in result.stdout
    data = json.loads(out.read_text())
    assert data["durable"] is True  # its own Redis runs with appendfsync always
    assert {side["writes"] for side in data["sides"]} == {200}
    assert data["applied"] == data["backlog"]  # the worker drained the queue
    assert data["rows"] >= 1
