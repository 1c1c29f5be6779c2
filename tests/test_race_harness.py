"""The randomized race harness: freshcache shows no stale reads and no stale
keys; a naive cache-aside, under the same harness, shows stale keys.

Several processes each run reader threads and a writer thread over a few
hundred rows (tests/harness.py). ``-s`` prints the checker's figures;
``CACHE_TEST_SEED`` replays a seed (the interleavings themselves are the
operating system's, so a seed fixes the workload, not the outcome).
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests import harness, servers

BOUND = 0.1  # seconds: L1's default max_staleness


@pytest.mark.slow
def test_no_stale_reads_or_keys_and_the_naive_cache_fails(
    redis_url: str, postgres_dsn: str
) -> None:
    seed = int(os.environ.get("CACHE_TEST_SEED") or harness.new_seed())
    work = harness.Workload()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        with harness.row_table(postgres_dsn, work.rows) as table:
            fresh = harness.run(
                harness.RunConfig(
                    mode="freshcache",
                    redis_url=redis_url,
                    dsn=postgres_dsn,
                    table=table.name,
                    prefix=f"{prefix}f",
                    seed=seed,
                    work=work,
                    duration=20.0,
                )
            )
            print(f"\n{fresh.summary()}")
        with harness.row_table(postgres_dsn, work.rows) as table:
            naive = harness.run(
                harness.RunConfig(
                    mode="naive",
                    redis_url=redis_url,
                    dsn=postgres_dsn,
                    table=table.name,
                    prefix=f"{prefix}n",
                    seed=seed,
                    # Slower loads, more readers and more hot rows: the race
                    # window opens on most last writes of a hot row, so rows
                    # are left stale in every run (9 on average, at least 5
                    # in each of 17 runs), not merely in most.
                    work=harness.Workload(
                        hot_rows=30, loader_delay=(0.03, 0.08), slow_share=1.0
                    ),
                    readers=8,
                    duration=6.0,
                )
            )
            print(naive.summary())
    finally:
        servers.delete_prefix(redis_url, prefix)

    # The harness did work, and the races it exists for happened.
    assert fresh.check.reads > 10_000
    assert fresh.check.writes > 1_000
    assert fresh.counts.get("invalidations_received", 0) > 0
    assert not [e for e in fresh.errors if e.startswith("read:")], fresh.errors
    # freshcache: the staleness bound however loaded the host (L1 refuses to
    # serve once its watermark is older than 100 ms), read-your-writes
    # exactly, no stale fill at rest.
    assert fresh.check.phantoms == 0
    assert fresh.check.stale_at(BOUND) == 0, fresh.summary()
    assert fresh.own_writes.stale_at(0.0) == 0, fresh.summary()
    assert fresh.stale_keys == 0, (
        fresh.stale_keys_l2,
        fresh.stale_keys_loaded,
        fresh.stale_keys_workers,
    )
    # The naive cache-aside: the same harness catches it.
    assert naive.check.reads > 1_000
    assert naive.check.writes > 500
    assert naive.stale_keys > 0, naive.summary()
    assert naive.check.stale_at(BOUND) > 0, naive.summary()
