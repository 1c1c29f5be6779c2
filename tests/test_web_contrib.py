"""freshcache.contrib.fastapi (and Starlette) and freshcache.contrib.flask:
lifespans and extensions, cached responses, ETag / 304, and a write in one
process refreshing another worker's cached response (real Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest

from freshcache import AsyncCache

try:
    from tests import web_worker
except ImportError:  # tests/ is not a package
    import web_worker  # type: ignore[no-redef]

EXAMPLES = Path(__file__).parent.parent / "examples"
fastapi = pytest.importorskip("fastapi")
from fastapi import Depends, FastAPI, HTTPException, Request  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from freshcache.contrib.fastapi import cached, get_cache, lifespan  # noqa: E402


@pytest.fixture
def cache(redis_url: str, key_prefix: str, redis_cleanup: None) -> AsyncCache:
    return AsyncCache(redis_url, prefix=key_prefix, timeout=1.0)


def _app(cache: AsyncCache, calls: list[str]) -> FastAPI:
    app = FastAPI(lifespan=lifespan(cache))

    @app.get("/items/{item_id}")
    @cached(60, query=["page"], headers=["Accept-Language"], tags=["item:{item_id}"])
    async def item(item_id: int, page: int = 1, other: str = "") -> dict[str, Any]:
        calls.append(f"{item_id}:{page}:{other}")
        return {"id": item_id, "page": page, "n": len(calls)}

    @app.get("/status/{code}")
    @cached(60)
    async def status(code: int) -> Response:
        calls.append(f"status:{code}")
        if code == 404:
            raise HTTPException(404)
        return PlainTextResponse(str(len(calls)), status_code=code)

    @app.get("/cookie")
    @cached(60)
    async def cookie() -> Response:
        calls.append("cookie")
        response = PlainTextResponse(str(len(calls)))
        response.set_cookie("session", "s")
        return response

    @app.get("/private")
    @cached(60, cache_control=None)
    async def private() -> Response:
        calls.append("private")
        return PlainTextResponse(
            str(len(calls)), headers={"Cache-Control": "private, max-age=5"}
        )

    @app.get("/sync/{n}")
    @cached(60)
    def sync(n: int, request: Request) -> dict[str, Any]:
        calls.append(f"sync:{request.url.path}")
        return {"n": n}

    @app.get("/loads")
    async def loads(cache: Annotated[AsyncCache, Depends(get_cache)]) -> dict[str, int]:
        return {"loads": cache.stats().loads}

    return app


def test_a_cached_endpoint_runs_once_and_answers_304(cache: AsyncCache) -> None:
    calls: list[str] = []
    with TestClient(_app(cache, calls)) as client:
        first = client.get("/items/7")
        second = client.get("/items/7")
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json() == {"id": 7, "page": 1, "n": 1}
        assert calls == ["7:1:"]
        etag = first.headers["etag"]
        assert etag == second.headers["etag"]
        assert etag.startswith('"')
        assert len(etag) == 34
        assert first.headers["cache-control"] == "no-cache"
        assert first.headers["vary"] == "Accept-Language"
        assert first.headers["content-type"] == "application/json"
        not_modified = client.get("/items/7", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        listed = client.get("/items/7", headers={"If-None-Match": f'"x", W/{etag}'})
        assert listed.status_code == 304
        other = client.get("/items/7", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200
        assert other.json()["n"] == 1
        assert client.get("/loads").json() == {"loads": 1}


def test_the_key_holds_the_path_and_chosen_parameters_only(cache: AsyncCache) -> None:
    calls: list[str] = []
    with TestClient(_app(cache, calls)) as client:
        assert client.get("/items/7?page=2").json()["n"] == 1
        assert client.get("/items/7?page=2&other=x").json()["n"] == 1  # not chosen
        assert client.get("/items/7?page=3").json()["n"] == 2
        assert client.get("/items/8?page=2").json()["n"] == 3
        fr = {"Accept-Language": "fr"}
        assert client.get("/items/7?page=2", headers=fr).json()["n"] == 4
        assert client.get("/items/7?page=2", headers=fr).json()["n"] == 4
        assert client.head("/items/7?page=2").status_code in (200, 405)


def test_non_200_cookies_and_private_responses_are_never_stored(
    cache: AsyncCache,
) -> None:
    calls: list[str] = []
    with TestClient(_app(cache, calls)) as client:
        for path in ("/status/404", "/status/201", "/cookie", "/private"):
            client.get(path)
            client.get(path)
        assert len(calls) == 8, calls
        reply = client.get("/private")
        assert reply.headers["cache-control"] == "private, max-age=5"
        assert "etag" not in reply.headers
        assert "session=s" in client.get("/cookie").headers["set-cookie"]
        stored = client.get("/status/200")
        assert stored.status_code == 200
        assert stored.text == "11"
        assert client.get("/status/200").text == "11"  # a 200 is stored


def test_tags_from_path_parameters_invalidate(cache: AsyncCache) -> None:
    calls: list[str] = []
    with TestClient(_app(cache, calls)) as client:
        assert client.get("/items/7").json()["n"] == 1
        assert client.get("/items/8").json()["n"] == 2
        assert client.portal is not None
        client.portal.call(cache.invalidate_tags, "item:7")
        assert client.get("/items/7").json()["n"] == 3
        assert client.get("/items/8").json()["n"] == 2


def test_sync_endpoints_and_a_named_request(cache: AsyncCache) -> None:
    calls: list[str] = []
    with TestClient(_app(cache, calls)) as client:
        assert client.get("/sync/3").json() == {"n": 3}
        assert client.get("/sync/3").json() == {"n": 3}
    assert calls == ["sync:/sync/3"]


def test_a_plain_starlette_endpoint(cache: AsyncCache) -> None:
    calls: list[str] = []

    @cached(60, cache=cache, tags=["page:{name}"])
    async def page(request: Request) -> Response:
        calls.append(request.path_params["name"])
        return PlainTextResponse(f"page {request.path_params['name']}")

    app = Starlette(routes=[Route("/pages/{name}", page)], lifespan=lifespan(cache))
    with TestClient(app) as client:
        first = client.get("/pages/a")
        assert client.get("/pages/a").text == first.text == "page a"
        assert (
            client.get(
                "/pages/a", headers={"If-None-Match": first.headers["etag"]}
            ).status_code
            == 304
        )
    assert calls == ["a"]


async def test_concurrent_identical_requests_run_the_endpoint_once(
    cache: AsyncCache,
) -> None:
    import asyncio

    import httpx2

    calls: list[int] = []
    gate = asyncio.Event()
    app = FastAPI()

    @app.get("/slow/{n}")
    @cached(60, cache=cache)
    async def slow(n: int) -> dict[str, int]:
        calls.append(n)
        await gate.wait()
        return {"n": n}

    async def release() -> None:
        for _ in range(50):  # let the other requests reach the cache
            await asyncio.sleep(0)
        gate.set()

    transport = httpx2.ASGITransport(app=app)
    async with (
        cache,
        httpx2.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        replies = await asyncio.gather(
            *(client.get("/slow/1") for _ in range(20)), release()
        )
    bodies = {r.content for r in replies[:20]}
    assert bodies == {b'{"n":1}'}
    assert calls == [1]  # a late request is a hit: the count holds either way


def test_get_cache_without_the_lifespan_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/")
    async def root(cache: Annotated[AsyncCache, Depends(get_cache)]) -> None:
        return None

    with TestClient(app) as client, pytest.raises(RuntimeError, match="lifespan"):
        client.get("/")


def test_options_are_checked() -> None:
    with pytest.raises(TypeError):
        cached(60, query="page")
    with pytest.raises(TypeError):
        cached(60, tags="item:{id}")


# -- two worker processes: a write in one refreshes the other's response ----


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


def test_a_commit_in_one_process_refreshes_another_workers_response(
    redis_url: str, key_prefix: str, database_url: str, redis_cleanup: None
) -> None:
    args = (redis_url, database_url, key_prefix)
    with web_worker.running("fastapi_app.py", args) as get:
        web_worker.a_commit_refreshes_the_worker(
            get, "fastapi_app.py", redis_url, key_prefix, database_url
        )


def test_the_fastapi_example_runs(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "fastapi_app.py"), redis_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "revalidated: 304 b''" in result.stdout
    assert "after the write: 200 {'id': 1, 'name': 'kettle', 'price': 2200" in (
        result.stdout
    )


def test_import_freshcache_imports_no_web_framework() -> None:
    code = (
        "import sys, freshcache\n"
        "names = ('fastapi', 'starlette', 'flask', 'werkzeug', 'httpx')\n"
        "loaded = [m for m in sys.modules if m.startswith(names)]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
