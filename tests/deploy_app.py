"""A WSGI app for the preforking-server test (``test_gunicorn_preload.py``).

Like an application run with ``gunicorn --preload``: the cache is made, and
used, when the module is imported, in the master process, before gunicorn
forks its workers. ``/read`` reads one key; ``/stats`` tells which process
answered and what its cache counted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from freshcache import L1, Cache

cache = Cache(
    os.environ["DEPLOY_APP_REDIS_URL"], prefix=os.environ["DEPLOY_APP_PREFIX"], l1=L1()
)
cache.get_or_load("k", lambda: "start")  # at import: the master subscribes


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body: dict[str, Any] = {"pid": os.getpid()}
    if environ["PATH_INFO"] == "/read":
        body["value"] = cache.get("k", "missing")
    else:
        stats = cache.stats()
        body["bus_connect"] = stats.counts.get("bus_connect", 0)
        body["l1_hits"] = stats.l1.hits
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
