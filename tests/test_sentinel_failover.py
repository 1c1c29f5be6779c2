"""A Sentinel failover under traffic: the primary is killed (SIGKILL) 5 s
into 20 s of reads (with L1 and without), writes (commit, then
invalidate), write-through and write-behind (``tests/traffic.py``), and a
replica is promoted.

Asserted: 0 caller errors on reads (they fall back to the loader); 0 reads
staler than the bound once the new primary serves (a read that began more
than the bound after an invalidation returned True saw the value before
it; the bound is ``max_staleness``, 0.1 s, for the reader with L1 and for
the one without, whose concurrent callers share reads in flight); 0 keys stale
once it is quiet, in Redis and in the reader's L1 once its bus caught up
(every invalidation that returned True held on the new primary; the ones
that returned False were queued and landed later); 0 acknowledged
write-behind writes lost with ``replicas=1``. Reported (and
only bounded loosely): the time from the kill until a Redis-only cache
serves a hit again, and the acknowledged write-behind writes lost with the
default ``replicas=0`` (asynchronous replication: a write the old primary
acknowledged but had not yet sent to the promoted replica is gone).
"""

from __future__ import annotations

import time

from freshcache import L1, Cache
from tests.sentinel import own_redis_sentinel
from tests.traffic import Workload, settle, stale_reads

KEYS = [f"item:{i}" for i in range(40)]
KILL_AT = 5.0  # seconds into the traffic
TRAFFIC = 20.0  # seconds of traffic in all


def test_failover_under_traffic(key_prefix: str) -> None:
    with own_redis_sentinel() as sentinels:
        url = sentinels.url()
        options = {"prefix": key_prefix, "timeout": 0.2}
        with (
            Cache(url, l1=L1(), **options) as reader,  # type: ignore[arg-type]
            Cache(url, **options) as plain,  # type: ignore[arg-type]
            Cache(url, **options) as writer,  # type: ignore[arg-type]
            Cache(url, **options) as probe,  # type: ignore[arg-type]
        ):
            queues = {
                "default": writer.write_behind(name="default"),
                "strict": writer.write_behind(name="strict", replicas=1),
            }
            work = Workload(
                KEYS, readers={"reader": reader, "plain": plain}, writer=writer,
                queues=queues,
            )  # fmt: skip
            probe.set("probe", "here")
            work.start()
            time.sleep(KILL_AT)
            old = sentinels.primary()
            old.kill()
            killed = time.monotonic()
            served_again: float | None = None
            while time.monotonic() - killed < TRAFFIC - KILL_AT:
                if served_again is None and probe.get("probe") == "here":
                    served_again = time.monotonic() - killed
                time.sleep(0.02)
            new_port = sentinels.wait_for_failover(old.port, timeout=1)
            work.stop()

            # Quiet: the queued invalidations land, the queues drain.
            pending = settle(writer)
            lost = work.drain()
            with Cache(url, **options) as fresh:  # type: ignore[arg-type]
                caches = {"fresh": fresh, "reader": reader, "plain": plain}
                stale = stale_reads(caches, KEYS, work.db)
            up = killed + (served_again or 0.0)
            staler_after = work.staler(after=up)
            errors = {"reader": reader.stats().errors, "writer": writer.stats().errors}

        print(
            f"\nfailover {old.port} -> {new_port}: Redis hits again "
            f"{served_again if served_again is None else round(served_again, 2)} "
            f"s after the kill (the new primary up at {up:.2f}); "
            f"{work.summary(lost, after=up)}; {pending} pending after quiet; "
            f"stale after quiet {len(stale)}; errors {errors}"
        )
        assert work.read_errors == []
        assert pending == 0
        assert staler_after == [], staler_after[:10]
        assert stale == [], stale
        assert lost["strict"] == []
        assert served_again is not None
        assert served_again < TRAFFIC - KILL_AT
        assert work.invalidations[True] > 0
        assert work.written_through[True] > 0
        assert work.acked["strict"]
        assert new_port != old.port
