"""Key templates: ``"user:{user_id}"`` compiled once per decorated function,
rendered from its arguments with the encoding of ``_core/keys.py`` (injective:
different arguments, different keys).

Compiling reads the signature once; rendering is a closure with the common
one-field case inlined (no ``inspect`` per call).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, NamedTuple

from freshcache._core.keys import (
    check_max_length,
    encode_int,
    encode_part,
    escape,
    segment,
    shorten,
)
from freshcache.errors import UnstableKeyError

__all__ = ["KeyTemplate"]

_Render = Callable[[tuple[object, ...], dict[str, object]], str]
_Getter = Callable[[tuple[object, ...], dict[str, object]], object]
_FIELD: Final = re.compile(r"\{([^{}]*)\}")

_MISSING: Final = object()
_NOT_A_KEYWORD: Final[Any] = object()  # never a key of kwargs
_NO_INDEX: Final = 1 << 62
_P = inspect.Parameter


class _Arg(NamedTuple):
    """Where one argument is found: precomputed from the signature, once."""

    position: int  # index in args, or _NO_INDEX (keyword-only)
    name: str  # keyword name, or _NOT_A_KEYWORD (positional-only)
    default: object  # _MISSING when required
    error: str


def _arg(param: _P | None, index: int, name: str, qualname: str) -> _Arg:
    kind = _P.KEYWORD_ONLY if param is None else param.kind  # None: in **kwargs
    required = param is None or param.default is _P.empty
    return _Arg(
        _NO_INDEX if kind is _P.KEYWORD_ONLY else index,
        _NOT_A_KEYWORD if kind is _P.POSITIONAL_ONLY else name,
        _MISSING if required else param.default,  # type: ignore[union-attr]
        f"{qualname}() missing required argument {name!r} (used by its cache key)",
    )


def _getter(arg: _Arg) -> _Getter:
    index, name, default, error = arg

    def get(args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        v = args[index] if index < len(args) else kwargs.get(name, default)
        if v is _MISSING:
            raise TypeError(error)
        return v

    return get


def _special(param: _P, index: int, params: list[_P]) -> _Getter | None:
    """Getters for ``*args`` (a list) and ``**kwargs`` (the unbound entries)."""
    if param.kind is _P.VAR_POSITIONAL:
        return lambda args, kwargs: list(args[index:])
    if param.kind is not _P.VAR_KEYWORD:
        return None
    bound = {
        p.name for p in params if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
    }
    return lambda args, kwargs: {k: v for k, v in kwargs.items() if k not in bound}


def _render_one(head: str, tail: str, arg: _Arg, max_length: int) -> _Render:
    """The common one-field case, with the fast paths of ``segment`` inlined."""
    index, name, default, error = arg
    missing = _MISSING

    def render(args: tuple[object, ...], kwargs: dict[str, object]) -> str:
        v: Any = args[index] if index < len(args) else kwargs.get(name, default)
        t = type(v)
        if t is int:
            try:
                s = str(v)
            except ValueError:  # beyond the int-to-str digit limit
                s = encode_int(v)
        elif t is str and (
            (v.isalnum() and not v.isdecimal()) or v.isidentifier()
        ):  # as in encode_part
            s = v
        elif v is missing:
            raise TypeError(error)
        else:
            s = encode_part(v)
        if len(s) > max_length:
            s = shorten(s)
        return head + s + tail

    return render


def _make_render(
    consts: list[str], fields: list[_Getter | _Arg], max_length: int
) -> _Render:
    if not fields:
        key = consts[0]
        return lambda args, kwargs: key
    if len(fields) == 1 and isinstance(fields[0], _Arg):
        return _render_one(consts[0], consts[1], fields[0], max_length)
    getters = [_getter(f) if isinstance(f, _Arg) else f for f in fields]
    head, pairs = consts[0], list(zip(getters, consts[1:], strict=True))

    def render(args: tuple[object, ...], kwargs: dict[str, object]) -> str:
        out = head
        for get, lit in pairs:
            out += segment(get(args, kwargs), max_length) + lit
        return out

    return render


@dataclass(frozen=True, slots=True, eq=False)
class KeyTemplate:
    """A key template compiled once, at decoration time (use `compile`).

    ``render(args, kwargs)`` returns the key after the head, e.g. ``"user:123"``
    (a plain closure attribute: no method binding on the hot path).
    ``fields`` lists the field expressions in template order (``"user.id"``);
    for the default template, the parameter names.
    """

    template: str | None
    namespace: str
    fields: tuple[str, ...]
    render: _Render = field(repr=False, compare=False)

    @classmethod
    def compile(
        cls,
        template: str | None,
        func: Callable[..., object],
        *,
        max_part_length: int = 64,
        head: str = "",
        namespace: str | None = None,
    ) -> KeyTemplate:
        """Compile ``template`` for ``func``; ``ValueError`` if it is malformed.

        ``head`` (a ``KeyBuilder.head``) is baked into ``render``'s output, so
        that the hot path builds the full key in one step.

        ``None`` is the default template: ``namespace`` (or, without one,
        ``module.qualname``) and every argument as ``name=value``, ``self``
        and ``cls`` included; a bound method's ``self`` is part of it too.
        Without ``namespace``, a function that ``module.qualname`` does not
        name uniquely is refused (`UnstableKeyError`): a lambda, a function
        defined inside another (``<locals>``: each call makes another), a
        ``functools.partial`` or another callable object.
        """
        max_length = check_max_length(max_part_length)
        qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
        if template is None:
            return cls._default(func, qualname, max_length, head, namespace)
        if namespace is not None:
            raise ValueError(
                "give a key template or a namespace, not both (a template "
                "starts with its namespace)"
            )
        params = list(inspect.signature(func).parameters.values())
        if not isinstance(template, str):
            raise TypeError(f"key template must be a str or None, not {template!r}")
        first, *rest = template.split(":")
        if not first or "{" in first or "}" in first:
            raise ValueError(f"key template {template!r} must start with a namespace")
        consts, getters, fields = [escape(first)], list[_Getter | _Arg](), []
        for piece in rest:
            match = _FIELD.fullmatch(piece)
            if match is None and (not piece or "{" in piece or "}" in piece):
                raise ValueError(
                    f"key template {template!r}: segment {piece!r} must be "
                    "non-empty literal text or exactly one {field}"
                )
            if match is None:
                consts[-1] += ":" + escape(piece)
                continue
            expr = match[1]
            getters.append(_field(template, expr, params, qualname))
            fields.append(expr)
            consts[-1] += ":"
            consts.append("")
        ns = consts[0].partition(":")[0]
        consts[0] = head + consts[0]
        render = _make_render(consts, getters, max_length)
        return cls(template, ns, tuple(fields), render)

    @classmethod
    def _default(
        cls,
        func: Callable[..., object],
        qualname: str,
        max_length: int,
        head: str,
        namespace: str | None,
    ) -> KeyTemplate:
        if namespace is None:
            name = _default_name(func, qualname)
        elif isinstance(namespace, str) and namespace:
            name = namespace
        else:
            raise ValueError(f"namespace must be a non-empty str, not {namespace!r}")
        ns = escape(name)
        consts, getters, fields = [head + ns], list[_Getter | _Arg](), []
        if inspect.ismethod(func):  # bound: its self is no argument, but keyed
            target = func.__func__
            first = next(iter(inspect.signature(target).parameters), "self")
            consts[0] += f":{escape(first)}={segment(func.__self__, max_length)}"
        params = list(inspect.signature(func).parameters.values())
        for i, p in enumerate(params):
            getters.append(_special(p, i, params) or _arg(p, i, p.name, qualname))
            fields.append(p.name)
            consts[-1] += f":{escape(p.name)}="
            consts.append("")
        render = _make_render(consts, getters, max_length)
        return cls(None, ns, tuple(fields), render)


def _default_name(func: Callable[..., object], qualname: str) -> str:
    """``module.qualname`` of a function it names uniquely; else refused."""
    target: Any = func.__func__ if inspect.ismethod(func) else func
    why = None
    if not inspect.isfunction(target):
        why = f"a {type(func).__qualname__} object is not a named function"
    elif "<lambda>" in qualname:
        why = "a lambda has no name"
    elif "<locals>" in qualname:
        why = (
            "it is defined inside another function: each call of that "
            "function makes another one with the same name"
        )
    if why is not None:
        raise UnstableKeyError(
            f"cannot key {qualname!r} by its name: {why}; name its keys with a "
            'key template (cached("name:{arg}")) or cached(namespace="name")'
        )
    return f"{target.__module__}.{qualname}"


def _field(template: str, expr: str, params: list[_P], qualname: str) -> _Getter | _Arg:
    root, *attrs = expr.split(".")
    if not all(s.isidentifier() for s in (root, *attrs)):
        raise ValueError(f"key template {template!r}: bad field {{{expr}}}")
    by_name = {p.name: (i, p) for i, p in enumerate(params)}
    if root in by_name:
        index, param = by_name[root]
        get = _special(param, index, params) or _arg(param, index, root, qualname)
    elif any(p.kind is _P.VAR_KEYWORD for p in params):
        get = _arg(None, _NO_INDEX, root, qualname)  # an entry of **kwargs
    else:
        raise ValueError(
            f"key template {template!r} names {root!r}, "
            f"which is not a parameter of {qualname}()"
        )
    if not attrs:
        return get
    fetch = _getter(get) if isinstance(get, _Arg) else get
    attr = attrgetter(".".join(attrs))
    return lambda args, kwargs: attr(fetch(args, kwargs))
