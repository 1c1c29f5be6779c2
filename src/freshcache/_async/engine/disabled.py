"""The engine of a disabled cache (``enabled=False``).

It has no tiers: nothing is built that could connect to Redis, and nothing
is kept in memory. Every read is a load of the source, counted as a bypass
of the cache (``Bypass.DISABLED``, one per key looked up) so that the load
on the source with and without the cache can be compared; every write stores nothing.
Invalidations go through the base engine, which, with no tier and no Redis,
drops nothing and sends nothing. The facade builds this engine instead of
``AsyncEngine``, so the enabled engine's paths carry no check for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from freshcache._async.engine.tiers import NO_SNAPSHOT, AsyncEngine, Count, Reviver
from freshcache._concurrency import ainvoke
from freshcache._core.entry import Entry
from freshcache._core.freshness import Lifetime
from freshcache._core.sentinels import MISS, Miss
from freshcache._core.tagging import TagSource
from freshcache._core.updates import Change
from freshcache._inproc.generations import Snapshot
from freshcache.metrics import Bypass, Tier
from freshcache.tracing import Attribute, LoadReason, SpanName


class AsyncDisabledEngine(AsyncEngine):
    """An engine without tiers: reads load, writes store nothing."""

    async def bypass(self, namespace: str, loader: Callable[[], Any]) -> Any:
        """``loader()``, counted as a bypass and timed as a load (its errors
        propagate, counted as load errors), as an enabled miss would be."""
        self.check_open()
        self.metrics.bypass(Tier.CACHE, namespace, Bypass.DISABLED)
        mono = self.mono
        started = mono()
        try:
            with self.tracing.span(
                SpanName.LOAD,
                {
                    Attribute.NAMESPACE: namespace,
                    Attribute.LOAD_REASON: LoadReason.DISABLED,
                },
            ):
                value = await ainvoke(loader)
        except BaseException:
            self.metrics.load(namespace, mono() - started, failed=True)
            raise
        self.metrics.load(namespace, mono() - started, failed=False)
        return value

    async def lookup(
        self, full: str, namespace: str, reviver: Reviver, *,
        local_checked: bool, stale_ok: bool = False, asked: bool = False,
        counted: list[Count] | None = None,
    ) -> tuple[Entry | Miss, Snapshot]:  # fmt: skip
        self.check_open()
        self.metrics.bypass(Tier.CACHE, namespace, Bypass.DISABLED)
        return MISS, NO_SNAPSHOT

    async def lookup_many(
        self, wanted: Sequence[tuple[str, str]], reviver: Reviver
    ) -> list[Entry | Miss]:
        self.check_open()
        for _, namespace in wanted:
            self.metrics.bypass(Tier.CACHE, namespace, Bypass.DISABLED)
        return [MISS] * len(wanted)

    async def serve(
        self, full: str, namespace: str, loader: Callable[[], Any],
        lifetime: Lifetime, tags: Sequence[str | TagSource],
        reviver: Reviver, *, local_checked: bool,
    ) -> Any:  # fmt: skip
        """The loader's value, every time: no single flight, nothing stored
        (so no negative caching and no tags rendered)."""
        return await self.bypass(namespace, loader)

    async def put(
        self, items: Sequence[tuple[str, Any, Sequence[str]]],
        lifetime: Lifetime,
    ) -> bool:  # fmt: skip
        """Nothing is stored: False, as for an enabled write that was not
        cached (nothing is encoded either)."""
        self.check_open()
        return False

    async def update(
        self, full: str, decide: Callable[[Entry | Miss], Change | None]
    ) -> bool:
        """Nothing is cached, so ``decide`` sees ``MISS`` (an ``incr`` raises
        ``KeyError``) and nothing is stored: False (a write: not a lookup,
        so not counted, as ``put``)."""
        self.check_open()
        decide(MISS)
        return False
