"""Typed revival: decoded cache data back into the annotated return type.

The codec stores dataclasses and pydantic models as a dict of their fields and
Enum members as their value (see ``typetags``); a reviver built once from
the function's return annotation turns that data back into the type.
pydantic is never imported here: a model class can only exist once its user
has imported it.
"""

from __future__ import annotations

import collections.abc as abc
import contextlib
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any, Final

from freshcache._core.codec.typetags import is_model
from freshcache.errors import RevivalError

__all__ = ["Reviver", "make_reviver"]


Reviver = Callable[[Any], Any]
_Plan = tuple[Callable[[Any], bool], Reviver | None]  # (accepts, reviver)


def make_reviver(tp: object) -> Reviver | None:
    """A function reviving decoded data into ``tp``; None when none is needed.

    Handles dataclasses (``cls(**fields)``, nested through their type hints),
    pydantic v2 models (``model_validate``), Enums, NamedTuples, ``list[X]``,
    ``set[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[K, V]``, unions and
    ``Optional``, ``Annotated`` and ``NewType``; anything else is left alone.
    Data of the wrong shape (None for ``-> User``) passes through unchanged.
    A union tries its members in order. Raises ``RevivalError``.
    """
    if tp is None:
        return None
    try:
        # repr too: A | B == B | A, but a union tries its members in order
        return _cached_reviver(tp, repr(tp))
    except TypeError:  # an unhashable annotation: build it afresh
        return _build_reviver(tp)


@functools.lru_cache(maxsize=512)
def _cached_reviver(tp: object, spelling: str) -> Reviver | None:
    return _build_reviver(tp)


def _build_reviver(tp: object) -> Reviver | None:
    inner = _Planner().plan(tp)[1]
    if inner is None:
        return None

    def reviver(value: Any) -> Any:
        try:
            return inner(value)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # the message names types only: cached values never reach logs
            raise RevivalError(
                f"cached data does not fit {_name(tp)} ({type(exc).__name__})"
            ) from exc

    return reviver


def _name(tp: object) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)


def _bind(hint: Any, params: dict[Any, Any]) -> Any:
    """``hint`` with the type arguments of a generic dataclass filled in."""
    if not params:
        return hint
    if isinstance(hint, typing.TypeVar):
        return params.get(hint, Any)
    wanted = getattr(hint, "__parameters__", ())
    if wanted:
        with contextlib.suppress(Exception):
            return hint[tuple(params.get(p, Any) for p in wanted)]
    return hint


def _anything(v: object) -> bool:
    return True


def _not_none(v: object) -> bool:
    return v is not None


def _is_dict(v: object) -> bool:
    return type(v) is dict


def _is_collection(v: object) -> bool:
    return type(v) in (list, tuple, set, frozenset)


_COLLECTIONS: Final = frozenset(
    {list, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet}
    | {abc.Collection, abc.Iterable}
)
_MAPPINGS: Final = frozenset({dict, abc.Mapping, abc.MutableMapping})


class _Planner:
    def __init__(self) -> None:
        self.memo: dict[object, _Plan] = {}  # also breaks recursive dataclasses

    def plan(self, tp: Any) -> _Plan:
        if tp is None or tp is type(None):
            return (lambda v: v is None), None
        try:
            return self.memo[tp]
        except (KeyError, TypeError):  # TypeError: unhashable annotation
            pass
        plan = self.build(tp)
        with contextlib.suppress(TypeError):
            self.memo[tp] = plan
        return plan

    def build(self, tp: Any) -> _Plan:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.plan(args[0])
        if origin is typing.Union or origin is types.UnionType:
            return self.union(args)
        if hasattr(tp, "__supertype__"):  # NewType
            return self.plan(tp.__supertype__)
        if origin in _COLLECTIONS or (origin is tuple and args[-1:] == (...,)):
            return self.collection(args[0] if args else Any)
        if origin is tuple:
            return self.fixed_tuple(args)
        if origin in _MAPPINGS:
            return self.mapping(*(args or (Any, Any)))
        key, params = tp, {}
        if origin is not None:  # a generic dataclass, or something we leave alone
            wanted = getattr(origin, "__parameters__", ())
            tp, params = origin, dict(zip(wanted, args, strict=False))
        if not isinstance(tp, type):
            return _anything, None  # Any, TypeVar, Literal, a string...
        if is_dataclass(tp):
            return self.dataclass(tp, key, params)
        if is_model(tp):
            model: Any = tp
            return (
                _not_none,
                lambda v: v if isinstance(v, model) else model.model_validate(v),
            )
        if issubclass(tp, Enum):
            enum: Any = tp
            return _not_none, lambda v: v if isinstance(v, enum) else enum(v)
        if issubclass(tp, tuple) and hasattr(tp, "_fields"):
            return self.named_tuple(tp)
        cls = tp
        return (lambda v: isinstance(v, cls)), None

    def union(self, args: tuple[Any, ...]) -> _Plan:
        members = [self.plan(a) for a in args]

        def accepts(v: Any) -> bool:
            return any(ok(v) for ok, _ in members)

        if all(r is None for _, r in members):
            return accepts, None

        def reviver(v: Any) -> Any:
            error: Exception | None = None
            for ok, r in members:
                if ok(v):
                    if r is None:
                        return v
                    try:
                        return r(v)
                    except (TypeError, ValueError, KeyError, AttributeError) as exc:
                        error = exc
            if error is not None:
                raise error
            return v

        return accepts, reviver

    def collection(self, item: Any) -> _Plan:
        r = self.plan(item)[1]
        if r is None:
            return _is_collection, None
        each = r

        def reviver(v: Any) -> Any:
            t = type(v)
            return t(map(each, v)) if t in (list, tuple, set, frozenset) else v

        return _is_collection, reviver

    def fixed_tuple(self, args: tuple[Any, ...]) -> _Plan:
        revivers = [self.plan(a)[1] for a in args if a != ()]
        if all(r is None for r in revivers):
            return _is_collection, None

        def reviver(v: Any) -> Any:
            if type(v) not in (list, tuple) or len(v) != len(revivers):
                return v
            return type(v)(
                x if r is None else r(x) for r, x in zip(revivers, v, strict=True)
            )

        return _is_collection, reviver

    def mapping(self, key: Any, value: Any) -> _Plan:
        kr, vr = self.plan(key)[1], self.plan(value)[1]
        if kr is None and vr is None:
            return _is_dict, None

        def reviver(v: Any) -> Any:
            if type(v) is not dict:
                return v
            return {
                k if kr is None else kr(k): x if vr is None else vr(x)
                for k, x in v.items()
            }

        return _is_dict, reviver

    def field_revivers(
        self, cls: type, names: list[str], params: dict[Any, Any]
    ) -> list[tuple[str, Reviver | None]]:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # unresolvable forward references: fields as decoded
            hints = {}
        return [(n, self.plan(_bind(hints.get(n, Any), params))[1]) for n in names]

    def dataclass(self, cls: Any, key: object, params: dict[Any, Any]) -> _Plan:
        spec: list[tuple[str, Reviver | None]] = []

        def reviver(v: Any) -> Any:
            if type(v) is not dict:
                return v
            kwargs = {n: v[n] if r is None else r(v[n]) for n, r in spec if n in v}
            return cls(**kwargs)

        self.memo[key] = plan = (_is_dict, reviver)  # before the fields: recursion
        names = [f.name for f in fields(cls) if f.init]
        spec += self.field_revivers(cls, names, params)
        return plan

    def named_tuple(self, cls: Any) -> _Plan:
        spec = self.field_revivers(cls, list(cls._fields), {})

        def reviver(v: Any) -> Any:
            if type(v) not in (list, tuple) or len(v) != len(spec):
                return v
            return cls(
                *(x if r is None else r(x) for (_, r), x in zip(spec, v, strict=True))
            )

        return _is_collection, reviver
