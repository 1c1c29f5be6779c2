"""Write-behind through SQLAlchemy Core (the ``sqlalchemy`` extra), any dialect.

The table is reflected on first use. One batch is one transaction
(``engine.begin()``). PostgreSQL and SQLite get one ``INSERT ... ON CONFLICT
DO UPDATE ... WHERE version < excluded.version`` per batch; other dialects
get, per write, an ``UPDATE ... WHERE key = :k AND version < :v`` and, if
no row has the key yet, an ``INSERT``: correct with one worker per queue,
while two workers inserting the same new key at once make one batch fail
(and be retried). A JSON-typed value column gets the value; any other gets
its JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from freshcache._core.streams import Write
from freshcache.errors import PermanentWriteError
from freshcache.sinks.base import check_identifier

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "SQLAlchemySink needs SQLAlchemy: pip install 'freshcache[sqlalchemy]'"
    ) from exc


class SQLAlchemySink:
    """Upserts writes into ``table`` through ``engine`` (an Engine or a URL)."""

    def __init__(
        self,
        engine: sa.Engine | str,
        *,
        table: str,
        key_column: str = "key",
        value_column: str = "value",
        version_column: str = "version",
    ) -> None:
        self._engine = sa.create_engine(engine) if isinstance(engine, str) else engine
        self._owns_engine = isinstance(engine, str)
        schema, _, name = check_identifier("table", table).rpartition(".")
        self._schema = schema or None
        self._name = name
        self._columns = tuple(
            check_identifier(what, column)
            for what, column in (
                ("key_column", key_column),
                ("value_column", value_column),
                ("version_column", version_column),
            )
        )
        self._table: sa.Table | None = None
        self._json = False
        self._upsert_dialects: tuple[str, ...] = ("postgresql", "sqlite")

    def _reflect(self) -> sa.Table:
        if self._table is None:
            table = sa.Table(
                self._name,
                sa.MetaData(),
                schema=self._schema,
                autoload_with=self._engine,
            )
            missing = [c for c in self._columns if c not in table.c]
            if missing:
                raise ValueError(f"table {self._name!r} has no column(s) {missing}")
            self._json = isinstance(table.c[self._columns[1]].type, sa.JSON)
            self._table = table
        return self._table

    def apply(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        table = self._reflect()
        k, v, n = self._columns
        rows = [  # in key order: concurrent batches lock rows in one order
            {k: w.key, v: w.value if self._json else w.payload, n: w.version}
            for w in sorted(writes, key=lambda w: w.key)
        ]
        with self._engine.begin() as conn:
            dialect = conn.dialect.name
            if dialect in self._upsert_dialects:
                conn.execute(self._upsert(table, dialect), rows)
                return
            for row in rows:  # portable: update if older, else insert if absent
                updated = conn.execute(
                    table.update()
                    .where(table.c[k] == row[k], table.c[n] < row[n])
                    .values({v: row[v], n: row[n]})
                )
                if updated.rowcount == 0:
                    exists = conn.execute(
                        sa.select(table.c[k]).where(table.c[k] == row[k])
                    ).first()
                    if exists is None:
                        conn.execute(table.insert().values(row))

    def _upsert(self, table: sa.Table, dialect: str) -> Any:
        k, v, n = self._columns
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        return statement.on_conflict_do_update(
            index_elements=[table.c[k]],
            set_={v: statement.excluded[v], n: statement.excluded[n]},
            where=table.c[n] < statement.excluded[n],
        )

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(
            exc, PermanentWriteError | sa_exc.IntegrityError | sa_exc.DataError
        )

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()
