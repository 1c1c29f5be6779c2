"""The demo's truth and its record: the database, the logs, the consistency checker.

The database is a temporary SQLite file (WAL) or tables of the demo's own in
PostgreSQL. Users never change team: user ``i`` is in team ``1 + i % teams``.

The checker (Polaris-style) runs on the logs afterwards. A writer logs
(user, version, time its commit *and* invalidation returned); a reader logs
(user, version seen, time its read *started*), and for a team read the
version of every member it showed. A read is stale if it shows an older
version of a user than one whose write had completed before the read started.
A write is complete for another process when its invalidation reached that
process (the event handler ran there): until then the invalidation is in
flight on the bus, which is the window the coherent-L1 guarantee allows
(docs/coherence.md, C2). Reads inside it
are counted as ``in_flight``, apart from the stale ones.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import tempfile
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any


def _where_postgres(dsn: str) -> str:
    """host:port/dbname, never the password."""
    import psycopg.conninfo

    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host, port = info.get("host", "localhost"), info.get("port", 5432)
    return f"{host}:{port}/{info.get('dbname', '')}"


class Session:
    """One thread's database connection and the SELECTs its loaders ran."""

    __slots__ = ("conn", "selects")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.selects = 0


class Database:
    """The truth: a temporary SQLite file (WAL) or PostgreSQL; a connection a thread."""

    def __init__(
        self, postgres: str | None, *, suffix: str = "", directory: str = ""
    ) -> None:
        self._local = threading.local()
        self._postgres = postgres
        self._dir: Path | None = None
        self._suffix = suffix
        self._created = False  # PostgreSQL: tables to drop at the end
        if postgres is not None:  # tables of our own, dropped at the end
            suffix = self._suffix = suffix or secrets.token_hex(4)
            self.users, self.teams = (
                f"fc_demo_users_{suffix}",
                f"fc_demo_teams_{suffix}",
            )
            self.label, self._p = f"PostgreSQL {_where_postgres(postgres)}", "%s"
            self.where = f"tables {self.users}, {self.teams} (dropped)"
        else:
            self._dir = Path(directory or tempfile.mkdtemp(prefix="freshcache-demo-"))
            self.users, self.teams = "users", "teams"
            self.label, self._p = "SQLite", "?"
            self.where = f"SQLite WAL file {self._dir / 'demo.sqlite3'} (removed)"
        u, t, p = self.users, self.teams, self._p
        self._user_sql = (
            f"SELECT id, name, email, team_id, version FROM {u} WHERE id = {p}"
        )
        self._team_sql = (
            f"SELECT t.id, t.name, count(u.id) FROM {t} t LEFT JOIN {u} u "
            f"ON u.team_id = t.id WHERE t.id = {p} GROUP BY t.id, t.name"
        )
        self._members_sql = (
            f"SELECT id, name, version FROM {u} WHERE team_id = {p} ORDER BY id"
        )
        self._bump_sql = (
            f"UPDATE {u} SET version = version + 1 WHERE id = {p} "
            "RETURNING version, team_id"
        )

    def spec(self) -> tuple[str | None, str, str]:
        """What another process needs to open the same database (``attach``)."""
        return self._postgres, self._suffix, str(self._dir or "")

    @classmethod
    def attach(cls, spec: tuple[str | None, str, str]) -> Database:
        """The database ``spec`` names, set up elsewhere (never torn down here)."""
        return cls(spec[0], suffix=spec[1], directory=spec[2])

    def connect(self) -> Any:
        """A new autocommit connection to this database (the caller closes it)."""
        if self._postgres is not None:
            import psycopg

            return psycopg.connect(self._postgres, autocommit=True)
        assert self._dir is not None
        path = self._dir / "demo.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def session(self) -> Session:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session(self.connect())
        return session

    def close_session(self) -> None:
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            self._local.session = None
            session.conn.close()

    def setup(self, users: int, teams: int) -> None:
        u, t, p = self.users, self.teams, self._p
        conn = self.connect()
        self._created = True
        try:
            if self._postgres is None:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(
                f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE {u} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email "
                "TEXT NOT NULL, team_id INTEGER NOT NULL, version INTEGER NOT NULL)"
            )
            conn.execute(f"CREATE INDEX {u}_team ON {u} (team_id)")
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.executemany(
                f"INSERT INTO {t} VALUES ({p}, {p})",
                [(i, f"team {i}") for i in range(1, teams + 1)],
            )
            cur.executemany(
                f"INSERT INTO {u} VALUES ({p}, {p}, {p}, {p}, {p})",
                [
                    (i, f"user {i}", f"user{i}@example.com", 1 + i % teams, 1)
                    for i in range(1, users + 1)
                ],
            )
            cur.execute("COMMIT")
        finally:
            conn.close()

    def teardown(self) -> None:
        self.close_session()
        if self._postgres is not None and self._created:
            with self.connect() as conn:
                conn.execute(f"DROP TABLE IF EXISTS {self.users}, {self.teams}")
        elif self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def fetch_user(self, user_id: int) -> dict[str, Any]:
        session = self.session()
        session.selects += 1
        row = session.conn.execute(self._user_sql, (user_id,)).fetchone()
        keys = ("id", "name", "email", "team_id", "version")
        return dict(zip(keys, row, strict=True))

    def fetch_team(self, team_id: int) -> dict[str, Any]:
        session = self.session()
        session.selects += 1
        row = session.conn.execute(self._team_sql, (team_id,)).fetchone()
        return {"id": row[0], "name": row[1], "members": row[2]}

    def fetch_team_members(self, team_id: int) -> list[dict[str, Any]]:
        """The team's members, by id."""
        session = self.session()
        session.selects += 1
        rows = session.conn.execute(self._members_sql, (team_id,)).fetchall()
        return [{"id": r[0], "name": r[1], "version": r[2]} for r in rows]

    def bump_user(self, user_id: int) -> tuple[int, int]:
        """One transaction: ``version += 1``; returns the new version, committed,
        and the user's team."""
        conn = self.session().conn
        conn.execute("BEGIN IMMEDIATE" if self._postgres is None else "BEGIN")
        try:
            rows = conn.execute(self._bump_sql, (user_id,)).fetchall()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return int(rows[0][0]), int(rows[0][1])


def member_ids(team: int, users: int, teams: int) -> range:
    """The ids of ``team``'s members, in order (user ``i`` is in ``1 + i % teams``)."""
    return range((team - 1) or teams, users + 1, teams)


@dataclass
class Log:
    """One thread's record, or the invalidations that reached one process.

    User reads: ``at`` is when each read started. Team reads: ``team_at``
    likewise, and ``members`` the versions each showed, in member order,
    concatenated. Writes: ``at`` is when the commit and the invalidation had
    both returned. Deliveries: when another process's write reached this one.
    """

    process: int = 0
    requests: int = 0
    hits: int = 0
    selects: int = 0
    errors: int = 0
    user: array[int] = field(default_factory=lambda: array("i"))
    version: array[int] = field(default_factory=lambda: array("i"))
    at: array[float] = field(default_factory=lambda: array("d"))
    team: array[int] = field(default_factory=lambda: array("i"))
    team_at: array[float] = field(default_factory=lambda: array("d"))
    members: array[int] = field(default_factory=lambda: array("i"))
    seconds: dict[str, array[float]] = field(default_factory=dict)

    def time(self, path: str, seconds: float) -> None:
        samples = self.seconds.get(path)
        if samples is None:
            samples = self.seconds[path] = array("d")
        samples.append(seconds)


@dataclass
class Phase:
    """One phase's logs from every process, merged."""

    elapsed: float = 0.0
    reads: list[Log] = field(default_factory=list)
    writes: list[Log] = field(default_factory=list)
    deliveries: list[Log] = field(default_factory=list)
    errors: int = 0  # cache errors (freshcache: its stats; naive: failed SETs)
    counts: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Phase) -> None:
        self.elapsed = max(self.elapsed, other.elapsed)
        self.reads += other.reads
        self.writes += other.writes
        self.deliveries += other.deliveries
        self.errors += other.errors
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n

    @property
    def writes_done(self) -> int:
        return sum(len(log.user) for log in self.writes)

    def total(self, what: str, logs: Sequence[Log] | None = None) -> int:
        return sum(getattr(log, what) for log in (self.reads if logs is None else logs))

    def p50_p99(self, path: str) -> str:
        return p50_p99(
            [x for log in self.reads + self.writes for x in log.seconds.get(path, ())]
        )


def p50_p99(samples: list[float]) -> str:
    """The median and 99th percentile of ``samples`` (seconds), readable."""
    if not samples:
        return "-"
    samples.sort()
    picks = (samples[min(len(samples) - 1, int(q * len(samples)))] for q in (0.5, 0.99))
    return " / ".join(
        f"{s * 1e6:.0f} µs" if abs(s) < 1e-3 else f"{s * 1e3:.3g} ms" for s in picks
    )


@dataclass(frozen=True)
class Staleness:
    """What the checker found."""

    user_reads: int = 0
    stale_users: int = 0
    team_reads: int = 0
    stale_teams: int = 0
    in_flight: int = 0  # older than a completed write not yet delivered here
    delays: list[float] = field(default_factory=list)  # delivery after completion

    @property
    def reads(self) -> int:
        return self.user_reads + self.team_reads

    @property
    def stale(self) -> int:
        return self.stale_users + self.stale_teams


# user -> (completion times ascending, highest version completed by then)
_Index = dict[int, tuple[list[float], list[int]]]


def _index(events: Iterable[tuple[int, float, int]]) -> _Index:
    by_user: dict[int, list[tuple[float, int]]] = {}
    for user, done, version in events:
        by_user.setdefault(user, []).append((done, version))
    index: _Index = {}
    for user, done_versions in by_user.items():
        done_versions.sort()
        index[user] = (
            [t for t, _ in done_versions],
            list(accumulate((v for _, v in done_versions), max)),
        )
    return index


def check(
    reads: Iterable[Log],
    writes: Iterable[Log],
    deliveries: Iterable[Log] = (),
    *,
    users: int,
    teams: int,
) -> Staleness:
    """Count stale user and team reads (a team read is stale if any member is).

    Without ``deliveries`` a write is complete everywhere when it returned.
    With them, for a reader in another process than the writer, it is
    complete when it reached the reader's process (or when it returned, if it
    never did); reads stale only by the first measure are ``in_flight``.
    ``delays`` are the deliveries' seconds after their write returned.
    """
    done = [
        (user, at, version, w.process)
        for w in writes
        for user, version, at in zip(w.user, w.version, w.at, strict=True)
    ]
    everywhere = _index((user, at, version) for user, at, version, _ in done)
    reached: dict[int, dict[tuple[int, int], float]] = {}
    for d in deliveries:
        if not d.user:
            continue
        got = reached.setdefault(d.process, {})
        for user, version, at in zip(d.user, d.version, d.at, strict=True):
            got[user, version] = min(at, got.get((user, version), at))
    completed = {(user, version): at for user, at, version, _ in done}
    delays = [
        at - completed[key]
        for got in reached.values()
        for key, at in got.items()
        if key in completed
    ]
    known = {
        process: _index(
            (u, t if p == process else got.get((u, v), t), v) for u, t, v, p in done
        )
        for process, got in reached.items()
    }
    sizes = [len(member_ids(t, users, teams)) for t in range(teams + 1)]
    written = [  # (position, id) of each member with a write to check against
        [(i, u) for i, u in enumerate(member_ids(t, users, teams)) if u in everywhere]
        for t in range(teams + 1)
    ]
    counts = [0, 0, 0, 0, 0]  # user reads, stale, team reads, stale, in flight
    for r in reads:
        index = known.get(r.process, everywhere)
        indexes = (index,) if index is everywhere else (index, everywhere)
        counts[0] += len(r.user)
        for user, seen, started in zip(r.user, r.version, r.at, strict=True):
            for k, idx in enumerate(indexes):
                found = idx.get(user)
                if found is not None:
                    i = bisect_left(found[0], started)
                    if i and found[1][i - 1] > seen:
                        counts[1 + 3 * k] += 1
                        break
        counts[2] += len(r.team)
        offset, shown = 0, r.members
        for team, started in zip(r.team, r.team_at, strict=True):
            for k, idx in enumerate(indexes):
                if _stale_team(idx, written[team], shown, offset, started):
                    counts[3 + k] += 1
                    break
            offset += sizes[team]
        if offset != len(shown):
            raise ValueError("team reads and member versions do not line up")
    user_reads, stale_users, team_reads, stale_teams, in_flight = counts
    return Staleness(
        user_reads, stale_users, team_reads, stale_teams, in_flight, delays
    )


def _stale_team(
    index: _Index,
    members: list[tuple[int, int]],
    shown: Sequence[int],
    offset: int,
    started: float,
) -> bool:
    """Does a team read show any member older than a completed write?"""
    for position, user in members:
        times, versions = index[user]
        i = bisect_left(times, started)
        if i and versions[i - 1] > shown[offset + position]:
            return True
    return False
