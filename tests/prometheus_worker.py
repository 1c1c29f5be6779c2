"""One worker of tests/test_prometheus.py's multi-process test.

Run as ``python -m tests.prometheus_worker REDIS_URL PREFIX INDEX`` with
``PROMETHEUS_MULTIPROC_DIR`` set: a scripted workload through a cache with
L1 over Redis, exported by ``instrument``; prints the cache's own counts as
JSON, then exits (the exporter's last copy runs at exit).
"""

from __future__ import annotations

import json
import sys

from freshcache import L1, Cache
from freshcache.contrib.prometheus import counter_samples, instrument


def main(redis_url: str, prefix: str, index: int) -> None:
    with Cache(redis_url, prefix=prefix, l1=L1(), timeout=1.0) as cache:
        instrument(cache, name="workers", interval=60.0)  # only the copy at exit

        @cache.cached("item:{n}")
        def item(n: int) -> int:
            return n

        for n in range(50 + 10 * index):  # misses (a load each), then hits
            item(n % 20)
            cache.get(f"other:{n % 7}")
        cache.get_many([f"item:{n}" for n in range(25)])
        totals = {
            f"{metric}|{','.join(labels)}": value
            for metric, labels, value in counter_samples(cache.stats())
        }
    print(json.dumps(totals))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
