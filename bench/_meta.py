"""What a benchmark run records about itself: the commit it ran at and the
versions of the packages it measured."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess


def git_commit() -> str:
    """The short commit of the checkout the benchmarks run from."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"n/a: {type(exc).__name__}: {exc}"


def version_of(dist: str) -> str:
    """The installed version of ``dist``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
