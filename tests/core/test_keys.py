"""Keys: injective (C9), readable, glob-safe; templates compiled once."""

from __future__ import annotations

import enum
import inspect
import math
import re
import sys
import types
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freshcache._core.keys import KeyBuilder, encode_part, escape, glob_escape
from freshcache._core.templates import KeyTemplate
from freshcache.errors import UnstableKeyError

KB = KeyBuilder("app", "v3")
WIDE = KeyBuilder("app", "v3", max_part_length=10**9)  # never hashes


# -- helpers ---------------------------------------------------------------


def strict_eq(a: object, b: object) -> bool:
    """Equality that also compares types; NaN equals NaN; -0.0 != 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(strict_eq, a, b))
    return a == b


_INT = re.compile(r"-?[0-9]+")


def _parse(s: str, i: int) -> tuple[object, int]:
    """Parse one encoded value of the test domain starting at ``s[i]``."""
    if s[i] in "[(":
        close, items = "])"["[(".index(s[i])], []
        i += 1
        while s[i] != close:
            item, i = _parse(s, i)
            items.append(item)
            if s[i] == ",":
                i += 1
        return (items if close == "]" else tuple(items)), i + 1
    j = i
    while j < len(s) and s[j] not in ",])":
        j += 1
    token = s[i:j]
    atoms: dict[str, object] = {"!T": True, "!F": False, "!N": None, "!E": ""}
    if token in atoms:
        return atoms[token], j
    if token.startswith("!f"):
        return float(token[2:]), j
    if token.startswith("!b"):
        return bytes.fromhex(token[2:]), j
    assert not token.startswith("!"), token
    if _INT.fullmatch(token):
        return int(token), j
    return unquote(token, errors="strict"), j


def decode(key: str) -> tuple[str, tuple[object, ...]]:
    """The left inverse of ``WIDE.key``: its existence proves injectivity."""
    _, _, namespace, *segments = key.split(":")
    parts = []
    for seg in segments:
        value, end = _parse(seg, 0)
        assert end == len(seg), seg
        parts.append(value)
    return unquote(namespace, errors="strict"), tuple(parts)


def redis_glob_match(pattern: str, text: str) -> bool:
    """Redis glob semantics for ``\\x``, ``*`` and ``?`` (no classes expected)."""
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
            regex += re.escape(pattern[i])
        elif c == "*":
            regex += ".*"
        elif c == "?":
            regex += "."
        else:
            assert c not in "[]", f"unescaped {c!r} in {pattern!r}"
            regex += re.escape(c)
        i += 1
    return re.fullmatch(regex, text, re.DOTALL) is not None


atoms = st.one_of(
    st.text(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(),
)
values = st.recursive(
    atoms,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple),
    max_leaves=12,
)
arg_tuples = st.lists(values, max_size=5).map(tuple)

# A small domain, so that different inputs often look alike.
tiny_atoms = st.one_of(
    st.text(alphabet=":,=!%-1a()[] é\x00", max_size=3),
    st.integers(-2, 12),
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf]),
    st.booleans(),
    st.none(),
    st.binary(max_size=2),
)
tiny_values = st.recursive(
    tiny_atoms,
    lambda inner: st.lists(inner, max_size=2) | st.lists(inner, max_size=2).map(tuple),
    max_leaves=4,
)
tiny_args = st.lists(tiny_values, max_size=3).map(tuple)


# -- injectivity -----------------------------------------------------------


@given(st.text(min_size=1), arg_tuples)
def test_keys_decode_back_to_their_arguments(ns: str, args: tuple[object, ...]) -> None:
    key = WIDE.key(ns, *args)
    assert "{" not in key
    assert "}" not in key
    got_ns, got = decode(key)
    assert got_ns == ns
    assert strict_eq(got, args)


@given(tiny_args, tiny_args)
def test_equal_keys_mean_equal_arguments(
    a: tuple[object, ...], b: tuple[object, ...]
) -> None:
    if KB.key("n", *a) == KB.key("n", *b):
        assert strict_eq(a, b)
    if strict_eq(a, b):
        assert KB.key("n", *a) == KB.key("n", *b)


@given(arg_tuples, arg_tuples)
def test_equal_keys_mean_equal_arguments_wide(
    a: tuple[object, ...], b: tuple[object, ...]
) -> None:
    assert (KB.key("n", *a) == KB.key("n", *b)) == strict_eq(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a:b", "c"), ("a", "b:c")),
        ((1,), ("1",)),
        ((1,), (1.0,)),
        ((1,), (True,)),
        (("1",), (1.0,)),
        ((-1,), ("-1",)),
        ((None,), ("None",)),
        ((None,), ("!N",)),
        ((b"a",), ("a",)),
        (("",), ()),
        (("",), ("!E",)),
        (("e\u0301",), ("\u00e9",)),  # NFD vs NFC
        ((0.0,), (-0.0,)),
        ((math.nan,), (math.inf,)),
        (([1, 2],), ((1, 2),)),
        (([1, 2],), ("[1,2]",)),
        (([1, 2],), ([1], 2)),
        (([],), ((),)),
        ((["a,b"],), (["a", "b"],)),
        ((("a", ""),), (("a",),)),
        ((Decimal("1.0"),), (1.0,)),
        ((Decimal("1.0"),), (Decimal("1.00"),)),
        (({"a": 1},), ({"a": "1"},)),
        (({"a=1": 2},), ({"a": "1=2"},)),
        (({1, 2},), ([1, 2],)),
        ((date(2024, 1, 2),), ("2024-01-02",)),
    ],
)
def test_explicit_collisions_do_not_happen(
    a: tuple[object, ...], b: tuple[object, ...]
) -> None:
    assert KB.key("n", *a) != KB.key("n", *b)


def test_readable_keys() -> None:
    assert KB.head == "app:v3:"
    assert KB.key("user", 123, "profile") == "app:v3:user:123:profile"
    assert (
        KB.key("search", "products", page=2, category="books")
        == "app:v3:search:products:category=books:page=2"
    )
    assert KB.key("user") == "app:v3:user"
    assert KB.key("a:b") == "app:v3:a%3Ab"


def test_named_and_positional_parts_do_not_collide() -> None:
    assert KB.key("s", "a=1") != KB.key("s", a=1)
    assert KB.key("s", "a=1") == "app:v3:s:a%3D1"
    assert KB.key("s", **{"a:b": 1}) != KB.key("s", a="b:1")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("abc", "abc"),
        ("a b", "a%20b"),
        ("1", "%31"),
        ("-1", "%2D1"),
        ("-", "-"),
        ("1a", "1a"),
        ("", "!E"),
        ("\x00", "%00"),
        ("\r\n", "%0D%0A"),
        ("*", "%2A"),
        ("?", "%3F"),
        ("[", "%5B"),
        ("{x}", "%7Bx%7D"),
        ("\u00a0", "%C2%A0"),  # Zs
        ("\u200b", "%E2%80%8B"),  # Cf
        ("\u2028", "%E2%80%A8"),  # Zl
        ("\ue000", "%EE%80%80"),  # Co
        ("caf\u00e9", "caf\u00e9"),
        ("\u30e6\u30fc\u30b6\u30fc", "\u30e6\u30fc\u30b6\u30fc"),
        ("\u0661", "\u0661"),  # Arabic-Indic one: not ASCII, not int-like
        (0, "0"),
        (-12, "-12"),
        (True, "!T"),
        (False, "!F"),
        (None, "!N"),
        (1.0, "!f1.0"),
        (-0.0, "!f-0.0"),
        (math.nan, "!fnan"),
        (-math.inf, "!f-inf"),
        (Decimal("1.50"), "!D1.50"),
        (b"\x00a", "!b0061"),
        (bytearray(b"a"), "!b61"),
        (memoryview(b"a"), "!b61"),
        ([1, "a"], "[1,a]"),
        ((1,), "(1)"),
        ((), "()"),
        ({"b": 2, "a": 1}, "!m[a=1,b=2]"),
        ({3, 1, 2}, "!s[1,2,3]"),
        (frozenset({"b", "a"}), "!s[a,b]"),
        (date(2024, 1, 2), "!d2024-01-02"),
        (datetime(2024, 1, 2, 3, 4, 5), "!t2024-01-02T030405"),
        (datetime(2024, 1, 2, 3, 4, 5, 6), "!t2024-01-02T030405.000006"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "!t2024-01-02T030405+0000"),
        (
            datetime(
                2024, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30))
            ),
            "!t2024-01-02T030405-0530",
        ),
    ],
)
def test_encoding_table(value: object, encoded: str) -> None:
    assert encode_part(value) == encoded


def test_escape_has_no_int_or_empty_rule() -> None:
    assert escape("1") == "1"
    assert escape("") == ""
    assert escape("a:b") == "a%3Ab"


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


class Mode(enum.StrEnum):
    FAST = "fast"


def test_uuid_and_enum() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert encode_part(u) == "!u12345678-1234-5678-1234-567812345678"
    assert encode_part(u) != encode_part(str(u))

    assert encode_part(Color.RED).startswith("!e")
    assert encode_part(Color.RED) == f"!e{__name__}.Color.RED"
    assert encode_part(Level.LOW) != encode_part(1)
    assert encode_part(Mode.FAST) != encode_part("fast")
    assert "{" not in encode_part(Color.RED)


def test_datetime_forms() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5, 123456)
    aware = naive.replace(tzinfo=UTC)
    assert encode_part(naive) != encode_part(aware)
    assert ":" not in encode_part(aware)
    assert encode_part(naive).endswith(".123456")
    # Same instant, two offsets: equal in Python, two keys (documented).
    paris = aware.astimezone(timezone(timedelta(hours=1)))
    assert paris == aware
    assert encode_part(paris) != encode_part(aware)
    odd = naive.replace(tzinfo=timezone(timedelta(hours=1, seconds=7, microseconds=5)))
    assert encode_part(odd) == "!t2024-01-02T030405.123456+010007.000005"
    assert encode_part(naive) != encode_part(naive.date())


def test_dict_and_set_order_do_not_matter() -> None:
    assert KB.key("n", {"a": 1, "b": 2}) == KB.key("n", {"b": 2, "a": 1})
    assert KB.key("n", {(1, "x"): [1], "k": None}) == KB.key(
        "n", {"k": None, (1, "x"): [1]}
    )
    assert KB.key("n", {"x", "y", "z"}) == KB.key("n", {"z", "y", "x"})


def test_subclasses_encode_as_their_base() -> None:
    class Name(str):
        __slots__ = ()

    class Count(int):
        pass

    assert encode_part(Name("ab")) == encode_part("ab")
    assert encode_part(Name("1")) == "%31"
    assert encode_part(Count(5)) == "5"


@given(st.text())
def test_str_fast_path_equals_slow_path(text: str) -> None:
    class Sub(str):
        __slots__ = ()

    assert encode_part(text) == encode_part(Sub(text))  # the subclass skips fast paths


def test_fast_path_characters_never_need_escaping() -> None:
    # encode_part returns alphanumeric strings and identifiers unchanged
    # without looking at them further: check every code point.
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if c.isalnum() or ("a" + c).isidentifier():
            assert escape(c) == c, hex(cp)


def test_big_ints_beyond_the_str_digit_limit() -> None:
    n = 10**5000 + 7
    assert encode_part(n) == "1" + "0" * 4999 + "7"
    assert encode_part(-n) == "-1" + "0" * 4999 + "7"
    assert KB.key("n", n) != KB.key("n", n + 1)
    assert len(KB.key("n", n)) == len("app:v3:n:") + 59


def test_lone_surrogate_is_rejected() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode_part("a\ud800")
    with pytest.raises(ValueError, match="surrogate"):
        KB.key("n", ["ok", "\udfff"])
    with pytest.raises(ValueError, match="surrogate"):
        KB.key("\ud800")


def test_glob_characters_are_escaped_in_keys() -> None:
    key = KB.key("a*", "*", "?", "[", "]", "\\")
    assert not set(key) & set("*?[]\\{}")


# -- long parts ------------------------------------------------------------


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_long_parts_are_hashed(size: int) -> None:
    a = KB.key("n", "a" * size)
    b = KB.key("n", "a" * (size - 1) + "b")
    assert a != b
    seg_a, seg_b = a.split(":")[-1], b.split(":")[-1]
    assert len(seg_a) == len(seg_b) == 59
    assert seg_a.startswith("!h" + "a" * 24 + "~")
    assert seg_a[:27] == seg_b[:27]


def test_part_of_max_length_is_not_hashed() -> None:
    assert KB.key("n", "a" * 64) == "app:v3:n:" + "a" * 64
    assert KB.key("n", "a" * 65).startswith("app:v3:n:!h")
    assert KB.key("n", k="a" * 65).startswith("app:v3:n:k=!h")


def test_hash_prefix_never_splits_an_escape() -> None:
    seg = KB.key("n", "a" * 23 + ":" * 50).split(":")[-1]
    assert seg.startswith("!h" + "a" * 23 + "~")
    seg = KB.key("n", "a" * 22 + ":" * 50).split(":")[-1]
    assert seg.startswith("!h" + "a" * 22 + "~")
    # %C2%A0 is one character: neither byte is left alone.
    seg = KB.key("n", "a" * 21 + "\u00a0" * 50).split(":")[-1]
    assert seg.startswith("!h" + "a" * 21 + "~")
    seg = KB.key("n", "a" * 18 + "\u00a0" * 50).split(":")[-1]
    assert seg.startswith("!h" + "a" * 18 + "%C2%A0~")


def test_nested_values_are_hashed_only_as_a_whole() -> None:
    part = ["x" * 100, "y"]
    assert encode_part(part) == "[" + "x" * 100 + ",y]"
    assert KB.key("n", part).split(":")[-1].startswith("!h[xxx")


# -- objects ---------------------------------------------------------------


class Plain:
    pass


class WithCacheKey:
    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __cache_key__(self) -> object:
        return ("user", self.ident)


@dataclass
class Point:
    x: int
    y: int


def test_object_with_default_repr_is_unstable() -> None:
    with pytest.raises(UnstableKeyError, match="__cache_key__") as info:
        encode_part(Plain())
    assert isinstance(info.value, TypeError)
    with pytest.raises(UnstableKeyError):
        KB.key("n", [Plain()])
    with pytest.raises(UnstableKeyError):
        encode_part(lambda: None)  # repr has " at 0x"
    with pytest.raises(UnstableKeyError):
        encode_part(Point(1, Plain()))  # type: ignore[arg-type]


def test_cache_key_hook() -> None:
    assert encode_part(WithCacheKey(7)) == encode_part(("user", 7)) == "(user,7)"
    assert KB.key("n", WithCacheKey(7)) != KB.key("n", WithCacheKey(8))

    class Selfish:
        def __cache_key__(self) -> object:
            return self

    with pytest.raises(UnstableKeyError):
        encode_part(Selfish())


def test_dataclasses_encode_their_type_and_every_field() -> None:
    assert encode_part(Point(1, 2)) == f"!o{__name__}.Point(x=1,y=2)"
    assert encode_part(Point(1, 2)) != encode_part(Point(2, 1))
    assert encode_part(timedelta(1)) == "!r1.0.0"
    assert encode_part(timedelta(1)) != encode_part(timedelta(2))


# -- glob patterns ---------------------------------------------------------


def test_glob_escape() -> None:
    assert glob_escape("a*b?[c]\\d") == "a\\*b\\?\\[c\\]\\\\d"
    assert glob_escape("plain:text") == "plain:text"


# -- KeyBuilder arguments --------------------------------------------------


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "a*", "\u00e4", "a{b}", "a\n"])
def test_prefix_and_version_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        KeyBuilder(bad, "v1")
    with pytest.raises(ValueError):
        KeyBuilder("app", bad)


def test_builder_type_and_range_errors() -> None:
    with pytest.raises(TypeError):
        KeyBuilder(1, "v1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KeyBuilder("app", "v1", max_part_length=32)
    assert KeyBuilder("my-app_2", "1.2").head == "my-app_2:1.2:"
    with pytest.raises(ValueError):
        KB.key("")
    with pytest.raises(TypeError):
        KB.key(1)  # type: ignore[arg-type]


def test_namespace_is_positional_only() -> None:
    assert KB.key("n", namespace=1) == "app:v3:n:namespace=1"


# -- templates -------------------------------------------------------------


def get_user(user_id: int, team_id: int = 7, *, fmt: str = "full") -> None: ...


def test_template_equality_is_identity() -> None:
    a = KeyTemplate.compile("user:{user_id}", get_user)
    assert a != KeyTemplate.compile("user:{user_id}", get_user)
    assert "user:{user_id}" in repr(a)


def test_template_renders_like_the_builder() -> None:
    tpl = KeyTemplate.compile("user:{user_id}", get_user)
    assert tpl.namespace == "user"
    assert tpl.fields == ("user_id",)
    assert tpl.render((123,), {}) == "user:123"
    assert KB.head + tpl.render((123,), {}) == KB.key("user", 123)
    for arg in ["abc", "ab_c", "a b", "1", "", 1.5, None, [1], "x" * 100]:
        assert KB.head + tpl.render((arg,), {}) == KB.key("user", arg)


def test_template_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    one = KeyTemplate.compile("user:{user_id}:profile", get_user)
    many = KeyTemplate.compile("user:{user_id}:team:{team_id}:{fmt}", get_user)
    default = KeyTemplate.compile(None, get_user)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("inspect.signature called during render")

    monkeypatch.setattr(inspect, "signature", boom)
    assert one.render((1,), {}) == "user:1:profile"
    assert many.render((1,), {"fmt": "short"}) == "user:1:team:7:short"
    assert default.render((), {"user_id": 1}).endswith(":user_id=1:team_id=7:fmt=full")


def test_template_binding() -> None:
    tpl = KeyTemplate.compile("u:{user_id}:{team_id}:{fmt}", get_user)
    assert tpl.render((1,), {}) == "u:1:7:full"
    assert tpl.render((1, 2), {}) == "u:1:2:full"
    assert tpl.render((), {"user_id": 1, "team_id": 2}) == "u:1:2:full"
    assert tpl.render((1,), {"fmt": "x"}) == "u:1:7:x"
    with pytest.raises(TypeError, match="user_id"):
        tpl.render((), {"team_id": 2})
    one = KeyTemplate.compile("u:{user_id}", get_user)
    with pytest.raises(TypeError, match="user_id"):
        one.render((), {})

    def kw_only(*, a: int) -> None: ...

    tpl = KeyTemplate.compile("k:{a}", kw_only)
    assert tpl.render((), {"a": 1}) == "k:1"
    with pytest.raises(TypeError):
        tpl.render((1,), {})  # keyword-only never binds positionally


def test_template_positional_only_and_var_args() -> None:
    def f(a: int, /, *args: int, **kw: int) -> None: ...

    tpl = KeyTemplate.compile("f:{a}:{args}:{kw}", f)
    assert tpl.render((1, 2, 3), {"a": 9}) == "f:1:[2,3]:!m[a=9]"
    with pytest.raises(TypeError):
        tpl.render((), {"a": 9})  # "a" is positional-only: it lands in **kw
    entry = KeyTemplate.compile("f:{page}", f)  # an entry of **kw
    assert entry.render((1,), {"page": 2}) == "f:2"
    with pytest.raises(TypeError, match="page"):
        entry.render((1,), {})


def test_template_attribute_access() -> None:
    @dataclass
    class Team:
        name: str

    @dataclass
    class User:
        id: int
        team: Team

    def f(user: User) -> None: ...

    tpl = KeyTemplate.compile("user:{user.id}:{user.team.name}", f)
    assert tpl.fields == ("user.id", "user.team.name")
    assert tpl.render((User(5, Team("red")),), {}) == "user:5:red"
    single = KeyTemplate.compile("user:{user.id}", f)
    assert single.render((), {"user": User(6, Team("x"))}) == "user:6"


def test_template_literals_are_escaped() -> None:
    def f(x: int) -> None: ...

    tpl = KeyTemplate.compile("my ns:a*b:{x}:tail", f)
    assert tpl.namespace == "my%20ns"
    assert tpl.render((1,), {}) == "my%20ns:a%2Ab:1:tail"
    assert KeyTemplate.compile("static:key", f).render((1,), {}) == "static:key"


@pytest.mark.parametrize(
    "template",
    [
        "",
        "{x}",
        "{x}:a",
        "a{x}:b",
        "ns:{x",
        "ns:x}",
        "ns:{}",
        "ns:{x}b",
        "ns:b{x}",
        "ns:{x}{x}",
        "ns:{{x}}",
        "ns::{x}",
        "ns:{x}:",
        "ns:{1x}",
        "ns:{x!r}",
        "ns:{x.}",
        "ns:{x.1}",
        "ns:{ x }",
        "ns:{zzz}",  # not a parameter
    ],
)
def test_bad_templates_fail_at_compile_time(template: str) -> None:
    def f(x: int) -> None: ...

    with pytest.raises(ValueError):
        KeyTemplate.compile(template, f)


def test_template_type_and_length_errors() -> None:
    with pytest.raises(TypeError):
        KeyTemplate.compile(b"ns", get_user)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KeyTemplate.compile("ns", get_user, max_part_length=10)


def _make(module: str) -> Any:
    def fetch(x: int) -> None: ...

    fetch.__module__ = module
    return fetch


def _other_factory() -> Any:
    def fetch(x: int) -> None: ...

    return fetch


def test_default_template() -> None:
    tpl = KeyTemplate.compile(None, get_user)
    assert tpl.namespace == f"{__name__}.get_user"
    assert tpl.fields == ("user_id", "team_id", "fmt")
    assert tpl.render((1,), {}) == tpl.render((), {"user_id": 1, "team_id": 7})
    assert tpl.render((1,), {}) == f"{__name__}.get_user:user_id=1:team_id=7:fmt=full"


def test_default_template_distinguishes_same_named_functions() -> None:
    a, b, c = _make("mod_a"), _make("mod_b"), _other_factory()
    for f in (a, b, c):  # defined inside a function: no unique name
        with pytest.raises(UnstableKeyError, match="namespace="):
            KeyTemplate.compile(None, f)
    keys = {
        KeyTemplate.compile(None, f, namespace=n).render((1,), {})
        for f, n in ((a, "a"), (b, "b"), (c, "c"))
    }
    assert len(keys) == 3
    copy = types.FunctionType(a.__code__, {}, "fetch")
    copy.__module__ = "mod_a"
    copy.__qualname__ = "fetch"
    # The same module and qualname is the same function, as far as keys go.
    twin = types.FunctionType(a.__code__, {}, "fetch")
    twin.__module__ = "mod_a"
    twin.__qualname__ = "fetch"
    assert (
        KeyTemplate.compile(None, copy).render((1,), {})
        == KeyTemplate.compile(None, twin).render((1,), {})
        == "mod_a.fetch:x=1"
    )


class Repo:
    def get(self, x: int) -> None: ...

    @classmethod
    def make(cls, y: int) -> None: ...


@dataclass(frozen=True)
class Shard:
    region: str

    def get(self, x: int) -> None: ...


class SubRepo(Repo):
    pass


def test_default_template_keys_self_and_cls() -> None:
    tpl = KeyTemplate.compile(None, Repo.get)
    assert tpl.fields == ("self", "x")
    with pytest.raises(UnstableKeyError, match="__cache_key__"):
        tpl.render((Repo(), 5), {})  # a plain object's self has no key form
    tpl = KeyTemplate.compile(None, Shard.get)
    eu, us = Shard("eu"), Shard("us")
    assert tpl.render((eu, 5), {}) == tpl.render((eu,), {"x": 5})
    assert tpl.render((eu, 5), {}) != tpl.render((us, 5), {})
    assert tpl.render((eu, 5), {}).endswith(
        f"Shard.get:self=!o{__name__}.Shard(region=eu):x=5"
    )
    tpl = KeyTemplate.compile(None, Repo.__dict__["make"].__func__)
    assert tpl.fields == ("cls", "y")
    assert tpl.render((Repo, 2), {}) != tpl.render((SubRepo, 2), {})
    assert tpl.render((Repo, 2), {}).endswith(f":cls=!y{__name__}.Repo:y=2")
    method = KeyTemplate.compile("repo:{self}:{x}", Repo.get)
    with pytest.raises(UnstableKeyError):
        method.render((Repo(), 1), {})


def test_default_template_keys_a_bound_methods_self() -> None:
    eu, us = Shard("eu"), Shard("us")
    a, b = KeyTemplate.compile(None, eu.get), KeyTemplate.compile(None, us.get)
    assert a.fields == ("x",)
    assert a.render((1,), {}) != b.render((1,), {})
    # The same key as the function in the class body called with that self.
    assert a.render((1,), {}) == KeyTemplate.compile(None, Shard.get).render(
        (eu, 1), {}
    )
    with pytest.raises(UnstableKeyError):  # refused when decorated
        KeyTemplate.compile(None, Repo().get)
    bound_cls = KeyTemplate.compile(None, SubRepo.make)
    assert bound_cls.render((2,), {}) != KeyTemplate.compile(None, Repo.make).render(
        (2,), {}
    )


def _module_level(a: int, *rest: int, k: int = 1, **extra: int) -> None: ...


def _no_args() -> None: ...


def test_default_template_var_args() -> None:
    tpl = KeyTemplate.compile(None, _module_level)
    key = tpl.render((1, 2, 3), {"z": 1, "k": 4})
    assert key.endswith(":a=1:rest=[2,3]:k=4:extra=!m[z=1]")
    assert tpl.render((1,), {}).endswith(":a=1:rest=[]:k=1:extra=!m[]")

    assert (
        KeyTemplate.compile(None, _no_args).render((), {})
        == KeyTemplate.compile(None, _no_args).namespace
    )
