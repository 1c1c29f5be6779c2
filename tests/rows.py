"""A one-row PostgreSQL table (the source of truth) whose version tests bump."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def version_table(dsn: str, name: str) -> Iterator[str]:
    """``name`` (id, version) holding row 1 at version 1; dropped afterwards."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, version int)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 1)")
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {name}")


def read_version(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT version FROM {table} WHERE id = 1").fetchone()
        assert row is not None
        return int(row[0])


def commit_new_version(dsn: str, table: str) -> int:
    """UPDATE in one transaction, committed when this returns; the new version."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        row = conn.execute(
            f"UPDATE {table} SET version = version + 1 WHERE id = 1 RETURNING version"
        ).fetchone()
        assert row is not None
        return int(row[0])
