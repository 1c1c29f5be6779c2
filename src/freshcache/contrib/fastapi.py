"""freshcache for FastAPI and Starlette: a lifespan that opens and closes an
``AsyncCache``, a dependency that hands it to endpoints, and ``@cached``
responses for GET endpoints (``pip install 'freshcache[fastapi]'``;
``docs/web.md``).

``import freshcache`` never imports Starlette; this module does.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "freshcache.contrib.fastapi needs Starlette (or FastAPI): "
        "pip install 'freshcache[fastapi]'"
    ) from exc

from freshcache import UNSET, AsyncCache
from freshcache.contrib._http import (
    NO_STORE_HEADERS,
    Stored,
    Uncacheable,
    cacheable,
    entity_tag,
    key_parts,
    matches,
    names,
    tags_for,
)

__all__ = ["cached", "get_cache", "lifespan"]

STATE = "freshcache"
_SAFE = frozenset({"GET", "HEAD"})
_REQUEST = "_freshcache_request"

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def lifespan(cache: AsyncCache, inner: Lifespan | None = None) -> Lifespan:
    """A lifespan for ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)``:
    opens ``cache`` (``async with cache``) before the app serves, puts it in
    ``app.state.freshcache`` (for ``get_cache`` and ``@cached``), runs
    ``inner`` (your own lifespan) inside it, and closes the cache at
    shutdown. An app started again reopens it."""

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        async with cache:
            setattr(app.state, STATE, cache)
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state

    return run


def get_cache(request: Request) -> AsyncCache:
    """The app's cache, for ``Depends(get_cache)`` (set by ``lifespan``)."""
    cache = getattr(request.app.state, STATE, None)
    if not isinstance(cache, AsyncCache):
        raise RuntimeError(
            "no AsyncCache in app.state.freshcache: give the app "
            "lifespan=freshcache.contrib.fastapi.lifespan(cache)"
        )
    return cache


def _frozen(response: Response) -> Stored:
    body = bytes(response.body)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in NO_STORE_HEADERS
    ]
    return response.status_code, headers, body, entity_tag(body)


def _reply(
    stored: Stored, request: Request, cache_control: str | None, vary: str | None
) -> Response:
    status, headers, body, etag = stored
    if matches(request.headers.get("if-none-match"), etag):
        response = Response(status_code=304)
    else:
        response = Response(body, status_code=status)
        for name, value in headers:
            response.headers.append(name, value)
    response.headers["etag"] = etag
    if cache_control is not None:
        response.headers["cache-control"] = cache_control
    elif "cache-control" not in response.headers:
        kept = [v for n, v in headers if n.lower() == "cache-control"]
        if kept:
            response.headers["cache-control"] = kept[0]
    if vary is not None:
        response.headers["vary"] = vary
    return response


def _as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    from fastapi.encoders import jsonable_encoder  # FastAPI's data, not a Response
    from fastapi.responses import JSONResponse

    return JSONResponse(jsonable_encoder(result))


def cached(
    ttl: Any = UNSET,
    *,
    query: Iterable[str] = (),
    headers: Iterable[str] = (),
    tags: Iterable[str] = (),
    cache_control: str | None = "no-cache",
    cache: AsyncCache | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Cache a GET endpoint's responses (HEAD apart), keyed by the endpoint,
    the request's path and the chosen ``query`` parameters and ``headers``
    (nothing else of the request: a response that depends on anything
    else, the user for one, must not be cached this way).

    Concurrent identical requests run the endpoint once (``get_or_load``'s
    single flight, across processes). ``tags`` are templates rendered from
    the path parameters (``"product:{product_id}"``): ``invalidate_tags``
    or the SQLAlchemy ``Tracker`` drops the responses carrying them, in
    every process. Every reply has a strong ``ETag`` (a hash of the body);
    a request whose ``If-None-Match`` names it gets a 304 with no body.
    ``cache_control`` is the reply's ``Cache-Control`` (default
    ``no-cache``: clients revalidate every time, with the ETag, so no
    browser serves what the server has invalidated; ``None`` keeps the
    endpoint's own).

    Only a 200 without ``Set-Cookie`` and not ``private``/``no-store`` is
    stored; any other response is returned as it is. The endpoint (``async
    def`` or ``def``) returns a ``Response`` or data, which is sent as JSON
    (FastAPI's ``jsonable_encoder``; a ``response_model`` is not applied).
    The cache is ``cache``, or the app's (``lifespan``).
    """
    query_names = names(query, "query")
    header_names = names(headers, "headers")
    tag_templates = names(tags, "tags")
    vary = ", ".join(header_names) if header_names else None

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint_name = name or f"{endpoint.__module__}.{endpoint.__qualname__}"
        is_async = inspect.iscoroutinefunction(endpoint)
        signature = inspect.signature(endpoint)
        hints = typing.get_type_hints(endpoint, include_extras=True)
        parameters = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
        ]
        given = next((p.name for p in parameters if p.annotation is Request), None)
        if given is None:
            parameters.append(
                inspect.Parameter(
                    _REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request
                )
            )

        async def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
            if is_async:
                result = await endpoint(*args, **kwargs)
            else:
                result = await run_in_threadpool(endpoint, *args, **kwargs)
            return _as_response(result)

        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            # Starlette passes the request alone; FastAPI, named arguments.
            if args and isinstance(args[0], Request):
                request = args[0]
            elif given is not None:
                request = kwargs[given]
            else:
                request = kwargs.pop(_REQUEST)
            if request.method not in _SAFE:
                return await call(args, kwargs)
            store = cache if cache is not None else get_cache(request)
            key = store.key(
                "http", endpoint_name, request.method == "HEAD",
                path=request.url.path,
                **key_parts(
                    query_names, header_names,
                    request.query_params.getlist, request.headers.get,
                ),
            )  # fmt: skip
            token = object()

            async def render() -> Stored:
                response = await call(args, kwargs)
                pairs = [
                    (n.decode("latin-1"), v.decode("latin-1"))
                    for n, v in response.raw_headers
                ]
                if not hasattr(response, "body") or not cacheable(
                    response.status_code, pairs
                ):
                    raise Uncacheable(response, token)
                return _frozen(response)

            try:
                stored = await store.get_or_load(
                    key, render, ttl=ttl,
                    tags=tags_for(tag_templates, request.path_params),
                )  # fmt: skip
            except Uncacheable as exc:  # another caller's: render our own
                if exc.token is token:
                    mine: Response = exc.response  # type: ignore[assignment]
                    return mine
                return await call(args, kwargs)
            status, pairs, body, etag = stored
            return _reply(
                (status, list(pairs), body, etag), request, cache_control, vary
            )

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=Response
        )
        del wrapper.__wrapped__  # FastAPI reads __signature__, not the original
        return wrapper

    return decorate
