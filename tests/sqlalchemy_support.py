"""Models and the race harness for tests/test_sqlalchemy_contrib.py.

Models are made per test module with unique table names (``make_models``).
The race harness (``race``) spawns worker processes, each with reader
threads that read users and team member lists through freshcache (L1 over
Redis, loaders that pause to widen the race windows) and a writer thread
that changes users through the ORM (a sync ``Session`` in one process, an
``AsyncSession`` in the other) and commits, with no manual
invalidation: only the ``Tracker`` in mode ``tracked``. Once every
writer has stopped and the machine has been quiet for a while, each worker
reads every key through its own cache, and the parent through a new one
(Redis only): a value that differs from the database is a stale key.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from freshcache import L1, MISS, AsyncCache, Cache
from freshcache.contrib.sqlalchemy import Tracker


def sqlalchemy_url(dsn: str, *, driver: str = "psycopg") -> str:
    """``postgresql://...`` as SQLAlchemy's ``postgresql+psycopg://...``
    (psycopg 3, sync and async)."""
    return "postgresql+" + driver + "://" + dsn.split("://", 1)[1]


@dataclass
class Models:
    base: Any
    team: Any
    user: Any


def make_models(suffix: str) -> Models:
    class Base(DeclarativeBase):
        pass

    class Team(Base):
        __tablename__ = f"fc_teams_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        name: Mapped[str]
        users: Mapped[list[User]] = relationship(
            back_populates="team", cascade="all, delete-orphan"
        )

    class User(Base):
        __tablename__ = f"fc_users_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        version: Mapped[int] = mapped_column(default=0)
        team_id: Mapped[int | None] = mapped_column(ForeignKey(Team.id))
        team: Mapped[Team | None] = relationship(back_populates="users")

    return Models(Base, Team, User)


def make_animals(suffix: str) -> tuple[Any, Any, Any]:
    """A tracked base class and a joined-table subclass: (base, Animal, Dog)."""

    class Base(DeclarativeBase):
        pass

    class Animal(Base):
        __tablename__ = f"fc_animals_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        name: Mapped[str] = mapped_column(default="a")
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "a"}  # noqa: RUF012

    class Dog(Animal):
        __tablename__ = f"fc_dogs_{suffix}"
        id: Mapped[int] = mapped_column(ForeignKey(Animal.id), primary_key=True)
        barks: Mapped[int] = mapped_column(default=0)
        __mapper_args__ = {"polymorphic_identity": "dog"}  # noqa: RUF012

    return Base, Animal, Dog


def track_users(tracker: Tracker, models: Models) -> None:
    """The declarations every test uses: a user feeds ``user:{id}`` and the
    tag of its team; a team feeds ``team-name:{id}``."""
    tracker.track(models.user, keys=["user:{id}"], tags=["team:{team_id}"])
    tracker.track(models.team, keys=["team-name:{id}"])


# -- the race harness -------------------------------------------------------------


@dataclass
class RaceConfig:
    url: str  # SQLAlchemy URL
    redis_url: str
    prefix: str
    suffix: str  # table names
    mode: str  # "tracked", "untracked", or "before_commit": a naive writer
    # that invalidates by hand after its flush, then spends 5-15 ms more in
    # its transaction before the commit
    users: int = 40
    teams: int = 4
    readers: int = 3
    commits: int = 150  # per writer: the run ends when each has committed this
    min_reads: int = 100  # per reader thread, at least
    quiet: float = 1.5  # seconds with no writer before the final check
    seed: int = 0


@dataclass
class WorkerResult:
    reads: int = 0
    commits: int = 0
    rollbacks: int = 0
    stale_keys: int = 0
    queued: int = 0
    failed: int = 0  # commits whose invalidation raised (tracker.failed)
    stale: list[str] = field(default_factory=list)  # key: cached != truth
    fills_refused: int = 0  # fills a lease or generation refused: races caught
    errors: list[str] = field(default_factory=list)


def _user_row(session: Session, models: Models, uid: int) -> dict[str, Any]:
    user = session.get(models.user, uid)
    assert user is not None
    return {"version": user.version, "team_id": user.team_id}


def _members(session: Session, models: Models, tid: int) -> list[int]:
    user = models.user
    found = session.scalars(
        select(user.id).where(user.team_id == tid).order_by(user.id)
    )
    return list(found)


def truth(config: RaceConfig, models: Models, session: Session) -> dict[str, Any]:
    """Every key the readers cache, with the database's value now."""
    want: dict[str, Any] = {}
    for uid in range(1, config.users + 1):
        want[f"user:{uid}"] = _user_row(session, models, uid)
    for tid in range(1, config.teams + 1):
        want[f"members:{tid}"] = _members(session, models, tid)
    return want


def stale_list(cache: Cache, want: dict[str, Any]) -> list[str]:
    found = []
    for key, value in want.items():
        cached = cache.get(key)
        if cached not in (MISS, value):
            found.append(f"{key}: cached {cached!r}, database {value!r}")
    return found


def stale_keys(cache: Cache, want: dict[str, Any]) -> int:
    return sum(1 for key, value in want.items() if cache.get(key) not in (MISS, value))


def race_worker(
    config: RaceConfig, index: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    result = WorkerResult()
    try:
        _race(config, index, barrier, result)
    except Exception:
        result.errors.append(traceback.format_exc())
    results.put(result)


def _race(config: RaceConfig, index: int, barrier: Any, result: WorkerResult) -> None:
    models = make_models(config.suffix)
    engine = create_engine(config.url, pool_size=config.readers + 2)
    make_session = sessionmaker(engine)
    cache = Cache(config.redis_url, prefix=config.prefix, l1=L1(), timeout=1.0)
    tracker = Tracker(cache)
    if config.mode == "tracked":
        track_users(tracker, models)
        tracker.attach(make_session)
    stop = threading.Event()  # set by an error
    writer_done = threading.Event()
    lock = threading.Lock()
    rng = random.Random(config.seed * 100 + index)

    def pause(r: random.Random) -> None:
        if r.random() < 0.5:
            time.sleep(r.uniform(0.0, 0.01))

    def read_loop(seed: int) -> None:
        r = random.Random(seed)
        reads = 0
        while not stop.is_set():
            if writer_done.is_set() and reads >= config.min_reads:
                break
            if r.random() < 0.7:
                uid = r.randint(1, config.users)

                def load_user(uid: int = uid) -> dict[str, Any]:
                    pause(r)
                    with make_session() as s:
                        row = _user_row(s, models, uid)
                    pause(r)  # the row read, not stored yet: the race window
                    return row

                cache.get_or_load(f"user:{uid}", load_user)
            else:
                tid = r.randint(1, config.teams)

                def load_members(tid: int = tid) -> list[int]:
                    pause(r)
                    with make_session() as s:
                        members = _members(s, models, tid)
                    pause(r)
                    return members

                cache.get_or_load(f"members:{tid}", load_members, tags=[f"team:{tid}"])
            reads += 1
            time.sleep(r.uniform(0.0, 0.001))  # leave the writer the GIL
        with lock:
            result.reads += reads

    def guarded(loop: Any, *args: Any) -> None:
        try:
            loop(*args)
        except Exception:
            with lock:
                result.errors.append(traceback.format_exc())
            stop.set()

    def write_loop() -> None:
        while not stop.is_set() and result.commits < config.commits:
            uid = rng.randint(1, config.users)
            with make_session() as s, s.begin():
                user = s.get(models.user, uid, with_for_update=True)
                assert user is not None
                old_team = user.team_id
                user.version += 1
                if rng.random() < 0.5:
                    user.team_id = rng.randint(1, config.teams)
                if rng.random() < 0.2:  # a savepoint that rolls back
                    nested = s.begin_nested()
                    user.version += 1000
                    s.flush()
                    nested.rollback()
                if rng.random() < 0.1:
                    s.rollback()
                    result.rollbacks += 1
                    continue
                if config.mode == "before_commit":
                    s.flush()
                    cache.invalidate(f"user:{uid}")
                    cache.invalidate_tags(*{f"team:{old_team}", f"team:{user.team_id}"})
                    time.sleep(rng.uniform(0.005, 0.015))
            result.commits += 1
            time.sleep(rng.uniform(0.0, 0.005))

    async def async_write_loop() -> None:
        """The same writes through an AsyncSession, tracked by a Tracker
        over an AsyncCache (attached to this session class only)."""

        class AsyncTracked(Session):
            pass

        engine = create_async_engine(config.url)
        make = async_sessionmaker(engine, sync_session_class=AsyncTracked)
        async with AsyncCache(
            config.redis_url, prefix=config.prefix, l1=L1(), timeout=1.0
        ) as acache:
            with Tracker(acache) as atracker:
                if config.mode == "tracked":
                    track_users(atracker, models)
                    atracker.attach(AsyncTracked)
                while not stop.is_set() and result.commits < config.commits:
                    uid = rng.randint(1, config.users)
                    async with make() as s, s.begin():
                        user = await s.get(models.user, uid, with_for_update=True)
                        assert user is not None
                        old_team = user.team_id
                        user.version += 1
                        if rng.random() < 0.5:
                            user.team_id = rng.randint(1, config.teams)
                        new_team = user.team_id  # expired by the savepoint's rollback
                        if rng.random() < 0.2:
                            nested = await s.begin_nested()
                            user.version += 1000
                            await s.flush()
                            await nested.rollback()
                        if rng.random() < 0.1:
                            await s.rollback()
                            result.rollbacks += 1
                            continue
                        if config.mode == "before_commit":
                            await s.flush()
                            await acache.invalidate(f"user:{uid}")
                            await acache.invalidate_tags(
                                *{f"team:{old_team}", f"team:{new_team}"}
                            )
                            await asyncio.sleep(rng.uniform(0.005, 0.015))
                    result.commits += 1
                    await asyncio.sleep(rng.uniform(0.0, 0.005))
                result.queued += atracker.queued
                result.failed += atracker.failed
        await engine.dispose()

    threads = [
        threading.Thread(
            target=guarded, args=(read_loop, config.seed * 1000 + index * 10 + i)
        )
        for i in range(config.readers)
    ]
    barrier.wait()
    for t in threads:
        t.start()
    if index % 2:  # every other process writes through AsyncSession
        writer = threading.Thread(
            target=guarded, args=(asyncio.run, async_write_loop())
        )
    else:
        writer = threading.Thread(target=guarded, args=(write_loop,))
    writer.start()
    writer.join()
    writer_done.set()
    for t in threads:
        t.join()
    barrier.wait()  # every writer in every process has stopped
    time.sleep(config.quiet)
    with make_session() as s:
        want = truth(config, models, s)
    result.stale_keys = stale_keys(cache, want)
    result.queued += tracker.queued
    result.failed += tracker.failed
    result.stale = stale_list(cache, want)
    counts = cache.stats().counts
    result.fills_refused = sum(n for k, n in counts.items() if "skipped" in k)
    tracker.close()
    cache.close()
    engine.dispose()


@dataclass
class RaceReport:
    workers: list[WorkerResult]
    stale_keys_redis: int  # seen by a new cache in the parent, Redis only

    @property
    def reads(self) -> int:
        return sum(w.reads for w in self.workers)

    @property
    def commits(self) -> int:
        return sum(w.commits for w in self.workers)

    @property
    def stale_keys_workers(self) -> int:
        return sum(w.stale_keys for w in self.workers)

    @property
    def errors(self) -> list[str]:
        return [e for w in self.workers for e in w.errors]

    def summary(self) -> str:
        return (
            f"reads {self.reads}, commits {self.commits}, rollbacks "
            f"{sum(w.rollbacks for w in self.workers)}, stale keys: workers "
            f"{self.stale_keys_workers}, Redis {self.stale_keys_redis}, queued "
            f"{sum(w.queued for w in self.workers)}, failed "
            f"{sum(w.failed for w in self.workers)}, fills refused "
            f"{sum(w.fills_refused for w in self.workers)}"
        )


def race(config: RaceConfig, models: Models, processes: int = 2) -> RaceReport:
    """Run the harness over tables already made and filled (``fill``)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=race_worker, args=(config, i, barrier, results))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    found = [results.get(timeout=900) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    engine = create_engine(config.url)
    with Session(engine) as s:
        want = truth(config, models, s)
    engine.dispose()
    with Cache(config.redis_url, prefix=config.prefix, timeout=1.0) as cache:
        redis_stale = stale_keys(cache, want)
    return RaceReport(found, redis_stale)


def fill(session: Session, models: Models, users: int, teams: int) -> None:
    for tid in range(1, teams + 1):
        session.add(models.team(id=tid, name=f"team {tid}"))
    session.flush()
    for uid in range(1, users + 1):
        session.add(models.user(id=uid, name=f"user {uid}", team_id=1 + uid % teams))
