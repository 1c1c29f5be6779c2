"""Exact-type tags: values <-> data JSON and msgpack hold exactly.

``to_plain`` turns a value into data JSON or msgpack holds exactly; a value
the format cannot represent becomes ``{"!": tag, "v": payload}``, and a real
dict holding the key ``"!"`` (or keys the format can't hold) is itself tagged,
as a list of pairs. ``from_plain`` undoes it. Round-trip rules:

* exact: None, bool, int (any size), float (NaN, ±inf, -0.0), str, bytes,
  bytearray, list, tuple, set, frozenset, dict (any hashable keys, order kept),
  datetime, date, time, timedelta, Decimal, UUID.
* datetime/time: a fixed offset comes back as ``datetime.timezone`` (its name
  is dropped); a ``ZoneInfo`` comes back as the same zone (as a fixed offset
  if the reading machine lacks it); other tzinfo classes come back as a fixed
  offset. ``fold`` is kept. NaN comes back as ``float("nan")``.
* dataclasses and pydantic v2 models are stored as a dict of their fields
  (pydantic: ``model_dump(mode="python", by_alias=True, round_trip=True)``)
  and decode as that plain dict; Enum members are stored as their value.
  ``revival.make_reviver`` turns them back into the annotated type.
  Subclasses of str, int, float, bytes, list, tuple, dict, set and frozenset
  (NamedTuple, OrderedDict, Counter...) come back as the base type.
* anything else (functions, locks, sockets, generators, files, arbitrary
  objects), cycles, nesting deeper than 255 levels, lone surrogates,
  tzinfo without a UTC offset: ``SerializationError``.
"""

from __future__ import annotations

import sys
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import fields
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from freshcache.errors import SerializationError

__all__ = ["MAX_DEPTH", "from_plain", "is_model", "to_plain"]

MAX_DEPTH: Final = 255  # orjson's own nesting limit
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1  # orjson and msgpack both hold [-2**63, 2**64)
_MSGPACK_KEYS: Final = (str, int, float, bool, bytes, type(None))


def to_plain(value: object, *, json: bool) -> tuple[object, bool]:
    """``(plain, tagged)``: ``plain`` is ``value`` itself when nothing changed.

    ``json=False`` is the msgpack profile: bytes, NaN/inf and non-str dict
    keys pass through. Raises ``SerializationError``.
    """
    tagger = _Tagger(json)
    plain = tagger.walk(value, 0)
    return plain, tagger.tagged


def from_plain(tree: object) -> object:
    """Revive the tags in a freshly decoded tree (mutated in place)."""
    return _untag(tree, 0)


# -- encode side ----------------------------------------------------------


class _Tagger:
    """One walk over a value, copying only the parts that need a tag."""

    __slots__ = ("in_key", "json", "tagged")

    def __init__(self, json: bool) -> None:
        self.json = json
        self.tagged = False
        self.in_key = 0  # > 0 while walking dict keys or set members

    def tag(self, name: str, v: object) -> dict[str, object]:
        self.tagged = True
        return {"!": name, "v": v}

    def walk(self, o: Any, depth: int) -> Any:
        t = type(o)
        if t is str or t is bool or o is None:
            return o
        if t is int:
            return o if _INT_MIN <= o <= _INT_MAX else self.tag("i", format(o, "x"))
        if t is float:
            # o - o is NaN exactly for NaN and ±inf, which JSON cannot spell
            return self.tag("f", repr(o)) if self.json and o - o != 0.0 else o
        if depth >= MAX_DEPTH:
            raise SerializationError(
                f"value nested deeper than {MAX_DEPTH} levels (or recursive)"
            )
        if t is list:
            return self.walk_list(o, depth + 1)
        if t is dict:
            return self.walk_dict(o, depth + 1)
        encoder = _ENCODERS.get(t)
        if encoder is not None:
            return encoder(self, o, depth + 1)
        return self.walk(self.coerce(o), depth + 1)

    def walk_list(self, o: list[Any], depth: int) -> list[Any]:
        out: list[Any] | None = None
        for i, x in enumerate(o):
            y = self.walk(x, depth)
            if y is not x and out is None:
                out = o[:i]
            if out is not None:
                out.append(y)
        return o if out is None else out

    def walk_keys(self, o: Any, depth: int) -> list[Any]:
        self.in_key += 1
        try:
            return [self.walk(x, depth) for x in o]
        finally:
            self.in_key -= 1

    def walk_dict(self, o: dict[Any, Any], depth: int) -> Any:
        if "!" in o or not self.plain_keys(o):
            keys = self.walk_keys(o, depth)
            values = [self.walk(v, depth) for v in o.values()]
            return self.tag(
                "m", [list(pair) for pair in zip(keys, values, strict=True)]
            )
        out: dict[Any, Any] | None = None
        for k, v in o.items():
            w = self.walk(v, depth)
            if w is not v:
                if out is None:
                    out = dict(o)
                out[k] = w
        return o if out is None else out

    def plain_keys(self, o: dict[Any, Any]) -> bool:
        if self.json:
            return all(type(k) is str for k in o)
        return all(
            type(k) in _MSGPACK_KEYS
            and (type(k) is not int or _INT_MIN <= k <= _INT_MAX)
            for k in o
        )

    def coerce(self, o: Any) -> Any:
        """A stand-in to walk for a value with no tag of its own."""
        if isinstance(o, Enum):
            return o.value
        if hasattr(type(o), "__dataclass_fields__") and not isinstance(o, type):
            self.check_hashable(o)
            return {f.name: getattr(o, f.name) for f in fields(o)}
        if is_model(type(o)):
            self.check_hashable(o)
            return o.model_dump(mode="python", by_alias=True, round_trip=True)
        for base, convert in _BASES.items():
            if isinstance(o, base):
                return convert(o)
        raise SerializationError(f"cannot serialize a {_name(type(o))} value")

    def check_hashable(self, o: object) -> None:
        # stored as a dict of fields, it would come back unhashable
        if self.in_key:
            raise SerializationError(
                f"a {_name(type(o))} cannot be a dict key or set member"
            )


def _name(tp: object) -> str:
    if isinstance(tp, type):
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


def is_model(tp: object) -> bool:
    # pydantic is imported by whoever made the model; never import it here
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(tp, type)
        and issubclass(tp, pydantic.BaseModel)
    )


def _zone_key(o: datetime | time) -> str | None:
    tz = o.tzinfo
    if isinstance(tz, ZoneInfo) and tz.key is not None:
        return tz.key
    if tz is not None and o.utcoffset() is None:
        raise SerializationError(f"{_name(type(tz))} gives no UTC offset")
    return None


def _sub_second_offset(o: datetime | time) -> int | None:
    """A fixed offset with microseconds, in microseconds: ``fromisoformat``
    of Python 3.11 drops them, so they travel apart."""
    offset = o.utcoffset() if type(o.tzinfo) is timezone else None
    if offset is None or not offset.microseconds:
        return None
    return offset // timedelta(microseconds=1)


def _enc_clock(tag: str) -> Callable[[_Tagger, Any, int], object]:
    def encode(tg: _Tagger, o: datetime | time, depth: int) -> object:
        fine = _sub_second_offset(o)
        if fine is not None:
            return tg.tag(tag + "x", [o.isoformat(), None, o.fold, fine])
        if o.fold == 0 and (o.tzinfo is None or type(o.tzinfo) is timezone):
            return tg.tag(tag, o.isoformat())
        return tg.tag(tag + "x", [o.isoformat(), _zone_key(o), o.fold])

    return encode


def _enc_bytes(tg: _Tagger, o: bytes, depth: int) -> object:
    return tg.tag("b", b64encode(o).decode("ascii")) if tg.json else o


def _enc_bytearray(tg: _Tagger, o: bytearray, depth: int) -> object:
    return tg.tag("ba", b64encode(o).decode("ascii") if tg.json else bytes(o))


_ENCODERS: Final[dict[type, Callable[[_Tagger, Any, int], object]]] = {
    tuple: lambda tg, o, d: tg.tag("t", tg.walk_list(list(o), d)),
    set: lambda tg, o, d: tg.tag("s", tg.walk_keys(o, d)),
    frozenset: lambda tg, o, d: tg.tag("fs", tg.walk_keys(o, d)),
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    datetime: _enc_clock("dt"),
    time: _enc_clock("tm"),
    date: lambda tg, o, d: tg.tag("d", o.isoformat()),
    timedelta: lambda tg, o, d: tg.tag("td", [o.days, o.seconds, o.microseconds]),
    Decimal: lambda tg, o, d: tg.tag("dec", str(o)),
    UUID: lambda tg, o, d: tg.tag("u", o.hex),
}
# subclass -> base type, never through an overridden __str__ and the like
_BASES: Final[dict[type, Callable[[Any], object]]] = {
    str: str.__str__,
    int: int.__int__,
    float: float.__float__,
    bytes: bytes,
    list: list,
    tuple: tuple,
    dict: dict,
    set: set,
    frozenset: frozenset,
}


# -- decode side ----------------------------------------------------------


def _untag(o: Any, depth: int) -> Any:
    if depth > MAX_DEPTH + 2:
        raise ValueError("nested too deep")
    t = type(o)
    if t is list:
        for i, x in enumerate(o):
            if type(x) is list or type(x) is dict:
                o[i] = _untag(x, depth + 1)
        return o
    if t is dict:
        if "!" in o:
            return _DECODERS[o["!"]](o["v"], depth + 1)
        for k, x in o.items():
            if type(x) is list or type(x) is dict:
                o[k] = _untag(x, depth + 1)
    return o


def _items(v: Any, depth: int) -> list[Any]:
    if type(v) is not list:
        raise ValueError("malformed tag")
    return [_untag(x, depth + 1) for x in v]


def _zone(key: Any) -> ZoneInfo | None:
    if key is None:
        return None
    try:
        return ZoneInfo(key)  # a malformed key raises ValueError: undecodable
    except (OSError, LookupError):  # zone missing here: keep the fixed offset
        return None


def _dec_clock(parse: Callable[[str], datetime | time]) -> Callable[[Any, int], object]:
    def decode(v: Any, depth: int) -> object:
        iso, key, fold, *fine = v
        o = parse(iso)
        zone: tzinfo | None = _zone(key)
        if fine:  # a fixed offset with microseconds
            zone = timezone(timedelta(microseconds=int(fine[0])))
        if zone is not None:
            o = o.replace(tzinfo=zone)
        return o.replace(fold=1) if fold else o

    return decode


def _dec_bytearray(v: Any, depth: int) -> bytearray:
    return bytearray(v if type(v) is bytes else b64decode(v, validate=True))


_DECODERS: Final[dict[Any, Callable[[Any, int], object]]] = {
    "t": lambda v, d: tuple(_items(v, d)),
    "s": lambda v, d: set(_items(v, d)),
    "fs": lambda v, d: frozenset(_items(v, d)),
    "m": lambda v, d: {_untag(k, d): _untag(x, d) for k, x in v},
    "i": lambda v, d: int(v, 16),
    "f": lambda v, d: float(v),
    "b": lambda v, d: b64decode(v, validate=True),
    "ba": _dec_bytearray,
    "dt": lambda v, d: datetime.fromisoformat(v),
    "dtx": _dec_clock(datetime.fromisoformat),
    "tm": lambda v, d: time.fromisoformat(v),
    "tmx": _dec_clock(time.fromisoformat),
    "d": lambda v, d: date.fromisoformat(v),
    "td": lambda v, d: timedelta(*v),
    "dec": lambda v, d: Decimal(v),
    "u": lambda v, d: UUID(hex=v),
}
