"""The README's async quickstart: python examples/quickstart_async.py [URL]."""

from __future__ import annotations

import asyncio
import dataclasses
import sys

from freshcache import AsyncCache


@dataclasses.dataclass
class User:
    id: int
    name: str


async def fetch_user(user_id: int) -> User:
    await asyncio.sleep(0)  # stands in for a database round trip
    return User(user_id, "Grace")


async def main(url: str | None) -> None:
    async with AsyncCache(url, prefix="quickstart", version="v3") as cache:

        @cache.cached("user:{user_id}")
        async def get_user(user_id: int) -> User:
            return await fetch_user(user_id)

        assert await get_user(1) == User(1, "Grace")
        user = await get_user(1)  # from Redis it is revived as a User
        assert type(user) is User
        await get_user.invalidate(1)
        team = await cache.get_or_load("team:7", lambda: {"id": 7})
        assert team == {"id": 7}
        print(f"hit rate {cache.stats().hit_rate:.0%}")
        await cache.clear()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
