"""Prometheus ``/metrics`` beside a FastAPI (or Starlette) app.

One process::

    uvicorn --factory examples.prometheus_fastapi:make_app

Several workers: as with gunicorn, name an empty directory for
prometheus-client's multiprocess mode before anything imports it::

    PROMETHEUS_MULTIPROC_DIR=/tmp/freshcache-metrics \\
        uvicorn --workers 2 --factory examples.prometheus_fastapi:make_app

``/metrics`` then adds up every worker's counts (each worker copies its own
every second). ``REDIS_URL`` picks the Redis (default: the embedded cache).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import make_asgi_app

from freshcache import L1, AsyncCache
from freshcache.contrib.prometheus import instrument, scrape_registry


def make_app() -> FastAPI:
    cache = AsyncCache(os.environ.get("REDIS_URL"), prefix="example", l1=L1())
    exporter = instrument(cache, name="example")

    @cache.cached("user:{user_id}")
    async def get_user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "name": f"user {user_id}"}  # the database, here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with cache:
            yield
        exporter.close()

    app = FastAPI(lifespan=lifespan)
    app.mount("/metrics", make_asgi_app(scrape_registry()))

    @app.get("/user/{user_id}")
    async def user(user_id: int) -> dict[str, Any]:
        return await get_user(user_id)

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(make_app(), host="127.0.0.1", port=8000)
