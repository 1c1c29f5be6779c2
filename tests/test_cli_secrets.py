"""The command line reads Redis URLs and database DSNs from a file or the
environment as well as from an option, and never prints them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from freshcache import Cache
from freshcache.cli import main
from tests.servers import own_redis_server

PASSWORD = "pw-SECRET-91c4"
VARIABLES = (
    "FRESHCACHE_REDIS_URL",
    "FRESHCACHE_POSTGRES_DSN",
    "FRESHCACHE_SQLALCHEMY_URL",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def _table(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE t (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL)"
        )


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM t").fetchone()[0])


@pytest.mark.parametrize("how", ["file", "environment"])
def test_worker_takes_a_password_url_from_a_file_or_the_environment(
    how: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue("redis_url")  # skip (or fail in CI) without Redis
    database = tmp_path / "db.sqlite"
    _table(database)
    with own_redis_server("--requirepass", PASSWORD) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        with Cache(url, prefix="cli", timeout=1.0) as cache:
            wb = cache.write_behind(name="q", allow_eviction=True)
            wb.put_many({"a": 1, "b": 2})
            wb.close(flush=False)
        command = [
            sys.executable, "-m", "freshcache.cli", "worker", "--prefix", "cli",
            "--name", "q", "--sqlite", str(database), "--table", "t",
            "--block", "0", "--until-idle",
        ]  # fmt: skip
        environment = {k: v for k, v in os.environ.items() if k not in VARIABLES}
        if how == "file":
            secret = tmp_path / "redis-url"
            secret.write_text(url + "\n")
            command += ["--redis-file", str(secret)]
        else:
            environment["FRESHCACHE_REDIS_URL"] = url
        assert PASSWORD not in " ".join(command)  # what ps shows
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env=environment
        )
    assert result.returncode == 0, result.stderr
    assert _rows(database) == 2
    assert "applied 2" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_worker_takes_the_database_from_the_environment(
    redis_url: str, key_prefix: str, redis_cleanup: None, tmp_path: Path
) -> None:
    database = tmp_path / "db.sqlite"
    _table(database)
    with Cache(redis_url, prefix=key_prefix, timeout=1.0) as cache:
        wb = cache.write_behind(name="q")
        wb.put("a", 1)
        wb.close(flush=False)
    environment = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    environment["FRESHCACHE_REDIS_URL"] = redis_url
    environment["FRESHCACHE_SQLALCHEMY_URL"] = f"sqlite:///{database}"
    result = subprocess.run(
        [sys.executable, "-m", "freshcache.cli", "worker", "--prefix", key_prefix,
         "--name", "q", "--table", "t", "--block", "0", "--until-idle"],
        capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _rows(database) == 1


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_usage_errors_say_what_is_missing_and_show_no_secret(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    base = ("worker", "--table", "t")
    code, out = _run(capsys, *base, "--sqlite", "x.db")
    assert code == 2
    assert "FRESHCACHE_REDIS_URL" in out  # no Redis given
    secret = tmp_path / "url"
    secret.write_text(f"redis://:{PASSWORD}@127.0.0.1:1/0\n")
    with pytest.raises(SystemExit):  # argparse: one of --redis, --redis-file
        main([*base, "--redis", "redis://x", "--redis-file", str(secret)])
    code, out = _run(capsys, *base, "--redis-file", str(secret))
    assert code == 2
    assert "say which database" in out  # no database anywhere
    monkeypatch.setenv("FRESHCACHE_POSTGRES_DSN", f"password={PASSWORD}")
    monkeypatch.setenv("FRESHCACHE_SQLALCHEMY_URL", f"sqlite:///{PASSWORD}")
    code, out = _run(capsys, *base, "--redis-file", str(secret))
    assert code == 2
    assert "both are set" in out
    missing = tmp_path / "absent"
    code, out = _run(capsys, *base, "--redis-file", str(missing), "--sqlite", "x")
    assert code == 2
    assert str(missing) in out
    assert "FileNotFoundError" in out
    empty = tmp_path / "empty"
    empty.write_text("\n")
    code, out = _run(capsys, *base, "--redis-file", str(empty), "--sqlite", "x")
    assert code == 2
    assert "is empty" in out
    code, out = _run(capsys, "demo", "--postgres-file", str(missing))
    assert code == 2
    assert str(missing) in out
    assert PASSWORD not in capsys.readouterr().out


def test_help_names_the_files_and_variables(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("worker", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for needed in ("--redis-file", "FRESHCACHE_REDIS_URL", "--postgres-file",
                       "FRESHCACHE_POSTGRES_DSN", "ps"):  # fmt: skip
            assert needed in text, (command, needed)
        if command == "worker":
            assert "FRESHCACHE_SQLALCHEMY_URL" in text
            assert "--sqlalchemy-file" in text
