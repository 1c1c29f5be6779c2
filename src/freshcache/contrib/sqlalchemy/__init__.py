"""freshcache for SQLAlchemy: invalidate what committed ORM changes touched
(``pip install 'freshcache[sqlalchemy]'``; ``docs/sqlalchemy.md``).

``import freshcache`` never imports SQLAlchemy; this package does.
"""

from __future__ import annotations

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "freshcache.contrib.sqlalchemy needs SQLAlchemy 2: "
        "pip install 'freshcache[sqlalchemy]'"
    ) from exc

from freshcache.contrib.sqlalchemy.tracker import Tracker, UntrackedWriteError

__all__ = ["Tracker", "UntrackedWriteError"]
