"""Cache keys: readable, injective, glob-safe.

A key is ``prefix:version:namespace:part:...:name=value``, for example
``app:v3:user:123:profile`` or ``app:v3:search:products:category=books:page=2``.
Different arguments never give the same key, and keys never contain ``{`` or
``}`` (Redis Cluster hash tags wrap a whole key in braces). The head and the
namespace never contain glob characters; patterns go through `glob_escape`.
`core.templates.KeyTemplate` renders the same keys from a function's arguments.

Encoding of one argument (`encode_part`)
----------------------------------------
* ``str``: percent-escaped (``%XX`` per UTF-8 byte): the ASCII characters
  ``% : ! , = ( ) [ ] { } * ? \\ ~ < > " ' #`` and space, every control or
  ``isspace()`` character, and the Unicode categories Cc, Cf, Zs, Zl, Zp, Co,
  Cn. Other non-ASCII text stays readable, byte-exact, never normalized (NFC
  and NFD forms differ). Cn depends on the Unicode version of the running
  Python, so a character unassigned in an older Python may key differently
  across versions. A lone surrogate raises ``ValueError``. A string matching
  ``-?[0-9]+`` escapes its first character (``"1"`` -> ``%31``, never ``1``).
  ``""`` -> ``!E``.
* ``int`` -> decimal; ``True``/``False`` -> ``!T``/``!F``; ``None`` -> ``!N``;
  ``float`` -> ``!f`` + repr (``!f1.0``, ``!fnan``, ``!f-0.0``);
  ``Decimal`` -> ``!D`` + str (``1.0`` and ``1.00`` differ);
  ``bytes``/``bytearray``/``memoryview`` -> ``!b`` + hex; ``UUID`` -> ``!u`` + str.
* ``datetime`` -> ``!t`` + isoformat without colons
  (``!t2024-01-02T030405.000006+0100``): naive and aware differ, and the
  offset is kept as given, so the same instant in two offsets gives two keys.
  Only the offset of the tzinfo counts, not its name.
  ``date`` -> ``!d`` + isoformat.
* ``time`` -> ``!c`` + isoformat without colons (``!c010000``,
  ``!c010000+0100``); a time in a named zone (a ``ZoneInfo``: no offset
  without a date) adds ``@`` + escape(zone key) (``!c010000@Europe/Paris``).
  A tzinfo with neither an offset nor a key raises `UnstableKeyError`.
* ``timedelta`` -> ``!r`` + days ``.`` seconds ``.`` microseconds
  (``!r-1.86399.0``).
* ``Enum`` member -> ``!e`` + T + ``.`` + escape(name); a ``Flag`` member
  (named or not: ``Perm(0)``, ``Perm(4)``) -> ``!e`` + T + ``(`` + its
  integer value + ``)``. T is escape(``module.qualname``) of the type.
* ``list`` -> ``[a,b]``; ``tuple`` -> ``(a,b)``; ``dict`` -> ``!m[k=v,...]``
  sorted by encoded key; ``set``/``frozenset`` -> ``!s[a,b]`` sorted by
  encoded element. Elements follow the same rules, recursively.
* Subclasses of the types above encode as their base (they compare equal;
  so do equal sets and frozensets).
* An object with ``__cache_key__()`` encodes as the value it returns (its
  author promises that value tells its objects apart).
* A dataclass instance -> ``!o`` + T + ``(`` + ``name=value`` for every
  field (``repr=False`` and ``compare=False`` ones too) + ``)``; a pydantic
  model likewise, its fields, then its extra fields (``!x`` + name) and
  private attributes (``!p`` + name). A class -> ``!y`` + T.
* Anything else raises `UnstableKeyError`: no ``str()`` fallback (two
  objects may print alike). So does a type defined inside a function
  (``<locals>`` in its qualname): each call makes another type of that name.

Every non-string form starts with ``!``, ``[``, ``(`` or is ``-?[0-9]+``, and
no escaped string does, so the grammar parses back uniquely. A top-level
segment longer than ``max_part_length`` becomes ``!h`` + its first 24
characters (never splitting an escape) + ``~`` + a 128-bit blake2b hex digest:
at most 59 characters.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from freshcache.errors import UnstableKeyError

__all__ = [
    "KeyBuilder",
    "check_max_length",
    "check_raw_key",
    "encode_int",
    "encode_part",
    "escape",
    "glob_escape",
    "segment",
    "shorten",
]

_RESERVED: Final = "%:!,=()[]{}*?\\~<>\"'# "
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"})
# Characters that may need escaping: reserved ASCII, controls, all non-ASCII.
_CANDIDATES: Final = re.compile(
    "[" + re.escape(_RESERVED) + r"\x00-\x1f\x7f-\U0010ffff]"
)
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
_PERCENTS: Final = re.compile("(?:%[0-9A-F]{2})+")
_GLOB: Final = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_HASH_PREFIX: Final = 24
_HASHED_LENGTH: Final = 2 + _HASH_PREFIX + 1 + 32
_INT_CHUNK: Final = 10**600  # below the smallest int-to-str digit limit (640)


@lru_cache(maxsize=4096)
def _escape_char(c: str) -> str:
    if c.isascii():  # only reserved ASCII and controls get here
        return f"%{ord(c):02X}"
    category = unicodedata.category(c)
    if category == "Cs":
        raise ValueError(
            f"lone surrogate U+{ord(c):04X} cannot be part of a cache key "
            "(keys must be valid Unicode)"
        )
    if category in _ESCAPED_CATEGORIES or c.isspace():
        return "".join(f"%{b:02X}" for b in c.encode())
    return c


def escape(text: str) -> str:
    """Percent-escape ``text`` for use inside one key segment (no other rules)."""
    if _CANDIDATES.search(text) is None:
        return text
    return _CANDIDATES.sub(lambda m: _escape_char(m.group()), text)


def glob_escape(text: str) -> str:
    """Escape ``* ? [ ] \\`` for a Redis SCAN MATCH / PSUBSCRIBE pattern."""
    return text.translate(_GLOB)


def _encode_str(v: str) -> str:
    if not v:
        return "!E"
    digits = v[1:] if v[0] == "-" else v
    if digits.isdigit() and digits.isascii():  # int-like: -?[0-9]+
        return f"%{ord(v[0]):02X}{v[1:]}"
    return escape(v)


def encode_int(v: int) -> str:
    try:
        return int.__repr__(v)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        n, chunks = abs(v), []
        while n:
            n, r = divmod(n, _INT_CHUNK)
            chunks.append(f"{r:0600d}")
        return ("-" if v < 0 else "") + "".join(reversed(chunks)).lstrip("0")


def _encode_dict(v: dict[Any, Any]) -> str:
    pairs = sorted((encode_part(k), encode_part(x)) for k, x in v.items())
    return "!m[" + ",".join(f"{k}={x}" for k, x in pairs) + "]"


def type_name(t: type) -> str:
    """``module.qualname``, escaped: a class's name in a key. Refused for a
    class defined inside a function (``<locals>``): each call of the
    function makes another class with the same name."""
    qualname = getattr(t, "__qualname__", None) or t.__name__
    if "<locals>" in qualname:
        raise UnstableKeyError(
            f"{t.__module__}.{qualname}: a class defined inside a function has "
            "no unique name to key on; define it at module level, or give it "
            "__cache_key__()"
        )
    return escape(f"{t.__module__}.{qualname}")


def _encode_time(v: time) -> str:
    text = "!c" + time.isoformat(v).replace(":", "")
    tz = v.tzinfo
    if tz is None or v.utcoffset() is not None:
        return text  # naive, or its offset is in the isoformat
    zone = getattr(tz, "key", None)  # a ZoneInfo: no offset without a date
    if type(zone) is not str:
        raise UnstableKeyError(
            f"time {v.isoformat()} has a tzinfo ({type(tz).__qualname__}) with "
            "neither a fixed offset nor a zone key; use a fixed-offset timezone"
        )
    return f"{text}@{escape(zone)}"


def _encode_enum(v: enum.Enum) -> str:
    t = type(v)
    if isinstance(v, enum.Flag) or v.name is None:  # by value: unnamed combinations
        return f"!e{type_name(t)}({encode_part(v.value)})"
    return f"!e{type_name(t)}.{escape(v.name)}"


def _encode_fields(t: type, pairs: list[tuple[str, object]]) -> str:
    body = ",".join(f"{escape(name)}={encode_part(value)}" for name, value in pairs)
    return f"!o{type_name(t)}({body})"


def _encode_dataclass(v: Any) -> str:
    return _encode_fields(
        type(v), [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
    )


def _pydantic_model(t: type) -> bool:
    return any(
        c.__name__ == "BaseModel" and c.__module__.startswith("pydantic")
        for c in t.__mro__
    )


def _encode_model(v: Any) -> str:
    """A pydantic model: its fields, then its extra fields and private
    attributes (both part of its equality), by name."""
    pairs = [(name, getattr(v, name)) for name in type(v).model_fields]
    extra = getattr(v, "__pydantic_extra__", None) or {}
    private = getattr(v, "__pydantic_private__", None) or {}
    pairs += [("!x" + name, value) for name, value in sorted(extra.items())]
    pairs += [("!p" + name, value) for name, value in sorted(private.items())]
    return _encode_fields(type(v), pairs)


def _encode_object(v: object) -> str:
    t = type(v)
    if isinstance(v, type):
        return "!y" + type_name(v)
    if dataclasses.is_dataclass(t):
        return _encode_dataclass(v)
    if _pydantic_model(t):
        return _encode_model(v)
    raise UnstableKeyError(
        f"{t.__module__}.{t.__qualname__} object has no key form; "
        "define __cache_key__() returning a stable value (such as an id), "
        "or use a key template naming a stable attribute"
    )


_ENCODERS: Final[tuple[tuple[type | tuple[type, ...], Callable[[Any], str]], ...]] = (
    (str, lambda v: _encode_str(str.__str__(v))),
    (int, encode_int),  # bool is handled before
    (float, lambda v: "!f" + float.__repr__(v)),
    (Decimal, lambda v: "!D" + Decimal.__str__(v)),
    ((bytes, bytearray, memoryview), lambda v: "!b" + bytes(v).hex()),
    (uuid.UUID, lambda v: "!u" + uuid.UUID.__str__(v)),
    (datetime, lambda v: "!t" + datetime.isoformat(v).replace(":", "")),
    (date, lambda v: "!d" + date.isoformat(v)),
    (time, _encode_time),
    (timedelta, lambda v: f"!r{v.days}.{v.seconds}.{v.microseconds}"),
    (list, lambda v: "[" + ",".join(map(encode_part, v)) + "]"),
    (tuple, lambda v: "(" + ",".join(map(encode_part, v)) + ")"),
    (dict, _encode_dict),
    ((set, frozenset), lambda v: "!s[" + ",".join(sorted(map(encode_part, v))) + "]"),
)
_EXACT: Final[dict[type, Callable[[Any], str]]] = {
    bool: lambda v: "!T" if v else "!F",
    type(None): lambda v: "!N",
    **{
        t: enc for ts, enc in _ENCODERS for t in (ts if isinstance(ts, tuple) else [ts])
    },
}


def encode_part(value: object) -> str:
    """Encode one argument as one key segment (see the module docstring).

    Injective; never hashes (long segments are shortened by the callers).
    """
    v: Any = value
    t = type(v)
    if t is int:
        try:
            return str(v)
        except ValueError:  # beyond the int-to-str digit limit
            return encode_int(v)
    if t is str:
        # Encodes as itself: a test over every code point checks that alnum
        # and identifier characters need no escape (and these are not int-like).
        if (v.isalnum() and not v.isdecimal()) or v.isidentifier():
            return v  # type: ignore[no-any-return]
        return _encode_str(v)
    encoder = _EXACT.get(t)
    if encoder is not None:
        return encoder(v)
    if getattr(t, "__cache_key__", None) is not None:
        key = v.__cache_key__()
        if key is v:
            raise UnstableKeyError(f"{t.__qualname__}.__cache_key__() returned self")
        return encode_part(key)
    if isinstance(v, enum.Enum):
        return _encode_enum(v)
    for base, encoder in _ENCODERS:
        if isinstance(v, base):
            return encoder(v)
    return _encode_object(v)


def shorten(segment: str) -> str:
    cut = _HASH_PREFIX
    pct = segment.rfind("%", cut - 2, cut)
    if pct != -1:  # an escape would be split
        cut = pct
    while segment[cut : cut + 1] == "%" and segment[cut + 1] in "89AB":
        cut -= 3  # a UTF-8 continuation byte: keep the character whole
    digest = hashlib.blake2b(segment.encode(), digest_size=16).hexdigest()
    return f"!h{segment[:cut]}~{digest}"


def segment(value: object, max_length: int) -> str:
    s = encode_part(value)
    return s if len(s) <= max_length else shorten(s)


def check_max_length(max_part_length: int) -> int:
    if type(max_part_length) is not int:
        raise TypeError(f"max_part_length must be an int, not {max_part_length!r}")
    if max_part_length < _HASHED_LENGTH:
        raise ValueError(f"max_part_length must be at least {_HASHED_LENGTH}")
    return max_part_length


def _check_name(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {value!r}")
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} must match [A-Za-z0-9_.-]+, not {value!r}")
    return value


def _namespace(namespace: str) -> str:
    if type(namespace) is str and (namespace.isidentifier() or namespace.isalnum()):
        return namespace  # nothing to escape (see encode_part)
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, not {namespace!r}")
    if not namespace:
        raise ValueError("namespace must not be empty")
    return escape(namespace)


def check_raw_key(key: str) -> str:
    """Check a raw key (``"user:1"``, as ``cache.get`` takes it); returns its
    namespace (the text before the first ``:``).

    ``ValueError`` unless the namespace is one ``KeyBuilder.key`` could have
    written: non-empty and escaped exactly as `escape` escapes (``%XX`` only
    where `escape` puts one). So a raw key cannot start with ``!`` (the
    bookkeeping keys under the head: namespace versions, tag sets, the tag
    epoch), cannot contain ``~`` in its namespace (a bumped namespace's keys,
    ``user~1:5``), and ``bump(namespace)`` names exactly its namespace. Braces
    are refused anywhere (Redis Cluster hash tags; fill leases and
    write-behind marks are ``{key}:...``).
    """
    if "{" in key or "}" in key:
        raise ValueError(
            "raw keys may not contain '{' or '}' (Redis Cluster hash tags); "
            "build keys from values with cache.key(...)"
        )
    namespace = key.partition(":")[0]
    if namespace.isidentifier() or namespace.isalnum():
        return namespace  # nothing to escape (see encode_part)
    try:
        plain: str | None = _PERCENTS.sub(
            lambda m: bytes.fromhex(m.group().replace("%", "")).decode(), namespace
        )
    except UnicodeDecodeError:  # not UTF-8: escape never writes it
        plain = None
    if not namespace or plain is None or escape(plain) != namespace:
        raise ValueError(
            f"raw key {key!r}: its namespace (the text before the first ':') "
            "must be non-empty and escaped as cache.key escapes it (no '!', "
            "'~', spaces or other reserved characters; '!' and '~' name "
            "freshcache's own bookkeeping and namespace versions); "
            "build keys with cache.key(namespace, ...)"
        )
    return namespace


class KeyBuilder:
    """Builds full keys ``prefix:version:namespace:parts`` (``head`` + the rest)."""

    __slots__ = ("head", "max_part_length", "prefix", "version")

    def __init__(self, prefix: str, version: str, *, max_part_length: int = 64):
        self.prefix = _check_name("prefix", prefix)
        self.version = _check_name("version", version)
        self.max_part_length = check_max_length(max_part_length)
        self.head = f"{prefix}:{version}:"

    def key(self, namespace: str, /, *parts: object, **named: object) -> str:
        """``head + namespace``, then ``:part`` each, then ``:name=value`` by name."""
        m = self.max_part_length
        key = self.head + _namespace(namespace)
        for p in parts:
            key += ":" + segment(p, m)
        if named:
            for n in sorted(named):
                key += f":{escape(n)}={segment(named[n], m)}"
        return key

    def __repr__(self) -> str:
        return f"KeyBuilder({self.prefix!r}, {self.version!r})"
