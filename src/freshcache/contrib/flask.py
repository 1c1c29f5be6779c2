"""freshcache for Flask: an extension that builds (or takes) a ``Cache`` per
app, closes it at teardown, and caches views' GET responses
(``pip install 'freshcache[flask]'``; ``docs/web.md``).

``import freshcache`` never imports Flask; this module does.
"""

from __future__ import annotations

import atexit
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

try:
    from flask import Flask, current_app, request
    from werkzeug.wrappers import Response
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "freshcache.contrib.flask needs Flask 3: pip install 'freshcache[flask]'"
    ) from exc

from freshcache import UNSET, Cache
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

__all__ = ["FreshCache"]

EXTENSION = "freshcache"
_SAFE = frozenset({"GET", "HEAD"})


class FreshCache:
    """The Flask extension: ``FreshCache(app)`` or ``ext.init_app(app)``.

    Each app gets ``cache`` if one is given, else a ``Cache`` built from
    its config: ``FRESHCACHE_URL`` (unset: the embedded, in-process cache)
    and ``FRESHCACHE_OPTIONS`` (``Cache``'s keyword options, e.g.
    ``{"prefix": "shop", "l1": L1()}``). It lives in
    ``app.extensions["freshcache"]``; ``ext.cache`` is the current app's.
    ``teardown(app)`` closes a cache the extension built (at interpreter
    exit too); a cache you gave stays yours to close.
    """

    def __init__(self, app: Flask | None = None, *, cache: Cache | None = None):
        self._given = cache
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if self._given is not None:
            cache = self._given
        else:
            options: Mapping[str, Any] = app.config.get("FRESHCACHE_OPTIONS", {})
            cache = Cache(app.config.get("FRESHCACHE_URL"), **options)
            atexit.register(cache.close)
        app.extensions[EXTENSION] = cache

    @property
    def cache(self) -> Cache:
        """The current app's cache (needs an app context)."""
        return cache_of(current_app)

    def teardown(self, app: Flask) -> None:
        """Close the app's cache if the extension built it; a later call
        raises ``CacheClosedError`` until ``with cache:`` reopens it."""
        cache = app.extensions.get(EXTENSION)
        if cache is not None and cache is not self._given:
            cache.close()

    def cached(
        self,
        ttl: Any = UNSET,
        *,
        query: Iterable[str] = (),
        headers: Iterable[str] = (),
        tags: Iterable[str] = (),
        cache_control: str | None = "no-cache",
        name: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Cache a view's GET responses (HEAD apart), as
        ``freshcache.contrib.fastapi.cached`` does: keyed by the view, the
        path and the chosen ``query`` parameters and ``headers``; ``tags``
        rendered from the URL arguments (``"product:{product_id}"``); one
        run per key across processes; a strong ``ETag`` and 304 on a
        matching ``If-None-Match``; ``Cache-Control: no-cache`` unless
        told otherwise (``None``: the view's own). Only a 200 without
        ``Set-Cookie`` and not ``private``/``no-store`` is stored."""
        query_names = names(query, "query")
        header_names = names(headers, "headers")
        tag_templates = names(tags, "tags")
        vary = ", ".join(header_names) if header_names else None

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            view_name = name or f"{view.__module__}.{view.__qualname__}"

            def call(kwargs: dict[str, Any]) -> Response:
                app = current_app
                result = app.ensure_sync(view)(**kwargs)
                return app.make_response(result)

            @functools.wraps(view)
            def wrapper(**kwargs: Any) -> Response:
                if request.method not in _SAFE:
                    return call(kwargs)
                store = cache_of(current_app)
                key = store.key(
                    "http", view_name, request.method == "HEAD",
                    path=request.path,
                    **key_parts(
                        query_names, header_names,
                        request.args.getlist, request.headers.get,
                    ),
                )  # fmt: skip
                token = object()

                def render() -> Stored:
                    response = call(kwargs)
                    if response.is_streamed or not cacheable(
                        response.status_code, list(response.headers.items())
                    ):
                        raise Uncacheable(response, token)
                    body = response.get_data()
                    kept = [
                        (n, v)
                        for n, v in response.headers.items()
                        if n.lower() not in NO_STORE_HEADERS
                    ]
                    return response.status_code, kept, body, entity_tag(body)

                try:
                    stored = store.get_or_load(
                        key, render, ttl=ttl,
                        tags=tags_for(tag_templates, request.view_args or {}),
                    )  # fmt: skip
                except Uncacheable as exc:  # another caller's: render our own
                    if exc.token is token:
                        mine: Response = exc.response  # type: ignore[assignment]
                        return mine
                    return call(kwargs)
                return _reply(stored, cache_control, vary)

            return wrapper

        return decorate


def cache_of(app: Flask) -> Cache:
    cache = app.extensions.get(EXTENSION)
    if not isinstance(cache, Cache):
        raise RuntimeError(
            "no freshcache Cache on this app: call FreshCache(app) or "
            "ext.init_app(app) first"
        )
    return cache


def _reply(stored: Stored, cache_control: str | None, vary: str | None) -> Response:
    status, pairs, body, etag = stored
    if matches(request.headers.get("If-None-Match"), etag):
        response = Response(status=304)
        del response.headers["Content-Type"]
    else:
        response = Response(body, status=status, headers=list(pairs))
    response.headers["ETag"] = etag
    if cache_control is not None:
        response.headers["Cache-Control"] = cache_control
    elif "Cache-Control" not in response.headers:
        kept = [v for n, v in pairs if n.lower() == "cache-control"]
        if kept:
            response.headers["Cache-Control"] = kept[0]
    if vary is not None:
        response.headers["Vary"] = vary
    return response
