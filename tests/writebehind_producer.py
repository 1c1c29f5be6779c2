"""A write-behind producer process for the crash test.

``python tests/writebehind_producer.py URL PREFIX NAME ID KEYS WRITES LOG``:
writes ``WRITES`` distinct values ``{"p": ID, "i": i}`` to random keys among
``k0``..``k{KEYS-1}`` and logs, one line each, flushed at once:

* ``A <key> <value json>`` before each attempt;
* ``K <key> <version> <value json>`` once ``put`` acknowledged it;
* ``F <key> <error>`` when ``put`` raised (the write may or may not exist).
"""

from __future__ import annotations

import json
import random
import sys
import time

from freshcache import Cache, StoreError


def main() -> int:
    url, prefix, name, ident, keys, writes, path = sys.argv[1:8]
    rng = random.Random(int(ident))
    cache = Cache(url, prefix=prefix, timeout=0.5)
    wb = cache.write_behind(name=name, partitions=4, timeout=2.0)
    with open(path, "w", encoding="utf-8") as log:
        for i in range(int(writes)):
            key = f"k{rng.randrange(int(keys))}"
            value = json.dumps({"p": int(ident), "i": i}, separators=(",", ":"))
            log.write(f"A {key} {value}\n")
            log.flush()
            try:
                version = wb.put(key, json.loads(value))
            except StoreError as exc:
                log.write(f"F {key} {type(exc).__name__}\n")
                log.flush()
                time.sleep(0.02)
                continue
            log.write(f"K {key} {version} {value}\n")
            log.flush()
    wb.close(flush=False)  # the test drains the queue itself
    cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
