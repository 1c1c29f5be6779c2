"""A FastAPI app whose product pages are cached, with ETags, and refreshed
in every worker when an ORM session commits a change.

    DATABASE_URL=sqlite:///shop.db REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn --workers 2 --factory examples.fastapi_app:make_app

A writer (another process, a script, an admin app) changes products through
a SQLAlchemy session watched by freshcache's ``Tracker`` (``track_products``):
its commit invalidates ``product:{id}``, and every worker's next request for
that product renders it again. ``python examples/fastapi_app.py`` shows it
in one process (``python examples/fastapi_app.py redis://...``: with a
writer's own cache on that Redis).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)

from freshcache import L1, AsyncCache, Cache
from freshcache.contrib.fastapi import cached, get_cache, lifespan
from freshcache.contrib.sqlalchemy import Tracker


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    price: Mapped[int]  # cents


def track_products(cache: Cache) -> Tracker:
    """Invalidate ``product:{id}`` after every commit that changes one."""
    tracker = Tracker(cache)
    tracker.track(Product, tags=["product:{id}"])
    return tracker


def make_app(
    redis_url: str | None = None,
    database_url: str | None = None,
    prefix: str = "shop",
) -> FastAPI:
    cache = AsyncCache(redis_url or os.environ.get("REDIS_URL"), prefix=prefix, l1=L1())
    engine: Engine = create_engine(
        database_url or os.environ.get("DATABASE_URL", "sqlite://")
    )
    Base.metadata.create_all(engine)
    app = FastAPI(lifespan=lifespan(cache))

    @app.get("/products/{product_id}")
    @cached(600, query=["currency"], tags=["product:{product_id}"])
    def product(product_id: int, currency: str = "EUR") -> dict[str, Any]:
        with Session(engine) as session:  # a def endpoint runs in a thread
            row = session.get(Product, product_id)
            if row is None:
                raise HTTPException(404)  # not cached: only a 200 is
            return {"id": row.id, "name": row.name, "price": row.price,
                    "currency": currency}  # fmt: skip

    @app.get("/stats")
    async def stats(cache: Annotated[AsyncCache, Depends(get_cache)]) -> dict[str, int]:
        return {"loads": cache.stats().loads}

    return app


def main(redis_url: str | None = None) -> None:
    """Serve one product, revalidate it (304), change it through a tracked
    session, and serve it again (with a Redis URL: the writer has its own
    cache, as another process would)."""
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/shop.db"
        prefix = f"shop-demo-{uuid.uuid4().hex[:8]}"
        engine = create_engine(database_url)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Product(id=1, name="kettle", price=2500))
            session.commit()
        with TestClient(make_app(redis_url, database_url, prefix)) as client:
            first = client.get("/products/1")
            etag = first.headers["etag"]
            again = client.get("/products/1", headers={"If-None-Match": etag})
            print("first:", first.status_code, first.json())
            print("revalidated:", again.status_code, repr(again.content))
            if redis_url is None:
                return
            with Cache(redis_url, prefix=prefix) as writer:
                tracker = track_products(writer)
                sessions = sessionmaker(engine)
                tracker.attach(sessions)
                with sessions() as session:
                    row = session.get(Product, 1)
                    assert row is not None
                    row.price = 2200
                    session.commit()  # invalidates product:1 everywhere
            time.sleep(0.3)  # past the staleness bound of every L1 (100 ms)
            after = client.get("/products/1", headers={"If-None-Match": etag})
            print("after the write:", after.status_code, after.json())
            print("loads:", client.get("/stats").json()["loads"])
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
