"""Write-behind into a SQLite table (stdlib ``sqlite3``): the embedded default.

One batch is one transaction of ``INSERT ... ON CONFLICT (key) DO UPDATE
... WHERE version < excluded.version`` (SQLite 3.24 or newer). The key
column needs a unique index (or be the primary key).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from freshcache._core.streams import Write
from freshcache.errors import PermanentWriteError
from freshcache.sinks.base import check_identifier


class SQLiteSink:
    """Upserts writes into ``table`` of the SQLite database at ``path``."""

    def __init__(
        self,
        path: str | Path,
        *,
        table: str,
        key_column: str = "key",
        value_column: str = "value",
        version_column: str = "version",
        timeout: float = 30.0,
    ) -> None:
        t = check_identifier("table", table)
        k = check_identifier("key_column", key_column)
        v = check_identifier("value_column", value_column)
        n = check_identifier("version_column", version_column)
        self._path = str(path)
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self.sql = (
            f"INSERT INTO {t} ({k}, {v}, {n}) VALUES (?, ?, ?) "
            f"ON CONFLICT ({k}) DO UPDATE SET {v} = excluded.{v}, "
            f"{n} = excluded.{n} WHERE {t}.{n} < excluded.{n}"
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Made on the worker's thread, closed by whoever stops it: one
            # worker uses a sink at a time, so the connection is never shared.
            self._conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        return self._conn

    def apply(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self.sql, [(w.key, w.payload, w.version) for w in writes])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(
            exc, PermanentWriteError | sqlite3.IntegrityError | sqlite3.DataError
        )

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
