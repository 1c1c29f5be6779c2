"""One ``AsyncCache`` over several event loops, one after the other.

The quickstart makes the cache at module level; scripts call
``asyncio.run`` twice, test clients open the app twice, job runners start a
loop per job. Connections, tasks and futures belong to the loop that made
them: before, the second loop failed with "Event loop is closed". Now what
is loop-bound is rebuilt on the new loop, closed when its loop ends the way
``asyncio.run`` ends one, and using one cache from two running loops at
once is a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from freshcache import L1, AsyncCache, Cache, CacheClosedError

TIERS = ["embedded", "redis", "l1+redis"]


@contextlib.contextmanager
def _no_resource_warnings() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def _cache(tiers: str, url: str, prefix: str) -> AsyncCache:
    return AsyncCache(
        None if tiers == "embedded" else url,
        prefix=prefix,
        l1=None if tiers == "redis" else L1(),
    )


@pytest.mark.parametrize("tiers", TIERS)
def test_asyncio_run_twice_over_one_cache(
    tiers: str, request: pytest.FixtureRequest, key_prefix: str
) -> None:
    url = "" if tiers == "embedded" else request.getfixturevalue("redis_url")
    cache = _cache(tiers, url, key_prefix)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0)
        return "loaded"

    async def job(value: str) -> tuple[object, object, object]:
        await cache.set("k", value)
        got = await cache.get("k")
        loaded = await cache.get_or_load("j", load)
        many = await cache.get_many(["k", "j"])
        return got, loaded, many

    with _no_resource_warnings():
        assert asyncio.run(job("one")) == ("one", "loaded", {"k": "one", "j": "loaded"})
        if tiers != "embedded":  # another process changes the key between runs
            with Cache(url, prefix=key_prefix) as other:
                other.set("k", "changed")
            assert asyncio.run(cache.get("k")) == "changed"
        assert asyncio.run(job("two")) == ("two", "loaded", {"k": "two", "j": "loaded"})
        assert loads == 1
        asyncio.run(cache.aclose())


@pytest.mark.parametrize("tiers", TIERS)
def test_closing_at_the_end_of_a_run_and_entering_again(
    tiers: str, request: pytest.FixtureRequest, key_prefix: str
) -> None:
    """An app whose lifespan runs ``async with cache:`` can start twice;
    between its runs, the closed cache refuses calls."""
    url = "" if tiers == "embedded" else request.getfixturevalue("redis_url")
    cache = _cache(tiers, url, key_prefix)

    async def lifespan(value: str) -> object:
        async with cache:
            await cache.set("k", value)
            return await cache.get("k")

    with _no_resource_warnings():
        assert asyncio.run(lifespan("one")) == "one"
        with pytest.raises(CacheClosedError):
            asyncio.run(cache.get("k"))
        assert asyncio.run(lifespan("two")) == "two"


@pytest.mark.redis
def test_a_loop_per_job_leaves_no_connections_behind(
    redis_url: str, key_prefix: str
) -> None:
    name = f"loops-{key_prefix}"
    cache = AsyncCache(f"{redis_url}?client_name={name}", prefix=key_prefix, l1=L1())
    link = redis.Redis.from_url(redis_url)

    def connections() -> int:
        return sum(1 for c in link.client_list() if c.get("name") == name)

    async def job(n: int) -> None:
        await cache.set(f"k{n}", n)
        assert await cache.get(f"k{n}") == n
        await cache.invalidate(f"k{n}")

    try:
        with _no_resource_warnings():
            for n in range(20):
                asyncio.run(job(n))
            assert connections() == 0  # each loop closed its own on the way out
            asyncio.run(cache.aclose())
    finally:
        link.close()


@pytest.mark.redis
def test_two_running_loops_at_once_is_a_clear_error(
    redis_url: str, key_prefix: str
) -> None:
    cache = AsyncCache(redis_url, prefix=key_prefix, l1=L1())
    using = threading.Event()
    stop = threading.Event()

    async def hold() -> None:
        await cache.get("k")
        using.set()
        await asyncio.to_thread(stop.wait)  # the loop keeps running meanwhile

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert using.wait(10)
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(cache.get("k"))
    finally:
        stop.set()
        holder.join(10)
    assert asyncio.run(cache.get("k", "none")) == "none"  # free again
    asyncio.run(cache.aclose())


@pytest.mark.redis
def test_a_fastapi_test_client_opened_twice(redis_url: str, key_prefix: str) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    cache = AsyncCache(redis_url, prefix=key_prefix, l1=L1())  # module level

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with cache:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{uid}")
    async def user(uid: int) -> dict[str, object]:
        async def load() -> dict[str, object]:
            return {"id": uid, "name": f"user {uid}"}

        value: dict[str, object] = await cache.get_or_load(f"user:{uid}", load)
        return value

    @app.post("/users/{uid}/invalidate")
    async def invalidate(uid: int) -> dict[str, bool]:
        return {"landed": await cache.invalidate(f"user:{uid}")}

    with _no_resource_warnings():
        for _ in range(2):  # each `with` runs the app on a loop of its own
            with TestClient(app) as client:
                assert client.get("/users/1").json() == {"id": 1, "name": "user 1"}
                assert client.get("/users/1").json() == {"id": 1, "name": "user 1"}
                assert client.post("/users/1/invalidate").json() == {"landed": True}


@pytest.mark.redis
def test_write_behind_over_two_loops(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """The queue's connections follow the cache's loop too."""
    cache = AsyncCache(redis_url, prefix=key_prefix, l1=L1())
    wb = cache.write_behind(name="loops")

    async def put(n: int) -> object:
        await wb.put(f"user:{n}", {"n": n})
        return await cache.get(f"user:{n}")

    with _no_resource_warnings():
        assert asyncio.run(put(1)) == {"n": 1}
        assert asyncio.run(put(2)) == {"n": 2}  # a second loop

        async def close() -> None:
            await wb.aclose(flush=False)  # no worker here
            await cache.aclose()

        asyncio.run(close())
