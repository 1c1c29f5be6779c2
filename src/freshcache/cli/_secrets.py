"""Connection strings that carry a password: from an option, a file or the
environment.

A password given on the command line (``--redis redis://:pw@host``) can be
read by every user of the machine (``ps``, ``/proc/PID/cmdline``) and lands
in shell histories. Each such option therefore has two other spellings:
``--NAME-file PATH`` (the first line of a file, e.g. a mounted secret) and an
environment variable. Precedence: the option or its file (giving both is an
error), then the variable. Nothing here ever prints the value.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final


class UsageError(Exception):
    """A command line that cannot run; its message never holds a secret."""


@dataclass(frozen=True)
class SecretOption:
    """``--{flag}`` VALUE, ``--{flag}-file`` PATH or ``${variable}``."""

    flag: str  # "redis"
    metavar: str  # "URL"
    variable: str  # "FRESHCACHE_REDIS_URL"

    @property
    def dest(self) -> str:
        return self.flag.replace("-", "_")

    def add(self, group: Any, what: str) -> None:
        """Add both options to ``group`` (a parser or a group of one)."""
        group.add_argument(
            f"--{self.flag}",
            metavar=self.metavar,
            default=None,
            help=f"{what} (visible in ps: prefer --{self.flag}-file or "
            f"{self.variable})",
        )
        group.add_argument(
            f"--{self.flag}-file",
            metavar="PATH",
            default=None,
            help=f"read the {self.metavar} from the first line of PATH",
        )

    def given(self, args: argparse.Namespace) -> bool:
        """Given on the command line (the value or its file)."""
        return (
            getattr(args, self.dest, None) is not None
            or getattr(args, f"{self.dest}_file", None) is not None
        )

    def resolve(self, args: argparse.Namespace, *, environ: bool = True) -> str | None:
        """The value from the option, its file or (``environ``) the
        environment variable; None when none says. Raises ``UsageError``."""
        value: str | None = getattr(args, self.dest, None)
        path: str | None = getattr(args, f"{self.dest}_file", None)
        if value is not None and path is not None:
            raise UsageError(f"give --{self.flag} or --{self.flag}-file, not both")
        if path is not None:
            return _read(path, f"--{self.flag}-file")
        if value is not None:
            return _nonempty(value, f"--{self.flag}")
        if not environ:
            return None
        variable = os.environ.get(self.variable)
        if variable is None or not variable.strip():  # set but empty: not set
            return None
        return variable.strip()


def _nonempty(value: str, where: str) -> str:
    if not value.strip():
        raise UsageError(f"{where} is empty")
    return value.strip()


def _read(path: str, where: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # the message names the path only
        raise UsageError(
            f"{where}: cannot read {path!r} ({type(exc).__name__})"
        ) from None
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise UsageError(f"{where}: {path!r} is empty (the value is its first line)")
    return first.strip()


REDIS: Final = SecretOption("redis", "URL", "FRESHCACHE_REDIS_URL")
POSTGRES: Final = SecretOption("postgres", "DSN", "FRESHCACHE_POSTGRES_DSN")
SQLALCHEMY: Final = SecretOption("sqlalchemy", "URL", "FRESHCACHE_SQLALCHEMY_URL")
