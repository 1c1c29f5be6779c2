"""Prometheus ``/metrics`` beside a WSGI app (plain WSGI here; Flask and
Django mount the same ``make_wsgi_app``), with gunicorn workers.

One process::

    gunicorn 'examples.prometheus_wsgi:make_app()'

Several workers: prometheus-client's multiprocess mode wants an empty
directory, named before anything imports ``prometheus_client``::

    rm -rf /tmp/freshcache-metrics && mkdir /tmp/freshcache-metrics
    PROMETHEUS_MULTIPROC_DIR=/tmp/freshcache-metrics \\
        gunicorn --workers 2 'examples.prometheus_wsgi:make_app()'
    curl localhost:8000/user/1; curl localhost:8000/metrics

Each worker copies its cache's counts to that directory every second (and
when it exits); ``/metrics``, whichever worker serves it, adds up every
worker's. ``REDIS_URL`` picks the Redis (default: the embedded cache),
``CACHE_PREFIX`` its key prefix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import make_wsgi_app

from freshcache import L1, Cache
from freshcache.contrib.prometheus import instrument, scrape_registry

StartResponse = Callable[..., Any]


def make_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app: ``/user/<id>`` reads through the cache, ``/metrics`` is
    Prometheus's. Made in each worker (gunicorn calls the factory there)."""
    prefix = os.environ.get("CACHE_PREFIX", "example")
    cache = Cache(os.environ.get("REDIS_URL"), prefix=prefix, l1=L1())
    interval = float(os.environ.get("METRICS_INTERVAL", "1"))
    instrument(cache, name="example", interval=interval)
    metrics = make_wsgi_app(scrape_registry())

    @cache.cached("user:{user_id}")
    def get_user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "name": f"user {user_id}"}  # the database, here

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path.startswith("/user/") and path[6:].isdigit():
            body = {"user": get_user(int(path[6:])), "pid": os.getpid()}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return app


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, make_app()) as server:
        print("http://127.0.0.1:8000/user/1 and /metrics")
        server.serve_forever()
