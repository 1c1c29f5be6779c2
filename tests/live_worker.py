"""A workload process for the live-view tests: a cache with an L1 that
publishes its stats every 0.2 s, and reads ``user:1`` (so it is in its L1).

``python tests/live_worker.py URL PREFIX ROLE``; ROLE ``lease``: also holds
the fill lease of ``slow:1`` (its loader waits) until stdin closes;
``writes``: also puts ``wb:1`` through write-behind queue ``q`` (no worker
runs, so the key's pending mark stays). Prints ``ready <process id>`` once
set up, then runs until stdin closes.
"""

from __future__ import annotations

import sys
import threading
import time

from freshcache import L1, Cache


def main() -> None:
    url, prefix, role = sys.argv[1:4]
    # A long lease: a lease lives a few times the process's recent loads (at
    # most lease_ttl); taken before any load here, it lives lease_ttl,
    # renewed while the loader runs.
    cache = Cache(
        url, prefix=prefix, l1=L1(), publish_stats=0.2, timeout=1.0, lease_ttl=600
    )
    done = threading.Event()
    holding = threading.Event()
    loader: threading.Thread | None = None
    if role == "lease":

        def slow() -> str:
            holding.set()
            done.wait()
            return "slow-value"

        loader = threading.Thread(
            target=lambda: cache.get_or_load("slow:1", slow), daemon=True
        )
        loader.start()
        holding.wait()
    elif role == "writes":
        wb = cache.write_behind(name="q")
        wb.put("wb:1", "queued-value")
    cache.get_or_load("user:1", lambda: {"name": "secret-value-1"}, tags=["team:7"])
    deadline = time.monotonic() + 30
    while cache.stats().l1.hits < 1:  # until L1 serves (its watermark is in)
        assert time.monotonic() < deadline, cache.stats()
        assert cache.get("user:1") == {"name": "secret-value-1"}
        time.sleep(0.01)
    print("ready", cache.engine.process_name(), flush=True)
    sys.stdin.read()  # until the test closes it
    done.set()
    if loader is not None:
        loader.join(5)
    cache.close()


if __name__ == "__main__":
    main()
