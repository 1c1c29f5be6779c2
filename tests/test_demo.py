"""``freshcache demo`` end to end (embedded, Redis, PostgreSQL), and its checker."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from array import array
from typing import Any

import pytest

from freshcache import cli
from freshcache.cli import main
from freshcache.cli._demo_db import Log, Staleness, check, member_ids
from freshcache.cli._demo_naive import NaiveCache

SMALL = [
    "demo",
    "--seconds", "1",
    "--baseline-seconds", "0.3",
    "--readers", "3",
    "--users", "200",
    "--teams", "10",
    "--write-interval", "0.01",
    "--seed", "7",
]  # fmt: skip


SUMMARY = re.compile(
    r"freshcache demo: ([\d,]+) requests, hit rate [\d.]+%, ([\d,]+) database queries "
    r"instead of ([\d,]+) .*stale reads: ([\d,]+) of ([\d,]+)"
    r"(?:, [\d,]+ during bus delivery)? \(naive cache-aside: ([\d,]+) of ([\d,]+)\)"
)


HOT_KEY = re.compile(
    r"hot key: queries \(most at once\) naive ([\d,]+) \((\d+)\), "
    r"single flight ([\d,]+) \((\d+)\), stale-while-revalidate ([\d,]+) "
    r"\((\d+)\), early refresh ([\d,]+) \((\d+)\); reads that waited: "
)


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, list[int]]:
    code = main([*SMALL, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    match = SUMMARY.search(out)
    assert match is not None, out
    numbers = [int(n.replace(",", "")) for n in match.groups()]
    requests, selects, uncached, stale, checked, _, naive_checked = numbers
    assert requests > 0
    assert 0 < selects < uncached  # the cache saved queries
    assert uncached == requests  # one query per request without the cache
    assert checked == requests  # every read is checked: users and team members
    assert naive_checked > 0
    assert stale == 0, out  # freshcache serves no stale read
    for heading in ("with freshcache", "naive cache-aside", "database only"):
        assert heading in out
    for row in ("hit rate", "p50 / p99", "stale reads", "in team reads"):
        assert row in out
    hot = HOT_KEY.search(out)  # the "hot key expires" phase
    assert hot is not None, out
    _, _, flight, flight_peak, swr, swr_peak, early, early_peak = (
        int(n.replace(",", "")) for n in hot.groups()
    )
    assert min(flight, swr, early) >= 1  # each refreshed the key at least once
    assert flight_peak == swr_peak == 1  # never 2 queries at once
    # (an early refresh still running at expiry can overlap the miss's load)
    assert early_peak >= 1
    return out, numbers


def test_demo_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = _run(capsys)
    assert "memory (embedded) + SQLite" in out
    assert "1 process," in out


def test_demo_over_redis_and_postgres_in_two_processes(
    capsys: pytest.CaptureFixture[str], redis_url: str, postgres_dsn: str
) -> None:
    import psycopg
    import redis

    out, _ = _run(capsys, "--redis", redis_url, "--postgres", postgres_dsn)
    assert "L1 + Redis 127.0.0.1" in out or "L1 + Redis localhost" in out
    assert "PostgreSQL" in out
    assert "2 processes" in out  # the default with --redis
    assert "reads during bus" in out
    phase = re.search(r"write-behind: ([\d,]+) writes at .* lost: (\d+)", out)
    assert phase is not None, out  # the write-heavy phase ran
    assert int(phase.group(1).replace(",", "")) > 0
    assert phase.group(2) == "0"
    assert "cache behind its last" in out
    version = re.search(r"keyspaces demo:(r[0-9a-f]+):", out)
    assert version is not None, out
    with redis.Redis.from_url(redis_url) as client:  # cleared at the end
        for prefix in ("demo", "demo-naive"):
            head = f"{prefix}:{version.group(1)}:"
            left = list(client.scan_iter(match=head + "*"))
            # clear() keeps a keyspace's bookkeeping (versions, tag epoch)
            assert all(k.startswith(head.encode() + b"!") for k in left), left
        queue = f"demo:!wb:demo-{version.group(1)}:*"
        assert list(client.scan_iter(match=queue)) == []
    suffix = re.search(r"tables\s+fc_demo_\w+_([0-9a-f]+)", out)
    assert suffix is not None, out
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # dropped at the end
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
            (f"fc_demo_%_{suffix.group(1)}",),
        ).fetchone()
    assert left == (0,)


def test_demo_on_postgres_with_the_embedded_cache(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str
) -> None:
    out, _ = _run(capsys, "--postgres", postgres_dsn, "--seconds", "0.5")
    assert "memory (embedded) + PostgreSQL" in out


def test_processes_need_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--processes", "2"]) == 2
    assert "needs --redis" in capsys.readouterr().err


def test_install_hint_without_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_have_rich", lambda: False)
    assert main(["demo"]) == 1
    assert "pip install 'freshcache[cli]'" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bad_arguments_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--readers", "0"])
    assert "at least 1" in capsys.readouterr().err


def _log(
    users: list[int], versions: list[int], at: list[float], process: int = 0
) -> Log:
    return Log(
        process=process,
        user=array("i", users),
        version=array("i", versions),
        at=array("d", at),
    )


def _count(
    reads: list[Log], writes: list[Log], deliveries: tuple[Log, ...] = ()
) -> Staleness:
    return check(reads, writes, deliveries, users=20, teams=2)


def test_checker_counts_reads_older_than_a_completed_write() -> None:
    writes = [_log([1, 1, 2], [2, 3, 2], [1.0, 2.0, 1.0])]
    reads = [
        _log(
            [1, 1, 1, 1, 1, 2, 3],
            [1, 1, 2, 2, 3, 1, 1],
            # v1 before any write: fresh; v1 after v2 completed: stale;
            # v2 between the writes: fresh; v2 after v3: stale; v3: fresh;
            # user 2 at v1 exactly when its write completed: fresh (not before);
            # user 3 was never written: fresh.
            [0.5, 1.5, 1.5, 2.5, 2.5, 1.0, 9.0],
        )
    ]
    found = _count(reads, writes)
    assert (found.stale, found.reads, found.in_flight) == (2, 7, 0)


def test_a_team_read_is_stale_if_any_member_is() -> None:
    assert list(member_ids(1, 20, 2)) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert list(member_ids(2, 20, 2)) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    writes = [_log([4, 5], [2, 2], [1.0, 1.0])]  # user 4: team 1; user 5: team 2
    reads = _log([], [], [])
    team1 = [1] * 10
    fresh1 = team1.copy()
    fresh1[1] = 2  # user 4 is the second member of team 1
    for team, members, started in (
        (1, team1, 0.5),  # before the write: fresh
        (1, team1, 1.5),  # user 4 at v1 after v2 completed: stale
        (1, fresh1, 1.5),  # fresh
        (2, [1] * 10, 1.5),  # user 5 at v1: stale
        (2, [1, 1, 2, 1, 1, 1, 1, 1, 1, 1], 1.5),  # user 5 at v2: fresh
    ):
        reads.team.append(team)
        reads.team_at.append(started)
        reads.members.extend(members)
    found = _count([reads], writes)
    assert (found.stale_teams, found.team_reads) == (2, 5)
    reads.members.append(1)  # a team read whose members do not line up
    with pytest.raises(ValueError):
        _count([reads], writes)


def test_another_process_is_judged_from_when_the_invalidation_reached_it() -> None:
    writes = [_log([1, 2], [2, 2], [1.0, 1.0], process=0)]
    deliveries = [_log([1, 2], [2, 2], [1.2, 1.1], process=1)]  # reached process 1
    reads = [
        _log([1, 2], [1, 1], [1.1, 1.1], process=0),  # the writer's process: stale
        # process 1: user 1 read before the delivery (in flight), user 2 at it
        _log([1, 2], [1, 1], [1.1, 1.1], process=1),
        _log([1, 2], [1, 1], [1.3, 1.3], process=1),  # after: stale
        _log([3], [1], [1.3], process=2),  # never written: fresh
    ]
    found = _count(reads, writes, tuple(deliveries))
    assert (found.stale_users, found.in_flight) == (4, 2)
    assert found.delays == pytest.approx([0.2, 0.1])
    no_delivery = _count(reads, writes)  # every write complete when it returned
    assert (no_delivery.stale_users, no_delivery.in_flight) == (6, 0)


class _RacyDatabase:
    """A write (commit, then the naive invalidation) lands while a read loads."""

    def __init__(self) -> None:
        self.version = 1
        self.naive: NaiveCache | None = None

    def fetch_user(self, user_id: int) -> dict[str, Any]:
        loaded = {"id": user_id, "version": self.version}
        if self.version == 1:  # the writer commits and invalidates mid-load
            self.version = 2
            assert self.naive is not None
            self.naive.updated(user_id, 1)
        return loaded


def test_the_naive_cache_stores_what_it_loaded_before_a_write() -> None:
    db = _RacyDatabase()
    naive = NaiveCache(db, None, version="v", ttl=30, local_ttl=None)  # type: ignore[arg-type]
    db.naive = naive
    assert naive.get_user(1)["version"] == 1  # loaded before the write
    assert naive.get_user(1)["version"] == 1  # and served after it: stale
    assert db.version == 2


def test_unreachable_database_fails_cleanly_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/test"
    assert main(["demo", "--seconds", "0.1", "--postgres", dsn]) == 1
    out = capsys.readouterr()
    assert "freshcache demo failed" in out.out
    assert "s3cret-pw" not in out.out + out.err


@pytest.mark.parametrize("module", ["freshcache", "freshcache.cli"])
def test_python_dash_m_runs_the_command_line(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: freshcache demo")
    assert "--processes" in done.stdout


def test_demo_on_a_redis_cluster_with_sqlite(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``freshcache demo --redis redis+cluster://...`` on a cluster of its own
    (``tests/cluster.py``), the database a SQLite file: every phase runs,
    0 stale reads (``_run``), 0 acknowledged writes lost, the nodes named
    without credentials."""
    from tests.cluster import own_redis_cluster

    with own_redis_cluster(nodes=3) as cluster:
        url = f"redis+cluster://{','.join(cluster.addresses)}/"
        out, _ = _run(capsys, "--redis", url)
    assert f"L1 + Redis {url}" in out.replace("\n", "")
    assert "SQLite" in out
    phase = re.search(r"write-behind: ([\d,]+) writes at .* lost: (\d+)", out)
    assert phase is not None, out
    assert int(phase.group(1).replace(",", "")) > 0
    assert phase.group(2) == "0"
