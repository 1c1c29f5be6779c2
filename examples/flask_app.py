"""A Flask app whose product pages are cached, with ETags, and refreshed in
every worker when an ORM session commits a change.

    DATABASE_URL=sqlite:///shop.db REDIS_URL=redis://127.0.0.1:6379/0 \\
        gunicorn --workers 2 'examples.flask_app:make_app()'

A writer (another process, a script, an admin app) changes products through
a SQLAlchemy session watched by freshcache's ``Tracker``
(``track_products``): its commit invalidates ``product:{id}``, and every
worker's next request for that product renders it again. ``python examples/flask_app.py
redis://...`` shows it in one process.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from typing import Any

from flask import Flask, abort, request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)

from freshcache import L1, Cache
from freshcache.contrib.flask import FreshCache
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


freshcache = FreshCache()


def make_app(
    redis_url: str | None = None,
    database_url: str | None = None,
    prefix: str = "shop",
) -> Flask:
    app = Flask(__name__)
    app.config["FRESHCACHE_URL"] = redis_url or os.environ.get("REDIS_URL")
    app.config["FRESHCACHE_OPTIONS"] = {"prefix": prefix, "l1": L1()}
    freshcache.init_app(app)
    engine: Engine = create_engine(
        database_url or os.environ.get("DATABASE_URL", "sqlite://")
    )
    Base.metadata.create_all(engine)

    @app.get("/products/<int:product_id>")
    @freshcache.cached(600, query=["currency"], tags=["product:{product_id}"])
    def product(product_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            row = session.get(Product, product_id)
            if row is None:
                abort(404)  # not cached: only a 200 is
            return {"id": row.id, "name": row.name, "price": row.price,
                    "currency": request.args.get("currency", "EUR")}  # fmt: skip

    @app.get("/stats")
    def stats() -> dict[str, int]:
        return {"loads": freshcache.cache.stats().loads}

    return app


def close_app(app: Flask) -> None:
    freshcache.teardown(app)


def main(redis_url: str | None = None) -> None:
    """Serve one product, revalidate it (304), change it through a tracked
    session, and serve it again (with a Redis URL: the writer has its own
    cache, as another process would)."""
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/shop.db"
        prefix = f"shop-demo-{uuid.uuid4().hex[:8]}"
        engine = create_engine(database_url)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Product(id=1, name="kettle", price=2500))
            session.commit()
        app = make_app(redis_url, database_url, prefix)
        client = app.test_client()
        first = client.get("/products/1")
        etag = first.headers["ETag"]
        again = client.get("/products/1", headers={"If-None-Match": etag})
        print("first:", first.status_code, first.get_json())
        print("revalidated:", again.status_code, repr(again.data))
        if redis_url is not None:
            with Cache(redis_url, prefix=prefix) as writer:
                sessions = sessionmaker(engine)
                track_products(writer).attach(sessions)
                with sessions() as session:
                    row = session.get(Product, 1)
                    assert row is not None
                    row.price = 2200
                    session.commit()  # invalidates product:1 everywhere
            time.sleep(0.3)  # past the staleness bound of every L1 (100 ms)
            after = client.get("/products/1", headers={"If-None-Match": etag})
            print("after the write:", after.status_code, after.get_json())
            print("loads:", client.get("/stats").get_json()["loads"])
        close_app(app)
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
