"""Write-behind into a PostgreSQL table with psycopg 3 (the ``postgres`` extra).

One batch is one statement, which is its own transaction (the connection is
in autocommit mode)::

    INSERT INTO t (key, value, version)
    SELECT * FROM unnest(%s::text[], %s::text[]::jsonb[], %s::bigint[])
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version
    WHERE t.version < EXCLUDED.version

so a batch costs one round trip whatever its size, and a redelivered or
older write never overwrites a newer one. The key column needs a unique
index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from freshcache._core.streams import Write
from freshcache.errors import PermanentWriteError
from freshcache.sinks.base import check_identifier

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "PostgresSink needs psycopg 3: pip install 'freshcache[postgres]'"
    ) from exc

ValueType = Literal["jsonb", "json", "text"]


class PostgresSink:
    """Upserts writes into ``table`` (key, JSON value, version columns).

    ``dsn`` is a libpq connection string, or pass ``connect`` (a function
    returning a ``psycopg.Connection``). The connection is opened on first
    use and reopened after a failure.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        table: str,
        key_column: str = "key",
        value_column: str = "value",
        version_column: str = "version",
        value_type: ValueType = "jsonb",
        connect: Any = None,
    ) -> None:
        if (dsn is None) == (connect is None):
            raise ValueError("give PostgresSink either dsn or connect")
        if value_type not in ("jsonb", "json", "text"):
            raise ValueError(f"value_type must be jsonb, json or text: {value_type!r}")
        t = check_identifier("table", table)
        k = check_identifier("key_column", key_column)
        v = check_identifier("value_column", value_column)
        n = check_identifier("version_column", version_column)
        self._connect = connect or (lambda: psycopg.connect(str(dsn)))
        self._conn: psycopg.Connection[Any] | None = None
        self.sql = (
            f"INSERT INTO {t} ({k}, {v}, {n}) "
            f"SELECT * FROM unnest(%s::text[], %s::text[]::{value_type}[], "
            f"%s::bigint[]) "
            f"ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}, "
            f"{n} = EXCLUDED.{n} WHERE {t}.{n} < EXCLUDED.{n}"
        )
        self.round_trips = 0  # statements and commits sent (for the benchmark)

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            conn = self._conn = self._connect()
            conn.autocommit = True  # one statement, one transaction
        return conn

    def apply(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        conn = self._connection()
        writes = sorted(writes, key=lambda w: w.key)  # one lock order: no deadlock
        rows = (
            [w.key for w in writes],
            [w.payload for w in writes],
            [w.version for w in writes],
        )
        try:
            conn.execute(self.sql, rows)
        except psycopg.OperationalError:
            self.close()  # reconnect next time
            raise
        finally:
            self.round_trips += 1

    def is_permanent(self, exc: BaseException) -> bool:
        """Constraint violations and bad data fail again on a retry."""
        return isinstance(
            exc,
            PermanentWriteError
            | pg_errors.IntegrityError
            | pg_errors.DataError
            | pg_errors.InvalidTextRepresentation,
        )

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
