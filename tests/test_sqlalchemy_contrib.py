"""freshcache.contrib.sqlalchemy on real PostgreSQL and Redis, sync and async.

The ``Tracker`` invalidates, after the commit and never before, the keys and
tags of the old and the new values of every row the unit of work wrote;
nothing on rollback; a rolled-back savepoint's changes are dropped, a
released one's kept; bulk statements on tracked tables are refused unless
they say what they invalidate; an invalidation Redis refuses is queued, and
the commit stands. The race harness (two processes, readers through
freshcache, writers through the ORM) ends with 0 stale keys with the tracker
and shows stale keys without it. ``import freshcache`` imports no SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from freshcache import L1, MISS, AsyncCache, Cache
from freshcache.contrib.sqlalchemy import Tracker, UntrackedWriteError
from tests import servers, sqlalchemy_support
from tests.sqlalchemy_support import Models, make_models, sqlalchemy_url, track_users

USERS, TEAMS = 6, 3


@pytest.fixture(scope="module")
def models() -> Models:
    return make_models(uuid.uuid4().hex[:10])


@pytest.fixture(scope="module")
def engine(postgres_dsn: str, models: Models) -> Iterator[Any]:
    engine = create_engine(sqlalchemy_url(postgres_dsn))
    models.base.metadata.create_all(engine)
    yield engine
    models.base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def rows(engine: Any, models: Models) -> None:
    """Teams 1..3, users 1..6 (user n in team 1 + n % 3), fresh for each test."""
    with Session(engine) as s, s.begin():
        s.execute(delete(models.user))
        s.execute(delete(models.team))
        sqlalchemy_support.fill(s, models, USERS, TEAMS)


@pytest.fixture
def cache(redis_url: str, key_prefix: str, redis_cleanup: None) -> Iterator[Cache]:
    with Cache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as cache:
        yield cache


@pytest.fixture
def tracker(cache: Cache, models: Models, engine: Any) -> Iterator[Tracker]:
    with Tracker(cache) as tracker:
        track_users(tracker, models)
        tracker.attach(Session)
        yield tracker


def _fill(cache: Cache, uid: int = 1, teams: tuple[int, ...] = (1, 2, 3)) -> None:
    """Cache a user's key and, per team, a list tagged with that team."""
    cache.set(f"user:{uid}", {"stale": True})
    for tid in teams:
        cache.set(f"members:{tid}", ["stale"], tags=[f"team:{tid}"])
        cache.set(f"team-name:{tid}", "stale")


def _cached(cache: Cache, *keys: str) -> dict[str, bool]:
    return {k: cache.get(k) is not MISS for k in keys}


def test_an_update_invalidates_the_old_and_new_values_after_the_commit(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    _fill(cache)
    with Session(engine) as s:
        user = s.get(models.user, 1)  # in team 2
        assert user is not None
        assert user.team_id == 2
        user.team_id = 3
        s.flush()
        # Flushed, not committed: a reader would still load the old row.
        assert _cached(cache, "user:1", "members:2", "members:3") == {
            "user:1": True,
            "members:2": True,
            "members:3": True,
        }
        s.commit()
    assert _cached(cache, "user:1", "members:1", "members:2", "members:3") == {
        "user:1": False,
        "members:1": True,  # not touched
        "members:2": False,  # the old team
        "members:3": False,  # the new team
    }
    assert tracker.commits == 1
    assert tracker.queued == tracker.failed == 0


def test_a_reader_that_fills_during_the_transaction_does_not_stay_cached(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    """Between the flush and the commit another connection still reads the
    old row, and caches it: an invalidation made then (before the commit)
    would leave it cached. The tracker's, after the commit, removes it."""

    def team_of_user_1() -> int | None:
        with Session(engine) as other:
            return other.get(models.user, 1).team_id  # type: ignore[union-attr]

    with Session(engine) as s:
        s.get(models.user, 1).team_id = 3  # type: ignore[union-attr]
        s.flush()
        assert cache.get_or_load("user-team:1", team_of_user_1, tags=["team:2"]) == 2
        s.commit()
    assert cache.get("user-team:1") is MISS  # dropped with the tag team:2
    assert cache.get_or_load("user-team:1", team_of_user_1, tags=["team:3"]) == 3


def test_commit_with_a_savepoint_still_open_commits_both(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    for uid in (1, 2):
        _fill(cache, uid)
    with Session(engine) as s:
        s.get(models.user, 1).name = "outer"  # type: ignore[union-attr]
        s.begin_nested()
        s.get(models.user, 2).name = "inner"  # type: ignore[union-attr]
        s.commit()  # releases the savepoint, then commits
    assert _cached(cache, "user:1", "user:2") == {"user:1": False, "user:2": False}


def test_an_attribute_expired_by_a_commit_still_gives_its_old_value(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    with Session(engine) as s:
        user = s.get(models.user, 1)
        assert user is not None
        user.name = "renamed"
        s.commit()  # expires every attribute
        _fill(cache)
        user.team_id = 3  # set without reading the old value first
        s.commit()
    assert not any(_cached(cache, "members:2", "members:3").values())
    assert cache.get("members:1") is not MISS


def test_a_relationship_change_invalidates_both_teams(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    with Session(engine) as s:
        user = s.get(models.user, 1)
        team = s.get(models.team, 3)
        assert user is not None
        assert team is not None
        _fill(cache)
        user.team = team  # team_id is set by the flush, not by the code
        s.commit()
    assert _cached(cache, "user:1", "members:1", "members:2", "members:3") == {
        "user:1": False,
        "members:1": True,
        "members:2": False,
        "members:3": False,
    }


def test_a_rollback_invalidates_nothing(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    _fill(cache)
    with Session(engine) as s:
        user = s.get(models.user, 1)
        assert user is not None
        user.team_id = 3
        s.flush()
        s.rollback()

    def fails() -> None:
        with Session(engine) as s, s.begin():
            s.add(models.user(id=50, name="new", team_id=1))
            s.flush()
            raise RuntimeError("the block fails: rolled back")

    with pytest.raises(RuntimeError):
        fails()
    assert all(_cached(cache, "user:1", "members:1", "members:2", "members:3").values())
    assert tracker.commits == 0


def test_a_delete_invalidates_the_deleted_rows_keys(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    with Session(engine) as s:
        user = s.get(models.user, 1)
        s.commit()  # expired: the delete must load what it needs
        _fill(cache)
        s.delete(user)
        s.commit()
    assert _cached(cache, "user:1", "members:1", "members:2") == {
        "user:1": False,
        "members:1": True,
        "members:2": False,
    }


def test_a_cascaded_delete_invalidates_every_row_it_removes(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    # Team 2 holds users 1 and 4; deleting it deletes them (delete-orphan).
    for uid in (1, 2, 4):
        _fill(cache, uid)
    with Session(engine) as s, s.begin():
        s.delete(s.get(models.team, 2))
    assert _cached(cache, "user:1", "user:2", "user:4", "team-name:2") == {
        "user:1": False,
        "user:2": True,
        "user:4": False,
        "team-name:2": False,
    }


def test_an_insert_invalidates_its_keys_and_tags(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    cache.set("user:60", None)  # a cached "no such user"
    _fill(cache, 1)
    with Session(engine) as s, s.begin():
        s.add(models.user(id=60, name="new", team_id=3))
    assert _cached(cache, "user:60", "members:3", "members:2") == {
        "user:60": False,
        "members:3": False,
        "members:2": True,
    }


def test_savepoints_rolled_back_drop_their_changes_released_keep_them(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    for uid in (1, 2, 3):
        _fill(cache, uid)
    with Session(engine) as s, s.begin():
        s.get(models.user, 1).name = "outer"  # type: ignore[union-attr]
        with s.begin_nested():  # released
            s.get(models.user, 2).name = "kept"  # type: ignore[union-attr]
            nested = s.begin_nested()  # rolled back, inside the released one
            s.get(models.user, 3).team_id = 1  # type: ignore[union-attr]
            s.flush()
            nested.rollback()
        assert all(_cached(cache, "user:1", "user:2", "user:3").values())
    assert _cached(cache, "user:1", "user:2", "user:3", "members:1") == {
        "user:1": False,
        "user:2": False,
        "user:3": True,  # only its rolled-back savepoint changed it
        "members:1": True,
    }
    with Session(engine) as s:  # the database agrees
        assert s.get(models.user, 3).team_id == 1 + 3 % TEAMS  # type: ignore[union-attr]


def test_a_bulk_statement_is_refused_unless_it_says_what_it_invalidates(
    engine: Any, models: Models, rows: None, cache: Cache, tracker: Tracker
) -> None:
    user = models.user
    statement = update(user).where(user.team_id == 2).values(name="bulk")
    with Session(engine) as s, s.begin():
        with pytest.raises(UntrackedWriteError, match="bulk UPDATE"):
            s.execute(statement)
        with pytest.raises(UntrackedWriteError, match="bulk DELETE"):
            s.execute(delete(user.__table__).where(user.id == 1))
    _fill(cache, 1)
    with Session(engine) as s, s.begin():
        s.execute(
            statement.execution_options(
                freshcache_keys=["user:1", "user:4"], freshcache_tags=["team:2"]
            )
        )
        assert cache.get("members:2") is not MISS  # not before the commit
    assert _cached(cache, "user:1", "members:2", "members:1") == {
        "user:1": False,
        "members:2": False,
        "members:1": True,
    }
    _fill(cache, 1)
    with Session(engine) as s:  # rolled back: nothing
        s.execute(statement, execution_options={"freshcache_tags": ["team:2"]})
        s.rollback()
    assert cache.get("members:2") is not MISS


def test_bulk_statements_on_a_subclass_of_a_tracked_class_are_refused(
    engine: Any, cache: Cache
) -> None:
    """Joined-table inheritance: ``update(Dog)`` writes the subclass's own
    table, which the tracked class's mapper does not list."""
    base, animal, dog = sqlalchemy_support.make_animals(uuid.uuid4().hex[:10])
    Animal, Dog = animal, dog  # noqa: N806
    base.metadata.create_all(engine)
    try:
        with Tracker(cache) as tracker:
            tracker.track(Animal, keys=["animal:{id}", "animal-name:{name}"])
            tracker.attach(Session)
            with Session(engine) as s, s.begin():
                s.add(Dog(id=1))
            cache.set("animal:1", "stale")
            with Session(engine) as s, s.begin():
                with pytest.raises(UntrackedWriteError, match="'Dog'"):
                    s.execute(update(Dog).values(barks=2))
                s.get(Dog, 1).barks = 3  # type: ignore[union-attr]
            assert cache.get("animal:1") is MISS  # the subclass's row, tracked
            with Session(engine) as s:
                dog = s.get(Dog, 1)
                s.commit()  # expired
                cache.set("animal-name:a", "stale")
                dog.name = "rex"  # type: ignore[union-attr]  # loads the old name
                s.commit()
            assert cache.get("animal-name:a") is MISS  # the old row's key
    finally:
        base.metadata.drop_all(engine)


def test_sessions_of_other_targets_are_left_alone(
    engine: Any, models: Models, rows: None, cache: Cache
) -> None:
    tracked = sessionmaker(engine)
    with Tracker(cache) as tracker:
        track_users(tracker, models)
        tracker.attach(tracked)
        _fill(cache)
        with Session(engine) as s, s.begin():  # not attached
            s.get(models.user, 1).name = "a"  # type: ignore[union-attr]
            s.execute(update(models.user).values(name="bulk"))  # not refused
        assert cache.get("user:1") is not MISS
        with tracked() as s, s.begin():
            s.get(models.user, 1).name = "b"  # type: ignore[union-attr]
        assert cache.get("user:1") is MISS
    _fill(cache)
    with tracked() as s, s.begin():  # closed: no listener left
        s.get(models.user, 1).name = "c"  # type: ignore[union-attr]
    assert cache.get("user:1") is not MISS


def test_an_invalidation_redis_refuses_is_queued_and_the_commit_stands(
    engine: Any, models: Models, rows: None
) -> None:
    # Nothing listens on port 1: every attempt fails within the budget.
    with Cache("redis://127.0.0.1:1/0", timeout=0.05) as down, Tracker(down) as t:
        track_users(t, models)
        t.attach(Session)
        with Session(engine) as s, s.begin():
            s.get(models.user, 1).name = "committed"  # type: ignore[union-attr]
        assert (t.commits, t.queued, t.failed) == (1, 1, 0)
        assert down.stats().pending_invalidations >= 1
    with Session(engine) as s:
        assert s.get(models.user, 1).name == "committed"  # type: ignore[union-attr]


def test_bad_declarations_are_refused(models: Models, cache: Cache) -> None:
    with Tracker(cache) as tracker:
        with pytest.raises(ValueError, match="no column attribute 'nope'"):
            tracker.track(models.user, keys=["user:{nope}"])
        with pytest.raises(TypeError):
            tracker.track(models.user, keys="user:{id}")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            tracker.track(models.user)
    with pytest.raises(TypeError):
        Tracker("redis://")  # type: ignore[arg-type]


def test_keys_render_as_cached_renders_them(
    engine: Any, models: Models, rows: None, cache: Cache
) -> None:
    """A function key (``keys=`` given a function) and a template with a
    string that needs escaping: the tracker invalidates the very key a
    ``cached`` function with the same template stores."""

    @cache.cached("by-name:{name}")
    def by_name(name: str) -> str:
        return name

    with Tracker(cache) as tracker:
        tracker.track(
            models.user,
            keys=["by-name:{name}", lambda row: [f"v:{row['id']}:{row['version']}"]],
        )
        tracker.attach(Session)
        by_name("a:b c")
        cache.set("v:1:0", 1)
        with Session(engine) as s, s.begin():
            user = s.get(models.user, 1)
            assert user is not None
            user.name = "a:b c"
            user.version = 5
        assert cache.get(by_name.key("a:b c")) is MISS
        assert cache.get("v:1:0") is MISS  # the old value's key


# -- async ------------------------------------------------------------------------


@pytest.fixture
async def async_setup(
    postgres_dsn: str,
    redis_url: str,
    key_prefix: str,
    redis_cleanup: None,
    engine: Any,
    models: Models,
    rows: None,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], AsyncCache, Tracker]]:
    aengine = create_async_engine(sqlalchemy_url(postgres_dsn))
    async with AsyncCache(redis_url, prefix=key_prefix, l1=L1(), timeout=1.0) as c:
        with Tracker(c) as tracker:
            track_users(tracker, models)
            tracker.attach(Session)
            yield async_sessionmaker(aengine, expire_on_commit=True), c, tracker
    await aengine.dispose()


async def _afill(cache: AsyncCache, uid: int = 1) -> None:
    await cache.set(f"user:{uid}", {"stale": True})
    for tid in (1, 2, 3):
        await cache.set(f"members:{tid}", ["stale"], tags=[f"team:{tid}"])


async def _acached(cache: AsyncCache, *keys: str) -> dict[str, bool]:
    return {k: await cache.get(k) is not MISS for k in keys}


async def test_async_sessions_invalidate_after_commit_only(
    async_setup: tuple[async_sessionmaker[AsyncSession], AsyncCache, Tracker],
    models: Models,
) -> None:
    make, cache, tracker = async_setup
    await _afill(cache)
    async with make() as s:
        user = await s.get(models.user, 1)
        assert user is not None
        user.team_id = 3
        await s.flush()
        assert all((await _acached(cache, "user:1", "members:2")).values())
        await s.rollback()
    assert all((await _acached(cache, "user:1", "members:2", "members:3")).values())
    async with make() as s:
        user = await s.get(models.user, 1)
        await s.commit()  # expired
        # Setting it loads the old value: in async code, inside run_sync.
        await s.run_sync(lambda _: setattr(user, "team_id", 3))
        await s.commit()
    assert await _acached(cache, "user:1", "members:1", "members:2", "members:3") == {
        "user:1": False,
        "members:1": True,
        "members:2": False,
        "members:3": False,
    }
    async with make() as s:
        user = await s.get(models.user, 2)
        await s.commit()
        await _afill(cache, 2)
        await s.delete(user)
        await s.commit()
    assert await _acached(cache, "user:2", "members:3", "members:1") == {
        "user:2": False,
        "members:3": False,  # user 2 was in team 3
        "members:1": True,
    }
    assert (tracker.commits, tracker.queued) == (2, 0)


async def test_async_savepoints(
    async_setup: tuple[async_sessionmaker[AsyncSession], AsyncCache, Tracker],
    models: Models,
) -> None:
    make, cache, _ = async_setup
    for uid in (1, 2):
        await _afill(cache, uid)
    async with make() as s, s.begin():
        async with s.begin_nested():
            (await s.get(models.user, 1)).name = "kept"  # type: ignore[union-attr]
        nested = await s.begin_nested()
        (await s.get(models.user, 2)).name = "dropped"  # type: ignore[union-attr]
        await s.flush()
        await nested.rollback()
    assert await _acached(cache, "user:1", "user:2") == {
        "user:1": False,
        "user:2": True,
    }


async def test_two_async_sessions_committing_concurrently(
    async_setup: tuple[async_sessionmaker[AsyncSession], AsyncCache, Tracker],
    models: Models,
) -> None:
    make, cache, tracker = async_setup
    for uid in range(1, USERS + 1):
        await _afill(cache, uid)

    async def move(uids: list[int], team: int) -> None:
        for uid in uids:
            async with make() as s, s.begin():
                user = await s.get(models.user, uid)
                user.team_id = team  # type: ignore[union-attr]
                await asyncio.sleep(0)  # let the other session interleave

    await asyncio.gather(move([1, 3, 5], 1), move([2, 4, 6], 2))
    assert not any(
        (await _acached(cache, *[f"user:{u}" for u in range(1, USERS + 1)])).values()
    )
    assert tracker.commits == USERS


async def test_a_sync_session_under_an_async_cache_is_refused_before_commit(
    async_setup: tuple[async_sessionmaker[AsyncSession], AsyncCache, Tracker],
    engine: Any,
    models: Models,
) -> None:
    with Session(engine) as s:
        s.get(models.user, 1).name = "x"  # type: ignore[union-attr]
        with pytest.raises(TypeError, match="AsyncSession"):
            s.commit()  # the flush refuses: nothing committed
    async with async_setup[0]() as s:
        assert (await s.get(models.user, 1)).name == "user 1"  # type: ignore[union-attr]


# -- two processes, and the race harness ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tracked", "untracked", "before_commit"])
def test_race_harness_two_processes(
    postgres_dsn: str, redis_url: str, mode: str
) -> None:
    """Two processes, each with reader threads through freshcache and a
    writer committing through the ORM (savepoints and rollbacks included).
    Tracked: 0 stale keys once quiet. Untracked, and invalidated by hand
    before the commit: stale keys, the proof the harness can fail."""
    seed = int(os.environ.get("CACHE_TEST_SEED") or uuid.uuid4().int % 10_000)
    suffix = uuid.uuid4().hex[:10]
    models = make_models(suffix)
    config = sqlalchemy_support.RaceConfig(
        url=sqlalchemy_url(postgres_dsn),
        redis_url=redis_url,
        prefix=f"t{uuid.uuid4().hex[:12]}",
        suffix=suffix,
        mode=mode,
        seed=seed,
        # Its stale keys come from races only: it runs longer than the
        # others, never to show none.
        commits=250 if mode == "before_commit" else 150,
    )
    engine = create_engine(config.url)
    models.base.metadata.create_all(engine)
    try:
        with Session(engine) as s, s.begin():
            sqlalchemy_support.fill(s, models, config.users, config.teams)
        report = sqlalchemy_support.race(config, models)
    finally:
        models.base.metadata.drop_all(engine)
        engine.dispose()
        servers.delete_prefix(redis_url, config.prefix)
    print(f"\nseed {seed}, {mode}: {report.summary()}")
    assert report.errors == []
    assert report.commits == 2 * config.commits
    assert report.reads >= 2 * config.readers * config.min_reads
    if mode == "tracked":
        assert [w.stale for w in report.workers] == [[], []], report.summary()
        assert report.stale_keys_workers == 0, report.summary()
        assert report.stale_keys_redis == 0, report.summary()
    else:
        assert report.stale_keys_redis > 0, report.summary()
        assert report.stale_keys_workers > 0, report.summary()


def test_import_freshcache_imports_no_sqlalchemy() -> None:
    code = (
        "import sys, freshcache; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'], "
        "'sqlalchemy'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
