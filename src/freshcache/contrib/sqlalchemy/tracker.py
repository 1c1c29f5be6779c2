"""``Tracker``: once a session commits, invalidate the keys and tags that its
ORM changes fed, from the rows' old values and their new ones.

What it listens to, and why there:

* the mapper events ``after_insert``, ``after_update`` and ``after_delete``
  see every row the unit of work writes (cascades and foreign keys set by
  relationships included) while the attributes' history still holds the
  value each row had before the flush; ``before_flush`` first loads the
  tracked attributes of the changed and deleted objects that are expired,
  so that the old value is known without a query inside the flush;
* ``after_flush`` renders the keys and tags of the old and the new values
  (new rows have their primary key by then) and files them under the
  innermost transaction: a savepoint's own set;
* ``after_commit``: a released savepoint hands its set to its parent; the
  outermost transaction's commit invalidates everything, after the
  database committed and never before (a reader refilling in between would
  cache the old row). ``after_transaction_end`` drops whatever a rolled-back
  transaction or savepoint collected.

Statements that bypass the unit of work (``session.execute(update(User))``,
``delete``, ``insert``) are refused on a tracked table unless they say what
they invalidate (``do_orm_execute``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import Table, event, inspect
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    object_session,
)
from sqlalchemy.util import await_only

from freshcache import AsyncCache, Cache, FreshcacheError

__all__ = ["Tracker", "UntrackedWriteError"]

logger = logging.getLogger("freshcache.contrib.sqlalchemy")


def _fields(event: str, error_class: str | None = None) -> dict[str, object]:
    """The structured fields of every freshcache record (docs/logging.md)."""
    return {
        "freshcache_event": event,
        "freshcache_tier": "redis",
        "freshcache_namespace": None,
        "freshcache_error_class": error_class,
        "freshcache_repeated": 0,
    }


Source = str | Callable[[Mapping[str, Any]], Iterable[str]]
"""A template of the row's attributes (``"user:{id}"``), or a function of a
read-only mapping of its column attributes that returns keys (or tags)."""

KEYS_OPTION: Final = "freshcache_keys"
TAGS_OPTION: Final = "freshcache_tags"
_FIELD: Final = re.compile(r"\{([^{}]*)\}")


class UntrackedWriteError(FreshcacheError):
    """A write the tracker cannot see the rows of: a bulk ``insert``,
    ``update`` or ``delete`` statement on a tracked table that does not say
    what it invalidates, or a row whose old value was never loaded."""


class _Template:
    """``"team:{team_id}"``: literal text and mapped attributes, each field
    rendered as ``cache.key`` renders a part (so the key is the one a
    ``cached`` function with the same template stores)."""

    def __init__(self, text: str, attributes: Iterable[str], owner: str) -> None:
        parts = _FIELD.split(text)
        self.literals = parts[0::2]
        self.fields = parts[1::2]
        if any("{" in p or "}" in p for p in self.literals):
            raise ValueError(f"unbalanced braces in {text!r}")
        known = set(attributes)
        for name in self.fields:
            if name not in known:
                raise ValueError(f"{text!r}: {owner} has no column attribute {name!r}")

    def render(self, values: Mapping[str, Any], part: Callable[[Any], str]) -> str:
        out = self.literals[0]
        for name, literal in zip(self.fields, self.literals[1:], strict=True):
            out += part(values[name]) + literal
        return out


@dataclass
class _Declaration:
    """What one ``track`` call said a class feeds."""

    cls: type[Any]
    attributes: tuple[str, ...]  # the column attributes the sources read
    keys: list[_Template | Callable[[Mapping[str, Any]], Iterable[str]]]
    tags: list[_Template | Callable[[Mapping[str, Any]], Iterable[str]]]


@dataclass
class _Changes:
    """The keys and tags one transaction (or savepoint) will invalidate."""

    keys: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)

    def merge(self, other: _Changes) -> None:
        self.keys |= other.keys
        self.tags |= other.tags


@dataclass
class _SessionState:
    """Kept in ``session.info``, per tracker."""

    pending: dict[SessionTransaction, _Changes] = field(default_factory=dict)
    # (object, its declarations, old values or None for a new row, deleted)
    flushed: list[tuple[Any, list[_Declaration], dict[str, Any] | None, bool]] = field(
        default_factory=list
    )


async def _nothing() -> None:
    return None


class Tracker:
    """Invalidates, after each commit, what the committed ORM changes fed.

    ::

        tracker = Tracker(cache)  # a Cache; an AsyncCache for AsyncSession
        tracker.track(User, keys=["user:{id}"], tags=["team:{team_id}"])
        tracker.attach(Session)  # every Session, AsyncSession's included

    For each row inserted, updated or deleted through the unit of work, the
    keys and tags rendered from the row's values before the change and
    after it (an update moving a user from team 7 to team 9 invalidates
    ``team:7`` and ``team:9``; a delete, the deleted row's) are invalidated
    once the outermost transaction commits, in every tier and process. A
    rollback invalidates nothing; a rolled-back savepoint drops what it
    collected, a released one keeps it.

    An invalidation Redis cannot take within freshcache's budget is queued
    and retried by the cache; the commit stands and ``commit()`` does not
    raise (counted in ``queued``, logged as a warning). ``close()`` removes
    every listener.
    """

    def __init__(self, cache: Cache | AsyncCache) -> None:
        if not isinstance(cache, Cache | AsyncCache):
            raise TypeError(f"Tracker needs a Cache or AsyncCache, not {cache!r}")
        self._cache = cache
        self._async = isinstance(cache, AsyncCache)
        self._declarations: dict[type[Any], list[_Declaration]] = {}
        self._tables: set[Table] = set()
        self._listeners: list[tuple[Any, str, Callable[..., Any]]] = []
        self._lock = threading.Lock()
        self.commits = 0
        """Commits whose changes were invalidated."""
        self.queued = 0
        """Of those, the ones Redis did not take at once (queued and retried)."""
        self.failed = 0
        """Of those, the ones that raised (a closed cache): logged, not raised."""

    # -- configuration -------------------------------------------------------

    def track(
        self,
        cls: type[Any],
        *,
        keys: Iterable[Source] = (),
        tags: Iterable[Source] = (),
    ) -> None:
        """Declare that rows of the mapped class ``cls`` (and its subclasses)
        feed ``keys`` and ``tags``: templates of its column attributes
        (``"user:{id}"``, rendered as ``cached`` renders its templates) or
        functions of a read-only mapping of the row's column attributes."""
        if isinstance(keys, str) or isinstance(tags, str):
            raise TypeError("keys and tags are lists, not one str")
        mapper: Mapper[Any] = inspect(cls)
        columns = [p.key for p in mapper.column_attrs]
        name = cls.__name__
        sources = {"keys": list(keys), "tags": list(tags)}
        if not sources["keys"] and not sources["tags"]:
            raise TypeError("track needs keys=, tags= or both")
        compiled: dict[str, list[Any]] = {"keys": [], "tags": []}
        needed: set[str] = set()
        for kind, given in sources.items():
            for source in given:
                if isinstance(source, str):
                    template = _Template(source, columns, name)
                    needed.update(template.fields)
                    compiled[kind].append(template)
                elif callable(source):
                    needed.update(columns)
                    compiled[kind].append(source)
                else:
                    raise TypeError(
                        f"a key or tag source is a str or a function, not {source!r}"
                    )
        attributes = tuple(c for c in columns if c in needed)
        with self._lock:
            declarations = self._declarations.setdefault(cls, [])
            declarations.append(
                _Declaration(cls, attributes, compiled["keys"], compiled["tags"])
            )
            self._tables.update(t for t in mapper.tables if isinstance(t, Table))
            first = len(declarations) == 1
        # The value an update replaces must be known even if the attribute
        # was expired when it was set: load it then (active history).
        for attribute in attributes:
            self._listen(
                getattr(cls, attribute),
                "set",
                _keep,
                active_history=True,
                propagate=True,  # subclasses' attributes too
            )
        if first:
            self._listen(cls, "after_insert", self._after_insert, propagate=True)
            self._listen(cls, "after_update", self._after_update, propagate=True)
            self._listen(cls, "after_delete", self._after_delete, propagate=True)

    def attach(self, target: Any = Session) -> None:
        """Invalidate after the commits of ``target``: a ``Session`` subclass
        (``Session`` itself, the default: every session, including those
        behind ``AsyncSession``), a ``sessionmaker``, a ``Session`` or an
        ``AsyncSession``. For one ``async_sessionmaker`` only, give it a
        ``sync_session_class`` and attach that class."""
        asyncio_ext = sys.modules.get("sqlalchemy.ext.asyncio")  # needs greenlet
        if asyncio_ext is not None:
            if isinstance(target, asyncio_ext.AsyncSession):
                target = target.sync_session
            elif target is asyncio_ext.AsyncSession:
                target = Session
        self._listen(target, "before_flush", self._before_flush)
        self._listen(target, "after_flush", self._after_flush)
        self._listen(target, "after_commit", self._after_commit)
        self._listen(target, "after_transaction_end", self._after_transaction_end)
        self._listen(target, "do_orm_execute", self._do_orm_execute)

    def close(self) -> None:
        """Remove every listener this tracker added."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for target, name, fn in reversed(listeners):
            if event.contains(target, name, fn):
                event.remove(target, name, fn)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self, target: Any, name: str, fn: Any, **kw: Any) -> None:
        event.listen(target, name, fn, **kw)
        with self._lock:
            self._listeners.append((target, name, fn))

    # -- collecting ----------------------------------------------------------

    def _state(self, session: Session) -> _SessionState:
        state = session.info.get(self)
        if state is None:
            state = session.info[self] = _SessionState()
        return state

    def _for(self, obj: Any) -> list[_Declaration]:
        found: list[_Declaration] = []
        for cls in type(obj).__mro__:
            found += self._declarations.get(cls, ())
        return found

    def _check_context(self) -> None:
        """An AsyncCache is awaited from the commit of an ``AsyncSession``
        (SQLAlchemy runs its events in a greenlet): refuse, before the
        commit, a plain ``Session`` that could not await it."""
        if not self._async:
            return
        probe = _nothing()
        try:
            asyncio.get_running_loop()
            await_only(probe)
        except Exception as exc:
            probe.close()
            raise TypeError(
                "a Tracker over an AsyncCache invalidates after AsyncSession "
                "commits only; give a sync Session a Tracker over a Cache"
            ) from exc

    def _before_flush(self, session: Session, context: UOWTransaction, _: Any) -> None:
        state = self._state(session)
        state.flushed.clear()  # left by a flush that failed
        if not self._declarations:
            return
        self._check_context()
        for obj in list(session.dirty) + list(session.deleted):
            declarations = self._for(obj)
            if declarations:
                attrs = inspect(obj).attrs
                for d in declarations:
                    for attribute in d.attributes:
                        attrs[attribute].load_history()  # loads it if expired

    def _record(self, target: Any, *, old: bool, deleted: bool) -> None:
        session = object_session(target)
        state = None if session is None else session.info.get(self)
        if state is None:  # a session this tracker is not attached to
            return
        declarations = self._for(target)
        values = _old_values(target, declarations) if old else None
        state.flushed.append((target, declarations, values, deleted))

    def _after_insert(self, mapper: Any, connection: Any, target: Any) -> None:
        self._record(target, old=False, deleted=False)

    def _after_update(self, mapper: Any, connection: Any, target: Any) -> None:
        self._record(target, old=True, deleted=False)

    def _after_delete(self, mapper: Any, connection: Any, target: Any) -> None:
        self._record(target, old=True, deleted=True)

    def _after_flush(self, session: Session, context: UOWTransaction) -> None:
        state = session.info.get(self)
        if state is None or not state.flushed:
            return
        flushed, state.flushed = state.flushed, []
        changes = _Changes()
        for obj, declarations, old, deleted in flushed:
            if old is not None:
                self._render(declarations, old, changes)
            if not deleted:
                new = {a: getattr(obj, a) for d in declarations for a in d.attributes}
                self._render(declarations, new, changes)
        self._file(session, state, changes)

    def _render(
        self, declarations: list[_Declaration], values: dict[str, Any], into: _Changes
    ) -> None:
        view = MappingProxyType(values)
        for d in declarations:
            for source, out in ((s, into.keys) for s in d.keys):
                out.update(self._rendered(source, view))
            for source, out in ((s, into.tags) for s in d.tags):
                out.update(self._rendered(source, view))

    def _rendered(self, source: Any, values: Mapping[str, Any]) -> list[str]:
        if isinstance(source, _Template):
            return [source.render(values, self._part)]
        found = source(values)
        if isinstance(found, str):
            raise TypeError("a key or tag function returns a list, not one str")
        return list(found)

    def _part(self, value: Any) -> str:
        return self._cache.key("x", value)[2:]

    def _file(self, session: Session, state: _SessionState, changes: _Changes) -> None:
        """Add ``changes`` to the innermost transaction's set, after checking
        them (a bad key fails the flush, before anything commits)."""
        if not changes.keys and not changes.tags:
            return
        self._cache.write_through(*changes.keys, tags=changes.tags)  # checks only
        transaction = session.get_nested_transaction() or session.get_transaction()
        if transaction is None:  # pragma: no cover - a flush runs in one
            return
        state.pending.setdefault(transaction, _Changes()).merge(changes)

    def _do_orm_execute(self, execute: ORMExecuteState) -> None:
        if not (execute.is_insert or execute.is_update or execute.is_delete):
            return
        options = execute.execution_options
        keys, tags = options.get(KEYS_OPTION), options.get(TAGS_OPTION)
        if keys is None and tags is None:
            table = getattr(execute.statement, "table", None)
            mapper = execute.bind_mapper
            tracked_class = mapper is not None and any(
                cls in self._declarations for cls in mapper.class_.__mro__
            )
            if tracked_class or (table is not None and table in self._tables):
                name = getattr(table, "name", "")
                if mapper is not None:
                    name = mapper.class_.__name__
                raise UntrackedWriteError(
                    f"a bulk {_verb(execute)} on {name!r} bypasses the unit of "
                    "work: freshcache cannot see the rows it changes. Load and "
                    f"change the objects, or say what it invalidates with "
                    f".execution_options({KEYS_OPTION}=[...], {TAGS_OPTION}=[...])"
                )
            return
        for given in (keys, tags):
            if isinstance(given, str):
                raise TypeError(f"{KEYS_OPTION} and {TAGS_OPTION} are lists of str")
        self._check_context()
        state = self._state(execute.session)
        self._file(execute.session, state, _Changes(set(keys or ()), set(tags or ())))

    # -- after the commit ----------------------------------------------------

    def _after_commit(self, session: Session) -> None:
        state = session.info.get(self)
        if state is None:
            return
        nested = session.get_nested_transaction()
        if nested is not None:  # a savepoint released: its parent keeps them
            changes = state.pending.pop(nested, None)
            parent = nested.parent
            if changes is not None and parent is not None:
                state.pending.setdefault(parent, _Changes()).merge(changes)
            return
        root = session.get_transaction()
        changes = None if root is None else state.pending.pop(root, None)
        if changes is not None:
            self._invalidate(changes)

    def _after_transaction_end(
        self, session: Session, transaction: SessionTransaction
    ) -> None:
        state = session.info.get(self)
        if state is not None:  # rolled back (committed ones were popped)
            state.pending.pop(transaction, None)

    def _invalidate(self, changes: _Changes) -> None:
        keys, tags = sorted(changes.keys), sorted(changes.tags)
        try:
            cache = self._cache
            if isinstance(cache, AsyncCache):
                refresh: Any = cache.write_through(*keys, tags=tags)
                await_only(refresh.refresh())  # in the AsyncSession's greenlet
            else:
                refresh = cache.write_through(*keys, tags=tags)
                refresh.refresh()
        except Exception as exc:
            with self._lock:
                self.commits += 1
                self.failed += 1
            logger.error(
                "invalidation after a commit failed (%s): %d keys and %d tags "
                "not invalidated",
                type(exc).__name__,
                len(keys),
                len(tags),
                extra=_fields("commit_invalidation_failed", type(exc).__name__),
            )
            return
        with self._lock:
            self.commits += 1
            self.queued += not refresh.landed
        if not refresh.landed:
            logger.warning(
                "Redis did not take the invalidation after a commit: %d keys and "
                "%d tags queued for retry (stats().pending_invalidations)",
                len(keys),
                len(tags),
                extra=_fields("invalidation_queued"),
            )


def _keep(target: Any, value: Any, old: Any, initiator: Any) -> Any:
    return value


def _verb(execute: ORMExecuteState) -> str:
    if execute.is_insert:
        return "INSERT"
    return "UPDATE" if execute.is_update else "DELETE"


def _old_values(target: Any, declarations: list[_Declaration]) -> dict[str, Any]:
    """The values the row had before this flush, from the attributes'
    history (loaded by ``before_flush`` or when they were set)."""
    attrs = inspect(target).attrs
    values: dict[str, Any] = {}
    for d in declarations:
        for attribute in d.attributes:
            history = attrs[attribute].history
            if history.deleted:
                values[attribute] = history.deleted[0]
            elif history.unchanged:
                values[attribute] = history.unchanged[0]
            else:
                raise UntrackedWriteError(
                    f"the old value of {type(target).__name__}.{attribute} was "
                    "never loaded: freshcache cannot tell which keys the old row fed"
                )
    return values
