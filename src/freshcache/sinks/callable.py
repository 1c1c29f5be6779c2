"""A sink that hands each batch to a function of yours."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from freshcache._core.streams import Write
from freshcache.errors import PermanentWriteError


class CallableSink:
    """``apply`` calls ``function(writes)`` (it may return an awaitable for the
    async worker). The function must apply the batch atomically and keep the
    highest version per key; raise ``PermanentWriteError`` for writes that
    can never succeed (they are dead-lettered at once), anything else to
    retry."""

    def __init__(
        self,
        function: Callable[[Sequence[Write]], Any],
        *,
        permanent: tuple[type[BaseException], ...] = (),
    ) -> None:
        if not callable(function):
            raise TypeError(f"CallableSink needs a callable, not {function!r}")
        self._function = function
        self._permanent: tuple[type[BaseException], ...] = (
            PermanentWriteError,
            *permanent,
        )

    def apply(self, writes: Sequence[Write]) -> Any:
        return self._function(writes)

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(exc, self._permanent)

    def close(self) -> None:
        pass
