"""Which requests share a cached response in the FastAPI/Starlette and Flask
integrations, and which do not: what the key normalises (docs/web.md,
"Which requests share a response").

Each case requests URL ``a`` then URL ``b`` of one endpoint under
``@cached(query=["tag", "q"], headers=["Accept-Language"])`` and counts the
endpoint's runs: 1 when the two share a key, 2 when they do not. The key
does not depend on where the cache keeps its entries: an embedded cache
serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from freshcache import AsyncCache, Cache

pytest.importorskip("fastapi")
pytest.importorskip("flask")
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from flask import Flask

from freshcache.contrib import fastapi as fc_fastapi
from freshcache.contrib.flask import FreshCache

Headers = dict[str, str]
Get = Callable[[str, Headers], Any]
ACCEPT = "Accept-Language"
STARLETTE_ONLY = {"fastapi": True, "flask": False}
FLASK_ONLY = {"fastapi": False, "flask": True}

# (why, url a, headers a, url b, headers b, same key: for both or per framework)
CASES: list[tuple[str, str, Headers, str, Headers, bool | dict[str, bool]]] = [
    ("order of chosen names", "/p/1?tag=x&q=1", {}, "/p/1?q=1&tag=x", {}, True),
    ("other parameters", "/p/1?tag=x", {}, "/p/1?tag=x&other=1&page=2", {}, True),
    ("repeated: order kept", "/p/1?tag=x&tag=y", {}, "/p/1?tag=y&tag=x", {}, False),
    ("repeated: count kept", "/p/1?tag=x", {}, "/p/1?tag=x&tag=x", {}, False),
    ("absent vs empty", "/p/1", {}, "/p/1?tag=", {}, False),
    ("empty vs bare name", "/p/1?tag=", {}, "/p/1?tag", {}, True),
    ("%20 and +", "/p/1?q=a%20b", {}, "/p/1?q=a+b", {}, True),
    ("escaped letter", "/p/1?q=A", {}, "/p/1?q=%41", {}, True),
    ("escaped name", "/p/1?t%61g=x", {}, "/p/1?tag=x", {}, True),
    ("escaped %", "/p/1?q=%25ZZ", {}, "/p/1?q=%ZZ", {}, True),
    # Not UTF-8 once unescaped: Starlette decodes it as U+FFFD (two such
    # bytes are one key); Werkzeug keeps the escape as text (%FF is %25FF).
    ("invalid UTF-8", "/p/1?q=%FF", {}, "/p/1?q=%FE", {}, STARLETTE_ONLY),
    ("invalid UTF-8 as text", "/p/1?q=%FF", {}, "/p/1?q=%25FF", {}, FLASK_ONLY),
    ("value case", "/p/1?q=usd", {}, "/p/1?q=USD", {}, False),
    ("name case", "/p/1?Tag=x", {}, "/p/1", {}, True),
    ("values are text", "/p/1?q=1", {}, "/p/1?q=01", {}, False),
    ("; separates nothing", "/p/1?tag=x;q=1", {}, "/p/1?tag=x&q=1", {}, False),
    ("escaped path", "/p/1", {}, "/p/%31", {}, True),
    ("path case", "/p/a", {}, "/p/A", {}, False),
    ("header name case", "/p/1", {ACCEPT: "fr"}, "/p/1", {ACCEPT.lower(): "fr"}, True),
    ("header value case", "/p/1", {ACCEPT: "fr"}, "/p/1", {ACCEPT: "FR"}, False),
    ("header spaces", "/p/1", {ACCEPT: "fr, en"}, "/p/1", {ACCEPT: "fr,en"}, False),
    ("header absent vs empty", "/p/1", {}, "/p/1", {ACCEPT: ""}, False),
    ("other headers", "/p/1", {}, "/p/1", {"Accept": "text/html"}, True),
]  # fmt: skip


def _fastapi(calls: list[str]) -> tuple[FastAPI, AsyncCache]:
    cache = AsyncCache()
    app = FastAPI(lifespan=fc_fastapi.lifespan(cache))

    @app.get("/p/{item}")
    @fc_fastapi.cached(60, query=["tag", "q"], headers=[ACCEPT])
    async def page(item: str, request: Request) -> dict[str, Any]:
        calls.append(str(request.url))
        return {"runs": len(calls)}

    return app, cache


def _flask(calls: list[str], cache: Cache) -> Flask:
    ext = FreshCache(cache=cache)
    app = Flask(__name__)
    ext.init_app(app)

    @app.get("/p/<item>")
    @ext.cached(60, query=["tag", "q"], headers=[ACCEPT])
    def page(item: str) -> dict[str, Any]:
        calls.append(item)
        return {"runs": len(calls)}

    return app


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
@pytest.mark.parametrize(
    ("why", "url_a", "headers_a", "url_b", "headers_b", "same"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_which_requests_share_a_key(
    framework: str,
    why: str,
    url_a: str,
    headers_a: Headers,
    url_b: str,
    headers_b: Headers,
    same: bool | dict[str, bool],
) -> None:
    if isinstance(same, dict):
        same = same[framework]
    calls: list[str] = []
    if framework == "fastapi":
        app, _ = _fastapi(calls)
        with TestClient(app) as client:
            first = client.get(url_a, headers=headers_a)
            second = client.get(url_b, headers=headers_b)
    else:
        with Cache() as cache:
            flask_client = _flask(calls, cache).test_client()
            first = flask_client.get(url_a, headers=headers_a)
            second = flask_client.get(url_b, headers=headers_b)
    assert first.status_code == second.status_code == 200, why
    assert len(calls) == (1 if same else 2), (why, calls)
