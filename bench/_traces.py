"""Key-access traces for the hit-rate simulator (``python -m bench hitrate``).

A trace is ``NAME.keys.xz`` (or ``.gz``): one integer key per line, in access
order (format and provenance: ``../shared/traces/README.md``). The first read
decompresses and parses it; the keys are then cached as a flat array under
``bench/out/traces/`` (gitignored), which loads in a fraction of a second.
Keys are renumbered densely (0, 1, 2... in order of first use): the simulator
only compares keys, and small ints keep the arrays compact.
"""

from __future__ import annotations

import gzip
import lzma
import os
from array import array
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "traces"
CACHE_DIR = Path(__file__).resolve().parent / "out" / "traces"
SUFFIXES = (".keys.xz", ".keys.gz")


def trace_names(directory: Path) -> list[str]:
    """Every trace in ``directory``, by name (``arc-oltp``), sorted."""
    names = []
    for path in directory.iterdir():
        for suffix in SUFFIXES:
            if path.name.endswith(suffix):
                names.append(path.name[: -len(suffix)])
    return sorted(names)


def _source(directory: Path, name: str) -> Path:
    for suffix in SUFFIXES:
        path = directory / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no trace {name!r} in {directory}")


def load(directory: Path, name: str) -> array[int]:
    """The trace's keys, renumbered densely, as an ``array('l')``."""
    source = _source(directory, name)
    stat = source.stat()
    cached = CACHE_DIR / f"{name}-{stat.st_size}-{int(stat.st_mtime)}.i64"
    if cached.exists():
        keys = array("q")
        with cached.open("rb") as f:
            keys.frombytes(f.read())
        return keys
    opener = lzma.open if source.name.endswith(".xz") else gzip.open
    ids: dict[int, int] = {}
    keys = array("q")
    append = keys.append
    setdefault = ids.setdefault
    with opener(source, "rt") as f:
        for line in f:
            line = line.strip()
            if line:
                append(setdefault(int(line), len(ids)))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        keys.tofile(f)
    tmp.replace(cached)
    return keys
