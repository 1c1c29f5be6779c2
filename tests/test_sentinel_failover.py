"""A Sentinel failover under traffic: the primary is killed (SIGKILL) a few
seconds into ~15 s of reads, writes (commit, then invalidate) and
write-behind, and a replica is promoted.

Asserted: 0 caller errors on reads (they fall back to the loader); 0 keys
stale once it is quiet (every invalidation that returned True held on the
new primary; the ones that returned False were queued and landed later);
0 acknowledged write-behind writes lost with ``replicas=1``. Reported (and
only bounded loosely): the time from the kill until a Redis-only cache
serves a hit again, and the acknowledged write-behind writes lost with the
default ``replicas=0`` (asynchronous replication: a write the old primary
acknowledged but had not yet sent to the promoted replica is gone).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from freshcache import L1, Cache, CallableSink
from freshcache._core.streams import Write
from freshcache.errors import StoreError
from tests.sentinel import own_redis_sentinel
from tests.traffic import loop, settle, stale_reads

KEYS = [f"item:{i}" for i in range(40)]
KILL_AT = 4.0  # seconds into the traffic
TRAFFIC = 16.0  # seconds of traffic in all


class Table:
    """The database of the write-behind: the highest version per key."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, object]] = {}
        self.lock = threading.Lock()

    def apply(self, writes: Sequence[Write]) -> None:
        with self.lock:
            for w in writes:
                if w.key not in self.rows or self.rows[w.key][0] < w.version:
                    self.rows[w.key] = (w.version, w.payload)


def test_failover_under_traffic(key_prefix: str) -> None:
    with own_redis_sentinel() as sentinels:
        url = sentinels.url()
        db = dict.fromkeys(KEYS, 0)
        db_lock = threading.Lock()
        read_errors: list[BaseException] = []
        invalidations = {True: 0, False: 0}
        acked: dict[str, list[str]] = {"default": [], "strict": []}
        refused = {"default": 0, "strict": 0}
        options = {"prefix": key_prefix, "timeout": 0.2}
        with (
            Cache(url, l1=L1(), **options) as reader,  # type: ignore[arg-type]
            Cache(url, **options) as writer,  # type: ignore[arg-type]
            Cache(url, **options) as probe,  # type: ignore[arg-type]
        ):
            queues = {
                "default": writer.write_behind(name="default"),
                "strict": writer.write_behind(name="strict", replicas=1),
            }
            tables = {"default": Table(), "strict": Table()}
            workers = {
                name: queues[name].worker(
                    CallableSink(tables[name].apply), block=0.1, claim_idle=0.5
                )
                for name in queues
            }
            probe.set("probe", "here")
            stop = threading.Event()

            def read() -> None:
                key = random.choice(KEYS)
                try:
                    reader.get_or_load(key, lambda: db[key])
                except BaseException as exc:  # any error reaching a caller
                    read_errors.append(exc)

            def write() -> None:
                key = random.choice(KEYS)
                with db_lock:
                    db[key] += 1
                invalidations[writer.invalidate(key)] += 1
                time.sleep(0.002)

            counter = iter(range(10**9))

            def put(name: str) -> Callable[[], None]:
                def body() -> None:
                    key = f"wb:{name}:{next(counter)}"
                    try:
                        queues[name].put(key, 1)
                    except StoreError:
                        refused[name] += 1
                        time.sleep(0.01)
                        return
                    acked[name].append(key)
                    time.sleep(0.002)

                return body

            threads = [loop(stop, read) for _ in range(4)]
            threads += [loop(stop, write) for _ in range(2)]
            threads += [loop(stop, put(name)) for name in queues]
            runners = [
                threading.Thread(target=w.run, daemon=True) for w in workers.values()
            ]
            for runner in runners:
                runner.start()

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
            stop.set()
            for thread in threads:
                thread.join(10)
            for worker in workers.values():
                worker.stop()
            for runner in runners:
                runner.join(10)

            # Quiet: the queued invalidations land, the queues drain.
            assert settle(writer) == 0
            for name, queue in queues.items():
                drain = queue.worker(
                    CallableSink(tables[name].apply), block=0, claim_idle=0.01
                )
                try:
                    drain.run(until_idle=True)
                finally:
                    drain.close()
            with Cache(url, **options) as fresh:  # type: ignore[arg-type]
                stale = stale_reads({"fresh": fresh, "reader": reader}, KEYS, db)
            lost = {
                name: [k for k in acked[name] if k not in tables[name].rows]
                for name in queues
            }
            errors = reader.stats().errors
            writer_errors = writer.stats().errors

        print(
            f"\nfailover {old.port} -> {new_port}: Redis hits again "
            f"{served_again if served_again is None else round(served_again, 2)} "
            f"s after the kill; reads {len(read_errors)} "
            f"caller errors; invalidations {invalidations[True]} True, "
            f"{invalidations[False]} False (queued); stale after quiet "
            f"{len(stale)}; write-behind acknowledged/lost: default "
            f"{len(acked['default'])}/{len(lost['default'])} "
            f"(refused {refused['default']}), replicas=1 "
            f"{len(acked['strict'])}/{len(lost['strict'])} "
            f"(refused {refused['strict']}); reader errors {errors}; "
            f"writer errors {writer_errors}"
        )
        assert read_errors == []
        assert stale == []
        assert lost["strict"] == []
        assert served_again is not None
        assert served_again < TRAFFIC - KILL_AT
        assert invalidations[True] > 0
        assert acked["strict"]
        assert new_port != old.port
