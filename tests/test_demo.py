"""``freshcache demo`` end to end (embedded, Redis, PostgreSQL), and its checker."""

from __future__ import annotations

import re
import socket
from array import array

import pytest

from freshcache import cli
from freshcache.cli import main
from freshcache.cli.demo import _Log, count_stale

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
)


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, list[int]]:
    code = main([*SMALL, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    match = SUMMARY.search(out)
    assert match is not None, out
    numbers = [int(n.replace(",", "")) for n in match.groups()]
    requests, selects, uncached, _stale, checked = numbers
    assert requests > 0
    assert 0 < selects < uncached  # the cache saved queries
    assert uncached == requests  # one query per request without the cache
    assert 0 < checked <= requests
    for heading in ("with freshcache", "database only", "hit rate", "p50 / p99"):
        assert heading in out
    assert "stale reads" in out
    return out, numbers


def test_demo_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = _run(capsys)
    assert "memory (embedded) + SQLite" in out
    assert "SQLite" in out


def test_demo_with_redis(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    import redis

    out, _ = _run(capsys, "--redis", redis_url)
    assert "Redis 127.0.0.1" in out or "Redis localhost" in out
    version = re.search(r"keyspace demo:(r[0-9a-f]+):", out)
    assert version is not None, out
    with redis.Redis.from_url(redis_url) as client:  # cleared at the end
        assert list(client.scan_iter(match=f"demo:{version.group(1)}:*")) == []


def test_demo_with_postgres(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str
) -> None:
    import psycopg

    out, _ = _run(capsys, "--postgres", postgres_dsn)
    assert "PostgreSQL" in out
    suffix = re.search(r"tables fc_demo_\w+_([0-9a-f]+)", out)
    assert suffix is not None, out
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # dropped at the end
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
            (f"fc_demo_%_{suffix.group(1)}",),
        ).fetchone()
    assert left == (0,)


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


def _log(users: list[int], versions: list[int], at: list[float]) -> _Log:
    return _Log(user=array("q", users), version=array("q", versions), at=array("d", at))


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
    assert count_stale(reads, writes) == (2, 7)


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
