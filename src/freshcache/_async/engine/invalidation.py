"""Invalidation by key, tag and namespace, in every tier and every process.

Order (docs/coherence.md, section 6): Redis first, then this process's
generations and L1, then the bus message. When Redis cannot be reached, the
invalidation is queued for retry (``retry.py``) *before* L1 is dropped, so
that no read here refills L1 from Redis in between, and the ``StoreError``
is raised: the caller learns that it has not landed yet, and need not retry
it. While it is pending, this process serves nothing it may cover
(``PendingInvalidations.covers``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from freshcache._async.engine.retry import AsyncInvalidationRetry, AsyncTiers
from freshcache._core.events import Message, Origin
from freshcache.errors import StoreError
from freshcache.metrics import Metrics


class AsyncInvalidator:
    def __init__(
        self, tiers: AsyncTiers, *, head: str, origin: Origin, metrics: Metrics,
        mono: Callable[[], float],
    ) -> None:  # fmt: skip
        self._tiers = tiers
        self._origin = origin
        self._head = head
        self.retry = AsyncInvalidationRetry(
            tiers, head=head, origin=origin, metrics=metrics, mono=mono
        )
        self.pending = self.retry.pending

    def reset(self) -> None:
        """A new event loop, or a forked child (see ``retry.reset``)."""
        self.retry.reset()

    async def invalidate(self, fulls: Sequence[str]) -> int | None:
        """Delete ``fulls``; how many Redis held, or None: Redis did not take
        it within the invalidation budget, and it is queued for retry."""
        tiers = self._tiers
        removed = 0
        try:
            if tiers.l2 is not None:
                removed = await tiers.l2.invalidate(fulls)
            tiers.forget_local(fulls, (), flush=False)
            await tiers.send(Message(self._origin.id, keys=tuple(fulls)))
        except StoreError as exc:
            self.retry.queue(exc, keys=tuple(fulls))
            tiers.forget_local(fulls, (), flush=False)
            return None
        return removed

    async def invalidate_tags(self, tags: Sequence[str]) -> bool:
        """True when it landed; False when it is queued for retry."""
        tiers = self._tiers
        try:
            if tiers.l2 is not None:
                await tiers.l2.invalidate_tags(tags)
            tiers.forget_local((), tags, flush=False)
            await tiers.send(Message(self._origin.id, tags=tuple(tags)))
        except StoreError as exc:
            self.retry.queue(exc, tags=tuple(tags))
            tiers.forget_local((), tags, flush=False)
            return False
        return True

    async def bump(self, namespace: str) -> int:
        tiers = self._tiers
        try:
            version = await tiers.versions.bump(namespace)
            await tiers.send(
                Message(
                    self._origin.id,
                    namespaces=((namespace, version),),
                    head=self._head,
                )
            )
        except StoreError as exc:
            self.retry.queue(exc, namespaces=(namespace,))
            tiers.forget_local((), (), flush=True)
            raise
        return version

    def queue_unresolved(
        self, pairs: Sequence[tuple[str, str]], exc: StoreError
    ) -> None:
        """``(base key, namespace)`` pairs whose namespace version could not be
        read: resolved when the retry runs; every L1 entry is dropped now."""
        self.retry.queue(exc, unresolved=tuple(pairs))
        self._tiers.forget_local((), (), flush=True)

    async def aclose(self, wait: float) -> None:
        await self.retry.aclose(wait)
