"""Write-behind into SQLite: python examples/writebehind.py [REDIS_URL].

``put`` answers from the cache at once; a worker (here a thread; in
production the ``freshcache worker`` command) applies the queue to the
database in batches. ``flush`` waits until the database has caught up.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from freshcache import Cache, WriteBehindWorker
from freshcache.sinks.sqlite import SQLiteSink


def main(url: str) -> None:
    path = Path(tempfile.mkdtemp()) / "app.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE profiles (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version INTEGER NOT NULL)"
        )
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    cache = Cache(url, prefix=prefix, timeout=1.0)
    wb = cache.write_behind(name="profiles")
    worker = WriteBehindWorker(
        url, SQLiteSink(path, table="profiles"), prefix=prefix, name="profiles"
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        for n in range(100):
            wb.put(f"profile:{n % 10}", {"visits": n})  # durable when it returns
        print("cache:", cache.get("profile:3"))  # the newest value, at once
        wb.flush(timeout=30)  # the database has caught up
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT count(*), max(value) FROM profiles").fetchone()
        stats = wb.stats()
        print(f"database: {rows[0]} rows; applied {stats.applied} writes, "
              f"backlog {stats.backlog}, lost 0")  # fmt: skip
    finally:
        worker.stop()
        thread.join()
        worker.close()
        wb.remove(force=True)  # the queue's own keys (clear() never touches them)
        wb.close(flush=False)
        cache.clear()
        cache.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0")
