"""A user's code, type-checked with ``mypy --strict`` by ``tests/test_typing.py``.

Each ``assert_type`` states what a user's type checker must infer from
freshcache's public API. It is never run, only checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from freshcache import MISS, AsyncCache, Cache


@dataclass
class User:
    id: int
    name: str


def load_user() -> User:
    return User(1, "ada")


async def fetch_user() -> User:
    return User(1, "ada")


def sync_user_code(cache: Cache) -> None:
    assert_type(cache.get_or_load("user:1", load_user), User)
    assert_type(cache.get_or_load("n", lambda: 3, ttl=60, tags=["t"]), int)
    user = cache.get("user:1", returns=User)
    if user is not MISS:
        assert_type(user, User)
    assert_type(cache.get("user:1", None, returns=User), User | None)

    @cache.cached("user:{user_id}", ttl=600)
    def get_user(user_id: int) -> User:
        return User(user_id, "ada")

    assert_type(get_user(1), User)
    assert_type(get_user.key(1), str)
    get_user.invalidate(1)


async def async_user_code(cache: AsyncCache) -> None:
    assert_type(await cache.get_or_load("user:1", fetch_user), User)
    assert_type(await cache.get_or_load("user:1", load_user), User)
    assert_type(await cache.get_or_load("n", lambda: 3), int)
    user = await cache.get("user:1", returns=User)
    if user is not MISS:
        assert_type(user, User)

    @cache.cached("user:{user_id}")
    async def get_user(user_id: int) -> User:
        return User(user_id, "ada")

    assert_type(await get_user(1), User)
    assert_type(get_user.key(1), str)
    await get_user.invalidate(1)
