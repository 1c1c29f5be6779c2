"""``@cached`` for Django views: single flight, tags and invalidation.

Unlike ``cache_page``, the response is computed once per key across threads
and processes (freshcache's single flight and fill lease), carries tags, and
is invalidated by the view's arguments or tags (``invalidate_on_save`` does
it after a commit).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from freshcache.contrib.django.backend import FreshCache

__all__ = ["CachedView", "cached"]

_SAFE = frozenset({"GET", "HEAD"})


class _Uncacheable(Exception):  # noqa: N818  # a signal, not an error
    """A response not to store, out of the single flight to its caller."""

    def __init__(self, response: HttpResponseBase, token: object) -> None:
        super().__init__("not cacheable")
        self.response = response
        self.token = token


def _cacheable(response: HttpResponseBase) -> bool:
    """Only a plain 200 that sets no cookie and is not private."""
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    control = response.get("Cache-Control", "").lower()
    return "private" not in control and "no-store" not in control


def _frozen(response: HttpResponseBase) -> tuple[int, list[tuple[str, str]], bytes]:
    render = getattr(response, "render", None)
    if callable(render) and not getattr(response, "is_rendered", True):
        render()
    assert isinstance(response, HttpResponse)
    return response.status_code, list(response.headers.items()), response.content


def _thawed(stored: tuple[int, list[tuple[str, str]], bytes]) -> HttpResponse:
    status, headers, content = stored
    response = HttpResponse(content, status=status)
    for name, value in headers:
        response.headers[name] = value
    return response


class CachedView:
    """A view whose responses are cached; ``invalidate(**url_kwargs)`` drops
    every cached response of those URL arguments (all query strings)."""

    def __init__(
        self,
        view: Callable[..., Any],
        *,
        alias: str,
        timeout: Any,
        tags: tuple[str, ...],
        vary_on_query: bool,
    ) -> None:
        self.view = view
        self.alias = alias
        self.timeout = timeout
        self.tags = tags
        self.vary_on_query = vary_on_query
        self.name = f"{view.__module__}.{view.__qualname__}"
        self.is_async = inspect.iscoroutinefunction(view)
        functools.update_wrapper(self, view)

    @property
    def backend(self) -> FreshCache:
        backend = caches[self.alias]
        if not isinstance(backend, FreshCache):
            raise TypeError(
                f"@cached needs CACHES[{self.alias!r}] to be a FreshCache, not "
                f"{type(backend).__name__}"
            )
        return backend

    def tag(self, **url_kwargs: Any) -> str:
        """The tag every response of these URL arguments carries."""
        return self.backend.cache.key("view", self.name, **url_kwargs)

    def _tags(self, url_kwargs: dict[str, Any]) -> list[str]:
        return [self.tag(**url_kwargs)] + [t.format(**url_kwargs) for t in self.tags]

    def _key(self, request: HttpRequest, url_kwargs: dict[str, Any]) -> str:
        query = sorted(request.GET.lists()) if self.vary_on_query else []
        return self.backend.cache.key(
            "view", self.name, request.method == "HEAD", query, **url_kwargs
        )

    def _ttl(self) -> float | None:
        backend = self.backend
        timeout = (
            backend.default_timeout
            if self.timeout is DEFAULT_TIMEOUT
            else (self.timeout)
        )
        return None if timeout is None else float(timeout)

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return self._acall(request, *args, **kwargs)
        if request.method not in _SAFE or args:
            return self.view(request, *args, **kwargs)
        token = object()

        def render() -> tuple[int, list[tuple[str, str]], bytes]:
            response = self.view(request, **kwargs)
            if not _cacheable(response):
                raise _Uncacheable(response, token)
            return _frozen(response)

        cache = self.backend.cache
        try:
            stored = cache.get_or_load(
                self._key(request, kwargs), render, ttl=self._ttl(),
                tags=self._tags(kwargs),
            )  # fmt: skip
        except _Uncacheable as exc:  # another caller's: render our own
            if exc.token is token:
                return exc.response
            return self.view(request, **kwargs)
        return _thawed(stored)

    async def _acall(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method not in _SAFE or args:
            return await self.view(request, *args, **kwargs)
        token = object()

        async def render() -> tuple[int, list[tuple[str, str]], bytes]:
            response = await self.view(request, **kwargs)
            if not _cacheable(response):
                raise _Uncacheable(response, token)
            return _frozen(response)

        cache = self.backend.async_cache()
        try:
            stored = await cache.get_or_load(
                self._key(request, kwargs), render, ttl=self._ttl(),
                tags=self._tags(kwargs),
            )  # fmt: skip
        except _Uncacheable as exc:
            if exc.token is token:
                return exc.response
            return await self.view(request, **kwargs)
        return _thawed(stored)

    def invalidate(self, **url_kwargs: Any) -> bool:
        """Drop every cached response of these URL arguments, in every
        process; True when Redis took it (else it is queued and retried)."""
        return self.backend.cache.invalidate_tags(self.tag(**url_kwargs))

    async def ainvalidate(self, **url_kwargs: Any) -> bool:
        return await self.backend.async_cache().invalidate_tags(self.tag(**url_kwargs))


def cached(
    timeout: Any = DEFAULT_TIMEOUT,
    *,
    tags: Iterable[str] = (),
    alias: str = "default",
    vary_on_query: bool = True,
) -> Callable[[Callable[..., Any]], CachedView]:
    """Cache a view's GET and HEAD responses in ``CACHES[alias]`` (a
    ``FreshCache``), keyed by the view, its URL keyword arguments and (with
    ``vary_on_query``) the query string. Concurrent requests for one key
    render the view once. ``tags`` are templates rendered from the URL
    keyword arguments (``"product:{pk}"``); ``invalidate_tags`` or
    ``invalidate_on_save(tags=...)`` drops the responses carrying them.

    Only a 200 that sets no cookie and is not ``private``/``no-store`` is
    stored; anything else is returned as it is. Plain and ``async def``
    views alike. It does not vary on headers or the user: do not decorate
    views whose response depends on them.
    """
    tag_templates = tuple(tags)
    if isinstance(tags, str):
        raise TypeError("tags is a list of tag templates, not one str")

    def decorate(
        view: Callable[..., Any] | Callable[..., Awaitable[Any]],
    ) -> CachedView:
        return CachedView(
            view, alias=alias, timeout=timeout, tags=tag_templates,
            vary_on_query=vary_on_query,
        )  # fmt: skip

    return decorate
