"""freshcache.contrib.flask: the extension, cached views, ETag / 304, and a
write in one process refreshing another worker's cached response (real
Redis)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freshcache import Cache, CacheClosedError

try:
    from tests import web_worker
except ImportError:  # tests/ is not a package
    import web_worker  # type: ignore[no-redef]

flask = pytest.importorskip("flask")
from flask import Flask, abort, make_response, request  # noqa: E402

from freshcache.contrib.flask import FreshCache  # noqa: E402

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def app(redis_url: str, key_prefix: str, redis_cleanup: None) -> Iterator[Any]:
    ext = FreshCache()
    app = Flask(__name__)
    app.config["FRESHCACHE_URL"] = redis_url
    app.config["FRESHCACHE_OPTIONS"] = {"prefix": key_prefix, "timeout": 1.0}
    ext.init_app(app)
    calls: list[str] = []
    app.config["calls"] = calls

    @app.get("/items/<int:item_id>")
    @ext.cached(
        60, query=["page"], headers=["Accept-Language"], tags=["item:{item_id}"]
    )
    def item(item_id: int) -> dict[str, Any]:
        calls.append(f"{item_id}")
        return {"id": item_id, "page": request.args.get("page"), "n": len(calls)}

    @app.get("/status/<int:code>")
    @ext.cached(60)
    def status(code: int) -> Any:
        calls.append(f"status:{code}")
        if code == 404:
            abort(404)
        return str(len(calls)), code

    @app.get("/cookie")
    @ext.cached(60)
    def cookie() -> Any:
        calls.append("cookie")
        response = make_response(str(len(calls)))
        response.set_cookie("session", "s")
        return response

    @app.get("/private")
    @ext.cached(60, cache_control=None)
    def private() -> Any:
        calls.append("private")
        return str(len(calls)), 200, {"Cache-Control": "private, max-age=5"}

    @app.get("/async")
    @ext.cached(60)
    async def asynchronous() -> str:
        calls.append("async")
        return "async"

    yield app, ext
    ext.teardown(app)


def test_a_cached_view_runs_once_and_answers_304(app: Any) -> None:
    flask_app, ext = app
    calls = flask_app.config["calls"]
    client = flask_app.test_client()
    first = client.get("/items/7")
    second = client.get("/items/7")
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json() == {"id": 7, "page": None, "n": 1}
    assert calls == ["7"]
    etag = first.headers["ETag"]
    assert etag == second.headers["ETag"]
    assert etag.startswith('"')
    assert len(etag) == 34
    assert first.headers["Cache-Control"] == "no-cache"
    assert first.headers["Vary"] == "Accept-Language"
    assert first.headers["Content-Type"] == "application/json"
    not_modified = client.get("/items/7", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.data == b""
    assert not_modified.headers["ETag"] == etag
    other = client.get("/items/7", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    with flask_app.app_context():
        assert ext.cache.stats().loads == 1


def test_the_key_holds_the_path_and_chosen_parameters_only(app: Any) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    assert client.get("/items/7?page=2").get_json()["n"] == 1
    assert client.get("/items/7?page=2&other=x").get_json()["n"] == 1
    assert client.get("/items/7?page=3").get_json()["n"] == 2
    assert client.get("/items/8?page=2").get_json()["n"] == 3
    fr = {"Accept-Language": "fr"}
    assert client.get("/items/7?page=2", headers=fr).get_json()["n"] == 4
    assert client.get("/items/7?page=2", headers=fr).get_json()["n"] == 4


def test_non_200_cookies_and_private_responses_are_never_stored(app: Any) -> None:
    flask_app, _ = app
    calls = flask_app.config["calls"]
    client = flask_app.test_client()
    for path in ("/status/404", "/status/201", "/cookie", "/private"):
        client.get(path)
        client.get(path)
    assert len(calls) == 8, calls
    reply = client.get("/private")
    assert reply.headers["Cache-Control"] == "private, max-age=5"
    assert "ETag" not in reply.headers
    assert "session=s" in client.get("/cookie").headers["Set-Cookie"]
    assert client.get("/status/200").text == "11"
    assert client.get("/status/200").text == "11"  # a 200 is stored


def test_tags_invalidate(app: Any) -> None:
    flask_app, ext = app
    client = flask_app.test_client()
    assert client.get("/items/7").get_json()["n"] == 1
    assert client.get("/items/8").get_json()["n"] == 2
    with flask_app.app_context():
        ext.cache.invalidate_tags("item:7")
    assert client.get("/items/7").get_json()["n"] == 3
    assert client.get("/items/8").get_json()["n"] == 2


def test_async_views(app: Any) -> None:
    pytest.importorskip("asgiref")  # Flask runs async views with it
    flask_app, _ = app
    client = flask_app.test_client()
    assert client.get("/async").text == client.get("/async").text == "async"
    assert flask_app.config["calls"].count("async") == 1


def test_concurrent_identical_requests_run_the_view_once(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    import threading

    gate = threading.Event()
    calls: list[int] = []
    app = Flask(__name__)
    app.config["FRESHCACHE_URL"] = redis_url
    app.config["FRESHCACHE_OPTIONS"] = {"prefix": key_prefix, "timeout": 1.0}
    ext = FreshCache(app)

    @app.get("/slow")
    @ext.cached(60)
    def slow() -> str:
        calls.append(1)
        gate.wait(60)
        return "done"

    bodies: list[bytes] = []

    def get() -> None:
        bodies.append(app.test_client().get("/slow").data)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let them reach the cache; a late one is a hit anyway
    gate.set()
    for thread in threads:
        thread.join(60)
    ext.teardown(app)
    assert bodies == [b"done"] * 8
    assert calls == [1]


def test_teardown_closes_a_built_cache_and_keeps_a_given_one(
    redis_url: str, key_prefix: str
) -> None:
    built = Flask(__name__)
    built.config["FRESHCACHE_OPTIONS"] = {"prefix": key_prefix, "timeout": 1.0}
    ext = FreshCache(built)
    cache = built.extensions["freshcache"]
    assert cache.set("k", 1)
    ext.teardown(built)
    with pytest.raises(CacheClosedError):
        cache.get("k")
    with Cache() as mine:
        given = Flask(__name__)
        other = FreshCache(given, cache=mine)
        other.teardown(given)
        assert mine.set("k", 1)
    view = FreshCache().cached(60)(lambda: "x")
    with (
        Flask(__name__).test_request_context("/"),
        pytest.raises(RuntimeError, match="init_app"),
    ):
        view()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


def test_a_commit_in_one_process_refreshes_another_workers_response(
    redis_url: str, key_prefix: str, database_url: str, redis_cleanup: None
) -> None:
    args = (redis_url, database_url, key_prefix)
    with web_worker.running("flask_app.py", args) as get:
        web_worker.a_commit_refreshes_the_worker(
            get, "flask_app.py", redis_url, key_prefix, database_url
        )


def test_the_flask_example_runs(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "flask_app.py"), redis_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "revalidated: 304 b''" in result.stdout
    assert "'price': 2200" in result.stdout.split("after the write:")[1]
