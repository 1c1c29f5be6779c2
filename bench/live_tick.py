"""``python -m bench.live_tick [--redis-url URL]``: what one ``publish_stats``
tick costs (build the snapshot, one SET, one HGETALL of the inspect
requests): wall and CPU time per tick, and the snapshot's size, for a cache
whose stats span 20 namespaces. The hit path runs none of it."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from freshcache import L1, Cache
from freshcache._inproc.live import encode_snapshot

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_tick")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    cache = Cache(
        args.redis_url, prefix=f"bench-tick-{uuid.uuid4().hex[:6]}", l1=L1(),
        publish_stats=60, timeout=1.0,
    )  # fmt: skip
    try:
        for ns in range(20):
            for i in range(5):
                cache.get_or_load(f"ns{ns}:{i}", lambda i=i: i)
        publisher = cache.engine.publisher
        assert publisher is not None
        publisher.tick()
        wall, cpu = [], []
        for _ in range(args.ticks):
            t0, c0 = time.perf_counter(), time.process_time()
            publisher.tick()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        size = len(encode_snapshot(publisher.snapshot()))
        errors = cache.stats().errors.get("live_publish", 0)
        print(
            f"{args.ticks} ticks: median {statistics.median(wall) * 1e6:.0f} us "
            f"wall, mean {statistics.mean(cpu) * 1e6:.0f} us CPU per tick; "
            f"snapshot {size:,} bytes (20 namespaces); live_publish errors {errors}"
        )
    finally:
        cache.clear()
        cache.close()


if __name__ == "__main__":
    main()
