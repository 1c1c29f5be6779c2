"""The write-behind sinks on real databases: one transaction, newest version wins."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from freshcache import CallableSink, PermanentWriteError, Write
from freshcache.sinks.postgres import PostgresSink
from freshcache.sinks.sqlalchemy import SQLAlchemySink
from freshcache.sinks.sqlite import SQLiteSink


def _w(key: str, version: int, value: str = "") -> Write:
    return Write(key, f'"{value or key}-{version}"', version, f"{version}-0")


def _check_version_guard(sink: object, read: object) -> None:
    """Apply, re-apply, apply older, apply newer: the newest always wins."""
    apply = sink.apply  # type: ignore[attr-defined]
    rows = read  # a function: {key: (version, value)}
    apply([_w("a", 5), _w("b", 1)])
    assert rows() == {"a": (5, "a-5"), "b": (1, "b-1")}  # type: ignore[operator]
    apply([_w("a", 5), _w("b", 1)])  # redelivered: harmless
    apply([_w("a", 3), _w("b", 2)])  # older a, newer b
    assert rows() == {"a": (5, "a-5"), "b": (2, "b-2")}  # type: ignore[operator]


@pytest.fixture
def pg_table(postgres_dsn: str) -> Iterator[str]:
    name = f"wb_sink_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id text PRIMARY KEY, body jsonb NOT NULL, "
            "rev bigint NOT NULL, CHECK (body::text NOT LIKE '%poison%'))"
        )
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")


def _pg_rows(dsn: str, table: str) -> dict[str, tuple[int, object]]:
    with psycopg.connect(dsn) as conn:
        return {
            k: (v, body)
            for k, body, v in conn.execute(f"SELECT id, body, rev FROM {table}")
        }


def test_postgres_sink(postgres_dsn: str, pg_table: str) -> None:
    sink = PostgresSink(
        postgres_dsn,
        table=pg_table,
        key_column="id",
        value_column="body",
        version_column="rev",
    )
    _check_version_guard(sink, lambda: _pg_rows(postgres_dsn, pg_table))
    assert sink.round_trips == 3  # one statement per batch
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        sink.apply([_w("c", 9), _w("d", 9, "poison")])
    assert sink.is_permanent(caught.value)
    assert "c" not in _pg_rows(postgres_dsn, pg_table)  # the batch is one transaction
    assert not sink.is_permanent(psycopg.OperationalError("connection lost"))
    sink.close()


def test_postgres_sink_refuses_unsafe_identifiers(postgres_dsn: str) -> None:
    with pytest.raises(ValueError):
        PostgresSink(postgres_dsn, table="t; DROP TABLE x")
    with pytest.raises(ValueError):
        PostgresSink(postgres_dsn, table="t", key_column="k k")
    with pytest.raises(ValueError):
        PostgresSink(table="t")


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL, CHECK (value NOT LIKE '%poison%'))"
        )
    return path


def _sqlite_rows(path: Path) -> dict[str, tuple[int, object]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, value, version FROM t").fetchall()
    return {k: (v, value.strip('"')) for k, value, v in rows}


def test_sqlite_sink(sqlite_path: Path) -> None:
    sink = SQLiteSink(sqlite_path, table="t")
    _check_version_guard(sink, lambda: _sqlite_rows(sqlite_path))
    with pytest.raises(sqlite3.IntegrityError) as caught:
        sink.apply([_w("c", 9), _w("d", 9, "poison")])
    assert sink.is_permanent(caught.value)
    assert "c" not in _sqlite_rows(sqlite_path)
    sink.close()


def test_sqlite_sink_closed_from_another_thread(sqlite_path: Path) -> None:
    """A worker applies on its own thread; whoever stops it closes the sink
    (``freshcache demo --redis`` did, and failed: SQLite's default refuses a
    connection made on another thread)."""
    sink = SQLiteSink(sqlite_path, table="t")
    worker = threading.Thread(target=sink.apply, args=([_w("a", 1)],))
    worker.start()
    worker.join()
    assert _sqlite_rows(sqlite_path) == {"a": (1, "a-1")}
    sink.close()  # on this thread


def test_sqlalchemy_sink_on_sqlite(sqlite_path: Path) -> None:
    sink = SQLAlchemySink(f"sqlite:///{sqlite_path}", table="t")
    _check_version_guard(sink, lambda: _sqlite_rows(sqlite_path))
    with pytest.raises(sa.exc.IntegrityError) as caught:
        sink.apply([_w("c", 9), _w("d", 9, "poison")])
    assert sink.is_permanent(caught.value)
    sink.close()


def test_sqlalchemy_sink_on_postgres(postgres_dsn: str, pg_table: str) -> None:
    url = postgres_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    sink = SQLAlchemySink(
        url, table=pg_table, key_column="id", value_column="body", version_column="rev"
    )
    _check_version_guard(sink, lambda: _pg_rows(postgres_dsn, pg_table))
    sink.close()


def test_sqlalchemy_sink_portable_path(sqlite_path: Path) -> None:
    """The update-then-insert path other dialects take, run on SQLite."""
    sink = SQLAlchemySink(f"sqlite:///{sqlite_path}", table="t")
    sink._upsert_dialects = ()  # take the portable path
    _check_version_guard(sink, lambda: _sqlite_rows(sqlite_path))
    sink.close()


def test_callable_sink() -> None:
    seen: list[list[Write]] = []
    sink = CallableSink(seen.append, permanent=(KeyError,))
    sink.apply([_w("a", 1)])
    assert seen == [[_w("a", 1)]]
    assert sink.is_permanent(PermanentWriteError("no"))
    assert sink.is_permanent(KeyError("x"))
    assert not sink.is_permanent(OSError("x"))
    with pytest.raises(TypeError):
        CallableSink("not callable")  # type: ignore[arg-type]
