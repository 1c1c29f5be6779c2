"""The library's loggers: a NullHandler on ``freshcache``, no handler or
level set anywhere else (``basicConfig`` is the application's call), and
every logger under ``freshcache.<area>``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import freshcache

SRC = Path(freshcache.__file__).parent
AREAS = {"redis", "bus", "engine", "writebehind", "worker"}


def test_importing_freshcache_configures_no_logging() -> None:
    code = (
        "import logging, freshcache, freshcache.contrib.sqlalchemy\n"
        "from freshcache import Cache\n"
        "Cache().close()\n"
        "root = logging.getLogger()\n"
        "assert root.handlers == [] and root.level == logging.WARNING, root\n"
        "lib = logging.getLogger('freshcache')\n"
        "assert [type(h).__name__ for h in lib.handlers] == ['NullHandler']\n"
        "assert lib.level == logging.NOTSET and lib.propagate\n"
        "loggers = logging.Logger.manager.loggerDict.items()\n"
        "names = [n for n, v in loggers if isinstance(v, logging.Logger)]\n"
        "print('\\n'.join(sorted(names)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert "freshcache.engine" in names
    assert "freshcache.contrib.sqlalchemy" in names
    for name in (n for n in names if n.startswith("freshcache")):
        parts = name.split(".")
        assert parts[0] == "freshcache"
        assert (
            len(parts) == 1
            or parts[1] in AREAS
            or (parts[1] == "contrib" and len(parts) == 3)
        ), name


def test_no_module_logs_under_its_own_module_name() -> None:
    """Loggers are named by area (stable, documented), not by module."""
    found = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        found += [
            f"{path.relative_to(SRC)}: {m}"
            for m in re.findall(r"getLogger\(([^)]*)\)", text)
            if "__name__" in m
        ]
        if "basicConfig" in text and "cli" not in path.parts:
            found.append(f"{path.relative_to(SRC)}: basicConfig")
    assert found == []


def test_a_log_holds_repeats_back_and_reports_their_count() -> None:
    """``Log`` on a fake clock: one record, then after the interval one that
    says how many were held back, in its message and its fields."""
    import logging

    from freshcache._core.logs import LogEvent
    from freshcache._inproc.logs import Log
    from freshcache.testing import FakeClock

    clock = FakeClock()
    log = Log("redis", tier="redis", now=clock.monotonic)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("freshcache.redis")
    handler = Keep()
    logger.addHandler(handler)
    try:
        for _ in range(30):
            log.warning(LogEvent.DECODE_ERROR, "bad entry (%s)", "checksum",
                        error_class="decode:checksum")  # fmt: skip
            clock.advance(0.5)
        log.info(LogEvent.CIRCUIT_CLOSED, "closed")  # INFO: never held back
        log.info(LogEvent.CIRCUIT_CLOSED, "closed")
    finally:
        logger.removeHandler(handler)
    warnings = [r for r in seen if r.levelno == logging.WARNING]
    assert [r.freshcache_repeated for r in warnings] == [0, 19]  # type: ignore[attr-defined]
    assert warnings[1].getMessage() == (
        "bad entry (checksum) (repeated 19 times in the last 10 s)"
    )
    assert warnings[1].freshcache_error_class == "decode:checksum"  # type: ignore[attr-defined]
    assert warnings[0].filename == "test_logging_setup.py"  # the caller's line
    assert len([r for r in seen if r.levelno == logging.INFO]) == 2
