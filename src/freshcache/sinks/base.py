"""What a write-behind sink is: one batch, one transaction, the newest version wins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from freshcache._core.streams import Write


@runtime_checkable
class Sink(Protocol):
    """Applies batches of writes to the database.

    ``apply`` writes every write of ``writes`` (one per key, newest first
    coalesced by the worker) in **one transaction**, as an idempotent upsert
    guarded by version: a row is overwritten only if its stored version is
    lower. So a batch applied twice, or an older batch applied after a newer
    one, changes nothing. It raises if the transaction did not commit.
    ``is_permanent`` says whether an exception from ``apply`` will recur on
    a retry (a constraint violation, bad data): such writes are dead-lettered
    after one attempt.
    """

    def apply(self, writes: Sequence[Write]) -> Any: ...

    def is_permanent(self, exc: BaseException) -> bool: ...

    def close(self) -> None: ...


def check_identifier(what: str, name: str) -> str:
    """A table or column name safe to put in SQL as is (letters, digits, _ and .)."""
    parts = name.split(".")
    if not all(p and (p.replace("_", "a").isalnum() and p.isascii()) for p in parts):
        raise ValueError(f"{what} must be a plain SQL identifier, not {name!r}")
    if len(parts) > 2 or name[0].isdigit():
        raise ValueError(f"{what} must be a plain SQL identifier, not {name!r}")
    return name
