"""The demo's options, shared by its phases, workers and report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 5.0
    baseline_seconds: float | None = None  # None: seconds / 5, within [0.5, 2]
    readers: int = 8
    writers: int = 1
    write_interval: float = 0.02
    users: int = 2000
    teams: int = 50
    seed: int | None = None
    redis: str | None = None
    postgres: str | None = None
    processes: int | None = None  # None: 1 embedded, 2 with Redis
    write_seconds: float = 2.0  # the write-heavy phase, each side (with Redis)
