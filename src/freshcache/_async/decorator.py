"""The ``cached`` decorator: a compiled key template and a fast L1 hit path."""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from freshcache._async.engine.disabled import AsyncDisabledEngine
from freshcache._async.engine.tiers import bypass_reason
from freshcache._concurrency import acheck_function
from freshcache._core.codec.revival import make_reviver
from freshcache._core.freshness import Lifetime
from freshcache._core.layout import versioned
from freshcache._core.sentinels import MISS
from freshcache._core.templates import KeyTemplate
from freshcache.errors import StoreError
from freshcache.metrics import Tier

if TYPE_CHECKING:
    from freshcache._async.engine.tiers import AsyncEngine
    from freshcache._core.tagging import TagSource

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class AsyncCachedFunction(Protocol[P, R_co]):
    """A function whose results are cached; see ``AsyncCache.cached``."""

    __wrapped__: Callable[..., Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R_co]: ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key (relative, as ``cache.get`` takes it) for these arguments."""
        ...

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Remove the cached result for these arguments from every tier
        (as ``invalidate``: False when it is queued for retry)."""
        ...


def _return_reviver(func: Callable[..., Any]) -> Callable[[Any], Any] | None:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: no revival
        return None
    return make_reviver(hints.get("return"))


def wrap(
    engine: AsyncEngine,
    func: Callable[P, Awaitable[R]],
    template: str | None,
    *,
    lifetime: Lifetime,
    tags: tuple[str | TagSource, ...],
    invalidate_key: Callable[[str], Awaitable[bool]],
    namespace: str | None = None,
) -> AsyncCachedFunction[P, R]:
    """``func`` cached by ``engine`` under ``template``; ``invalidate_key``
    drops one relative key (the cache's own ``invalidate``)."""
    acheck_function(func, "AsyncCache.cached")
    head = engine.head
    compiled = KeyTemplate.compile(template, func, head=head, namespace=namespace)
    render = compiled.render  # the full key, head included
    namespace = compiled.namespace
    relative = len(head)
    versions = engine.versions.known
    bus = engine.bus
    # Tag templates are rendered from the call's arguments; callables get the result.
    arg_tags = [KeyTemplate.compile(t, func).render for t in tags if isinstance(t, str)]
    result_tags = [t for t in tags if not isinstance(t, str)]
    revivers: list[Callable[[Any], Any] | None] = []

    async def fill(base: str, args: Any, kwargs: Any, checked: bool) -> R:
        if not revivers:
            revivers.append(_return_reviver(func))
        version = versions.get(namespace)  # what versions.get answers, inlined
        if version is None or not engine.versions_current():
            try:
                version = await engine.versions.get(namespace)
            except StoreError as exc:  # unknown and out of reach: bypass the cache
                engine.metrics.bypass(Tier.CACHE, namespace, bypass_reason(exc))
                return await func(*args, **kwargs)
        full = versioned(head, namespace, version, base)
        loader = functools.partial(func, *args, **kwargs)
        rendered: list[str | TagSource] = [t(args, kwargs) for t in arg_tags]
        rendered += result_tags
        value = await engine.serve(
            full, namespace, loader, lifetime, rendered, revivers[0],
            local_checked=checked,
        )  # fmt: skip
        return typing.cast(R, value)

    l1 = engine.l1
    local = None if l1 is None or l1.copy else l1.store  # copy mode decodes
    if isinstance(engine, AsyncDisabledEngine):  # chosen here, not per call
        bypass = engine.bypass

        @functools.wraps(func)
        async def cached_call(*args: P.args, **kwargs: P.kwargs) -> R:
            value = await bypass(namespace, functools.partial(func, *args, **kwargs))
            return typing.cast(R, value)

    elif local is None:

        @functools.wraps(func)
        async def cached_call(*args: P.args, **kwargs: P.kwargs) -> R:
            return await fill(render(args, kwargs), args, kwargs, False)

    else:
        local_get = local.get
        now = engine.now
        hit = engine.metrics.hit
        l1_tier = Tier.L1.value  # a plain str: the cheapest dict key
        count = engine.metrics.count
        refreshing = engine.refreshing
        miss = MISS
        mono = engine.mono
        bound = engine.bound
        # Embedded: nothing to wait for; L1(max_staleness=None): no bound.
        bounded = engine.l2 is not None and bound < math.inf

        @functools.wraps(func)
        async def cached_call(*args: P.args, **kwargs: P.kwargs) -> R:
            key = render(args, kwargs)
            if bounded and mono() - bus.watermark >= bound:  # staleness bound
                return await fill(key, args, kwargs, False)
            version = versions.get(namespace)
            if version is None:
                return await fill(key, args, kwargs, False)
            full = versioned(head, namespace, version, key) if version else key
            entry = local_get(full)
            if entry is miss:
                return await fill(key, args, kwargs, True)
            if now() < entry.early_from:  # fresh, and too early for XFetch
                hit(l1_tier, namespace)
                value: R = entry.value  # no typing.cast: a call on the hot path
                return value
            if full in refreshing:  # its refresh is under way here: serve it
                hit(l1_tier, namespace)
                if now() >= entry.fresh_until:
                    count("swr_served_stale")
                served: R = entry.value
                return served
            # Stale, or time to roll XFetch's dice: the slow path serves it
            # from L1 and starts the refresh.
            return await fill(key, args, kwargs, False)

    def key(*args: P.args, **kwargs: P.kwargs) -> str:
        return render(args, kwargs)[relative:]

    async def invalidate(*args: P.args, **kwargs: P.kwargs) -> bool:
        return await invalidate_key(render(args, kwargs)[relative:])

    wrapper: Any = cached_call
    wrapper.key = key
    wrapper.invalidate = invalidate
    return typing.cast(AsyncCachedFunction[P, R], wrapper)
