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
