"""The demo's foil: cache-aside as it is usually written (the seed's ``get_user``).

A read looks in this process's dict (an L1 with a TTL), then in Redis
(``GET``); on a miss it runs the ``SELECT``, then ``SET``s Redis and the dict.
A write commits, then ``DEL``s the user's key and its team's member list in
Redis and drops them from this process's dict. Nothing tells the other
processes' dicts, and nothing stops a reader that loaded before a write from
storing what it loaded after the write's ``DEL``: the two ways plain
cache-aside serves stale data. Without Redis, the dict is the whole cache.

Its Redis tier is a freshcache ``Cache`` with no L1, used only through
``get``, ``set`` and ``delete``: a plain ``GET``, an unconditional ``SET`` and a
``DEL`` (only freshcache's store and bus modules may import redis). It lives
under a prefix of its own, so its keys and bus messages never meet the ones
of the cache under test.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from freshcache import MISS, Cache, FreshcacheError
from freshcache.cli._demo_db import Database

PREFIX = "demo-naive"


class NaiveCache:
    """Cache-aside over a per-process dict and, with a URL, Redis."""

    def __init__(
        self,
        db: Database,
        redis: str | None,
        *,
        version: str,
        ttl: float,
        local_ttl: float | None,
    ) -> None:
        self._db = db
        self._local: dict[str, tuple[float, Any]] = {}
        self._remote: Cache | None = None
        if redis is not None:
            self._remote = Cache(redis, prefix=PREFIX, version=version, ttl=ttl)
        if self._remote is None:
            self._local_ttl = ttl  # the dict is the whole cache
        else:
            self._local_ttl = math.inf if local_ttl is None else local_ttl
        self.errors = 0

    def _read(self, key: str, load: Callable[[], Any]) -> Any:
        held = self._local.get(key)
        if held is not None and time.monotonic() < held[0]:
            return held[1]
        remote = self._remote
        value = MISS if remote is None else remote.get(key)
        if value is MISS:
            value = load()
            if remote is not None and not remote.set(key, value):
                self.errors += 1
        self._local[key] = (time.monotonic() + self._local_ttl, value)
        return value

    def get_user(self, user_id: int) -> dict[str, Any]:
        user: dict[str, Any] = self._read(
            f"user:{user_id}", lambda: self._db.fetch_user(user_id)
        )
        return user

    def team_members(self, team_id: int) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = self._read(
            f"team_members:{team_id}", lambda: self._db.fetch_team_members(team_id)
        )
        return members

    def updated(self, user_id: int, team_id: int) -> bool:
        """After the commit: drop the user and its team's member list."""
        keys = (f"user:{user_id}", f"team_members:{team_id}")
        ok = True
        if self._remote is not None:
            for key in keys:
                try:
                    self._remote.delete(key)
                except FreshcacheError:
                    ok = False
        for key in keys:
            self._local.pop(key, None)
        return ok

    def clear(self) -> None:
        if self._remote is not None:
            self._remote.clear()

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
