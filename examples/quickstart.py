"""The README's sync quickstart, runnable: python examples/quickstart.py [REDIS_URL]."""

from __future__ import annotations

import sys
from datetime import timedelta

from freshcache import MISS, Cache

USERS = {1: {"id": 1, "name": "Grace"}}  # stands in for the database
queries: list[int] = []


def fetch_user(user_id: int) -> dict[str, object]:
    queries.append(user_id)
    return dict(USERS[user_id])


def main(url: str | None) -> None:
    with Cache(url, prefix="quickstart", version="v3", ttl=600) as cache:

        @cache.cached("user:{user_id}", ttl=timedelta(hours=1))
        def get_user(user_id: int) -> dict[str, object]:
            return fetch_user(user_id)

        assert get_user(1) == {"id": 1, "name": "Grace"}  # a miss: one query
        assert get_user(1) == {"id": 1, "name": "Grace"}  # a hit
        assert queries == [1]

        USERS[1]["name"] = "Ada"  # commit a change, then invalidate
        get_user.invalidate(1)
        assert get_user(1)["name"] == "Ada"

        assert cache.get("user:2") is MISS
        cache.set("config", {"flags": ("a", "b")}, ttl=None)
        assert cache.get("config") == {"flags": ("a", "b")}  # the tuple stays a tuple
        assert cache.key("search", "books", page=2) == "search:books:page=2"
        stats = cache.stats()
        print(f"hit rate {stats.hit_rate:.0%}, loads {stats.loads}, queries {queries}")
        cache.clear()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
