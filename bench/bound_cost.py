"""What the staleness bound costs: L1 hit rate with and without it.

``python -m bench coherence --bound-cost`` runs the race harness of the test
suite (``tests/harness.py``: 3 processes, each with 4 reader threads and a
writer over 60 rows of a real PostgreSQL table, L1 in front of Redis) four
times: the bound on (``L1(max_staleness=0.1)``, the default) and off
(``max_staleness=None``), on a quiet machine and on one with a busy-loop
process per core and one worker frozen (SIGSTOP) 300 ms at a time. It
prints, per run, the reads, the share served by L1, the reads the bound sent
to Redis, and the reads staler than 100 ms (by the harness's checker).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from freshcache import L1
from tests import harness, servers

BOUND = 0.1


@dataclass(frozen=True)
class Row:
    machine: str
    bound: str
    reads: int
    l1_hits: int
    refused: int
    stale: int
    seconds: float

    @property
    def l1_share(self) -> float:
        return self.l1_hits / self.reads if self.reads else 0.0


def _run(
    redis_url: str, dsn: str, *, bounded: bool, loaded: bool, seconds: float
) -> Row:
    work = harness.Workload(rows=60, hot_rows=10)
    prefix = f"fcbound{uuid.uuid4().hex[:8]}"
    l1 = L1(max_staleness=BOUND if bounded else None)
    try:
        with harness.row_table(dsn, work.rows) as table:
            report = harness.run(
                harness.RunConfig(
                    mode="freshcache",
                    redis_url=redis_url,
                    dsn=dsn,
                    table=table.name,
                    prefix=prefix,
                    seed=harness.new_seed(),
                    work=work,
                    duration=seconds,
                    l1=l1,
                    hogs=(os.cpu_count() or 2) if loaded else 0,
                    pause=0.3 if loaded else 0.0,
                )
            )
    finally:
        servers.delete_prefix(redis_url, prefix)
    return Row(
        machine="loaded" if loaded else "quiet",
        bound="100 ms" if bounded else "off",
        reads=report.check.reads,
        l1_hits=report.counts.get("hit:l1", 0),
        refused=report.counts.get("bypass:l1:stale_bound", 0),
        stale=report.check.stale_at(BOUND),
        seconds=seconds,
    )


def run(*, redis_url: str, seconds: float, markdown: bool) -> int:
    dsn = servers.postgres_dsn()
    rows = [
        _run(redis_url, dsn, bounded=bounded, loaded=loaded, seconds=seconds)
        for loaded in (False, True)
        for bounded in (True, False)
    ]
    header = [
        "machine", "bound", "reads", "served by L1", "sent to Redis by the bound",
        "reads staler than 100 ms",
    ]  # fmt: skip
    lines = [
        [
            r.machine,
            r.bound,
            f"{r.reads:,}",
            f"{r.l1_share:.1%}",
            f"{r.refused:,}",
            f"{r.stale:,}",
        ]
        for r in rows
    ]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [
            max(len(cell) for cell in column)
            for column in zip(header, *lines, strict=True)
        ]
        for line in [header, *lines]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    print(
        f"\n{seconds:.0f} s per run; loaded: a busy-loop process per core "
        f"({os.cpu_count()}) and one worker at a time frozen for 300 ms; "
        "L1 share = stats().l1.hits / reads."
    )
    return 0
