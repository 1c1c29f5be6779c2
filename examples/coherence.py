"""Coherent caching across processes: python examples/coherence.py [REDIS_URL].

Two caches stand for two processes, each with an in-process L1 in front of
Redis. Everything one invalidates, the other stops serving.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from freshcache import L1, MISS, Cache

TEAMS = {7: [1, 2]}  # stands for the database
received: list[Any] = []


def wait_for(check: Any) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "the other process never caught up"
        time.sleep(0.005)


def main(url: str) -> None:
    # timeout=1.0: generous, for a shared demo machine (the default is 50 ms)
    web = Cache(url, prefix="example", l1=L1(max_entries=10_000, ttl=30), timeout=1.0)
    worker = Cache(url, prefix="example", l1=L1(), timeout=1.0)
    try:
        for cache in (web, worker):  # start both bus listeners
            cache.get("warm:up")
        wait_for(
            lambda: all(c.stats().counts.get("bus_connect") for c in (web, worker))
        )

        # Invalidation reaches every tier of every process.
        web.set("user:1", {"name": "Ada"})
        assert worker.get("user:1") == {"name": "Ada"}  # now in worker's L1 too
        web.invalidate("user:1")
        wait_for(lambda: worker.get("user:1") is MISS)

        # Tags: a team's member list depends on each member.
        @web.cached(
            "team_members:{team_id}",
            tags=["team:{team_id}", lambda members: [f"user:{m}" for m in members]],
        )
        def team_members(team_id: int) -> list[int]:
            return TEAMS[team_id]

        assert team_members(7) == [1, 2]
        worker.invalidate_tags("user:2")  # user 2 changed: every dependent goes
        wait_for(lambda: web.get("team_members:7") is MISS)

        # Namespace versions: orphan every search result at once.
        web.set("search:books:page=1", ["Dune"])
        web.bump("search")
        wait_for(lambda: worker.get("search:books:page=1") is MISS)

        # Events: declare in one place what an update invalidates.
        for cache in (web, worker):

            @cache.events.on("user_updated")
            def on_user_updated(event: dict[str, int], cache: Cache = cache) -> None:
                cache.invalidate_tags(f"user:{event['user_id']}")
                received.append(event["user_id"])

        web.events.publish("user_updated", {"user_id": 1})
        wait_for(lambda: len(received) == 2)  # ran in both "processes"
        print("coherent:", web.stats().counts.get("invalidations_sent"), "sent")
    finally:
        web.clear()
        web.close()
        worker.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0")
