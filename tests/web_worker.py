"""A second worker process for tests/test_web_contrib.py: serves an example
app (its own cache, the same Redis and database) through the framework's
test client, one request per message on a pipe."""

from __future__ import annotations

import runpy
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).parent.parent / "examples"


def serve(conn: Connection, example: str, args: tuple[Any, ...]) -> None:
    module = runpy.run_path(str(EXAMPLES / example))
    app = module["make_app"](*args)
    if example.startswith("fastapi"):
        from fastapi.testclient import TestClient

        with TestClient(app) as client:
            _loop(conn, client)
    else:
        _loop(conn, app.test_client())
        module["close_app"](app)


def _loop(conn: Connection, client: Any) -> None:
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            conn.send("bye")
            return
        path, headers = message
        reply = client.get(path, headers=headers)
        body = reply.content if hasattr(reply, "content") else reply.data
        conn.send((reply.status_code, dict(reply.headers), bytes(body)))
