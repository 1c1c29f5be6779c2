"""How many records freshcache logs while Redis is paused under load.

Starts its own redis-server (needs ``redis-server`` on PATH), runs 4 reader
threads through ``get_or_load`` on a cache with L1 (so the bus is in play
too), pauses Redis (SIGSTOP) for ``--pause`` seconds, resumes it, reads for
two more seconds, and prints the records per logger, level and message
template, with the number of failed and refused calls for scale::

    PYTHONPATH=src:. .venv/bin/python scripts/log_volume.py --pause 10
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from freshcache import L1, Cache
from tests.servers import own_redis_server


class Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen[(record.name, record.levelname, str(record.msg)[:60])] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause", type=float, default=10.0)
    args = parser.parse_args()
    count = Count()
    logger = logging.getLogger("freshcache")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(count)
    with own_redis_server() as server, Cache(server.url, l1=L1()) as cache:
        stop = threading.Event()

        def read() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                cache.get_or_load(f"k:{i % 50}", lambda: "row", ttl=0.2)
                time.sleep(0.002)

        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        time.sleep(2.0)
        server.stop()
        time.sleep(args.pause)
        server.cont()
        time.sleep(2.0)
        stop.set()
        for reader in readers:
            reader.join()
        errors = cache.stats().errors
    print(f"Redis paused {args.pause:g} s under 4 reader threads")
    print(
        f"failed calls: {errors.get('transient', 0)}, refused by the open "
        f"circuit: {errors.get('circuit_open', 0)}"
    )
    by_level: collections.Counter[str] = collections.Counter()
    for (name, level, msg), n in sorted(count.seen.items()):
        by_level[level] += n
        print(f"{n:6d}  {level:8s} {name:32s} {msg}")
    print("records by level:", dict(sorted(by_level.items())))


if __name__ == "__main__":
    main()
