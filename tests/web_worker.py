"""A second worker process for the web integrations' tests: serves an
example app (its own cache, the same Redis and database) through the
framework's test client, one request per message on a pipe; and the check
both frameworks' tests make with it (``a_commit_refreshes_the_worker``)."""

from __future__ import annotations

import json
import multiprocessing
import runpy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

Get = Callable[..., Any]  # (path, headers=None) -> (status, headers, body)

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
        headers = {k.lower(): v for k, v in reply.headers.items()}
        conn.send((reply.status_code, headers, bytes(body)))


@contextmanager
def running(example: str, args: tuple[Any, ...]) -> Iterator[Get]:
    """``example`` served in a spawned process: yields ``get(path,
    headers=None) -> (status, headers (lower-case names), body)``."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, example, args))
    process.start()
    assert ours.poll(60), "the worker did not start"
    assert ours.recv() == "ready"

    def get(path: str, headers: dict[str, str] | None = None) -> Any:
        ours.send((path, headers or {}))
        assert ours.poll(60), "the worker did not answer"
        return ours.recv()

    try:
        yield get
    finally:
        ours.send(None)
        ours.poll(30)
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()


def a_commit_refreshes_the_worker(
    get: Get, example: str, redis_url: str, key_prefix: str, database_url: str
) -> None:
    """The worker serves product 1 and answers its ETag with 304; this
    process commits a price change through an ORM session watched by the
    example's Tracker (no manual invalidation); the worker's next answer is
    the new body with a new ETag."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session, sessionmaker

    from freshcache import Cache

    module = runpy.run_path(str(EXAMPLES / example))
    engine = create_engine(database_url)
    module["Base"].metadata.create_all(engine)
    with Session(engine) as session:
        session.add(module["Product"](id=1, name="kettle", price=2500))
        session.commit()
    status, headers, body = get("/products/1")
    assert status == 200
    assert json.loads(body)["price"] == 2500
    etag = headers["etag"]
    assert get("/products/1", {"If-None-Match": etag})[0] == 304
    with Cache(redis_url, prefix=key_prefix) as writer:
        sessions = sessionmaker(engine)
        module["track_products"](writer).attach(sessions)
        with sessions() as session:
            session.get(module["Product"], 1).price = 2200
            session.commit()
    engine.dispose()
    # The worker's L1 may serve the old response for its staleness bound
    # (100 ms) after the invalidation: ask until it has gone, however long
    # a loaded machine takes to get there.
    for _ in range(600):
        status, headers, body = get("/products/1", {"If-None-Match": etag})
        if status != 304:
            break
        time.sleep(0.05)
    assert status == 200
    assert json.loads(body)["price"] == 2200
    assert headers["etag"] != etag
