"""Keys never collide: every argument has an injective encoding or is refused;
functions without a unique name are refused by the default template; raw
keys cannot name freshcache's bookkeeping or another namespace version.

"Distinct" is `same` below: the same type, and equal in every detail the
encoding keeps (a time's offset or zone, a Decimal's digits, -0.0).
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from freshcache._core.keys import KeyBuilder, encode_part
from freshcache._core.templates import KeyTemplate
from freshcache.errors import UnstableKeyError

KB = KeyBuilder("app", "v3")


class Perm(enum.IntFlag):
    R = 1
    W = 2


class Shade(enum.Flag):
    DARK = 1
    WARM = 2


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Secret:
    name: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class Pair:
    left: Any
    right: Any = field(repr=False, compare=False)


class Model(pydantic.BaseModel):
    a: Any
    b: int = 0


class Plain:
    def __str__(self) -> str:
        return "always the same"


# -- what "the same argument" means ---------------------------------------


def same(a: object, b: object) -> bool:
    if isinstance(a, set | frozenset) and isinstance(b, set | frozenset):
        return a == b  # equal sets, mutable or not, are one argument
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, time | datetime):  # the wall time and offset as written
        assert isinstance(b, time | datetime)
        if a.isoformat() != b.isoformat():
            return False
        # A time in a named zone has no offset (no date): then the zone counts.
        zone_a, zone_b = (
            getattr(x.tzinfo, "key", None) if x.utcoffset() is None else None
            for x in (a, b)
        )
        return zone_a == zone_b
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(map(same, a, b))
    if is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, pydantic.BaseModel):
        return same(a.a, b.a) and same(a.b, b.b)  # type: ignore[attr-defined]
    if isinstance(a, enum.Enum):
        return a is b
    return a == b


# -- the strategies ---------------------------------------------------------

zones = st.sampled_from(
    [
        None,
        UTC,
        timezone(timedelta(hours=1)),
        timezone(timedelta(hours=-5, minutes=-30)),
        ZoneInfo("Europe/Paris"),
        ZoneInfo("America/New_York"),
        ZoneInfo("UTC"),
    ]
)
times = st.builds(
    time,
    st.integers(0, 2),
    st.sampled_from([0, 30]),
    st.just(0),
    st.sampled_from([0, 5]),
    tzinfo=zones,
    fold=st.integers(0, 1),
)
datetimes = st.builds(
    lambda d, t: datetime.combine(d, t),
    st.sampled_from([date(2024, 3, 31), date(2024, 10, 27), date(2024, 6, 1)]),
    times,
)
atoms = st.one_of(
    st.text(alphabet=":,=!%-1a()[]~@.", max_size=3),
    st.integers(-2, 9),
    st.sampled_from([0.0, -0.0, 1.0, math.nan]),
    st.booleans(),
    st.none(),
    st.binary(max_size=1),
    st.sampled_from([Decimal("1"), Decimal("1.0"), Decimal("-0")]),
    st.integers(0, 9).map(Perm),
    st.integers(0, 3).map(Shade),
    st.sampled_from(list(Color)),
    times,
    datetimes,
    st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 1, 3)),
    st.builds(timedelta, st.integers(-1, 1), st.integers(0, 1)),
)
values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.lists(inner, max_size=2).map(tuple),
        st.builds(Secret, st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"])),
        st.builds(Pair, inner, inner),
        st.builds(Model, a=inner, b=st.integers(0, 1)),
    ),
    max_leaves=4,
)
arg_tuples = st.lists(values, max_size=3).map(tuple)


@given(st.lists(arg_tuples, min_size=2, max_size=40))
def test_distinct_arguments_never_share_a_key(calls: list[tuple[object, ...]]) -> None:
    seen: dict[str, tuple[object, ...]] = {}
    for args in calls:  # every pair of calls: many chances to collide
        key = KB.key("n", *args)
        if key in seen:
            assert same(seen[key], args), (seen[key], args)
        seen[key] = args
    for a in calls:
        for b in calls:
            if same(a, b):
                assert KB.key("n", *a) == KB.key("n", *b)


def _tricky_atoms() -> list[object]:
    zone_list = [
        None,
        UTC,
        timezone(timedelta(hours=1)),
        timezone(timedelta(hours=2)),
        ZoneInfo("Europe/Paris"),
        ZoneInfo("Europe/Berlin"),
        ZoneInfo("UTC"),
    ]
    found: list[object] = [
        time(h, m, 0, us, tzinfo=z, fold=f)
        for h in (0, 1, 2)
        for m in (0, 30)
        for us in (0, 1)
        for z in zone_list
        for f in (0, 1)
    ]
    found += [
        datetime.combine(d, t)  # type: ignore[arg-type]
        for d in (date(2024, 3, 31), date(2024, 10, 27))
        for t in found[:]
    ]
    found += [Perm(n) for n in range(10)] + [Shade(n) for n in range(4)] + list(Color)
    found += [0, 1, -1, 4, 0.0, -0.0, 1.0, math.nan, True, False, None, ""]
    found += ["0", "1", "None", "Perm.None", "!N", b"", b"1", Decimal("1")]
    found += [Decimal("1.0"), timedelta(0), timedelta(1), timedelta(seconds=1)]
    found += [date(2024, 3, 31), (), [], (1,), [1], {1: 2}, {1}, frozenset({1})]
    small = found[-40:]
    found += [Secret(a, b) for a in ("a", "b") for b in ("x", "y")]
    found += [Pair(a, b) for a in small[:12] for b in small[:12]]
    found += [Model(a=a) for a in small] + [Model(a=Model(a=1)), Model(a={"a": 1})]
    return found


def test_no_two_of_many_tricky_arguments_share_a_key() -> None:
    by_key: dict[str, list[object]] = {}
    for atom in _tricky_atoms():
        by_key.setdefault(KB.key("n", atom), []).append(atom)
    for key, group in by_key.items():
        for other in group[1:]:
            assert same(group[0], other), (key, group[0], other)


@given(st.lists(values | st.sampled_from([Plain(), object(), lambda: 1])))
def test_objects_without_a_key_form_are_refused_wherever_they_are(
    args: list[object],
) -> None:
    refused = any(
        isinstance(a, Plain)
        or type(a) in (object,)
        or (callable(a) and not isinstance(a, type))
        for a in args
    )
    if not refused:
        KB.key("n", *args)
        return
    with pytest.raises(UnstableKeyError):
        KB.key("n", *args)


# -- the cases the security run found --------------------------------------


def test_unnamed_flag_values_encode_by_type_and_value() -> None:
    assert encode_part(Perm(0)) != encode_part(Perm(4))
    assert encode_part(Perm(0)) == f"!e{__name__}.Perm(0)"
    assert encode_part(Perm.R | Perm.W) == f"!e{__name__}.Perm(3)"
    assert encode_part(Shade(0)) != encode_part(Perm(0))
    assert encode_part(Color.RED) == f"!e{__name__}.Color.RED"


def test_times_keep_their_offset_or_zone() -> None:
    naive = time(1, 0)
    paris = time(1, 0, tzinfo=ZoneInfo("Europe/Paris"))
    berlin = time(1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    fixed = time(1, 0, tzinfo=timezone(timedelta(hours=1)))
    keys = {encode_part(t) for t in (naive, paris, berlin, fixed)}
    assert len(keys) == 4
    assert encode_part(naive) == "!c010000"
    assert encode_part(paris) == "!c010000@Europe/Paris"
    assert encode_part(fixed) == "!c010000+0100"
    assert encode_part(time(1, 0, 0, 5)) == "!c010000.000005"


def test_a_time_zone_without_a_name_or_offset_is_refused() -> None:
    class Vague(timezone.__base__):  # type: ignore[misc, name-defined]
        def utcoffset(self, dt: object) -> None:
            return None

    with pytest.raises(UnstableKeyError, match="fixed-offset"):
        encode_part(time(1, tzinfo=Vague()))


def test_dataclasses_key_every_field_repr_false_included() -> None:
    assert encode_part(Secret("a", "x")) != encode_part(Secret("a", "y"))
    assert encode_part(Secret("a", "x")) == f"!o{__name__}.Secret(name=a,token=x)"
    assert encode_part(Pair(1, 2)) != encode_part(Pair(1, 3))  # equal, keyed apart


def test_pydantic_models_key_their_type_and_fields() -> None:
    assert encode_part(Model(a=1)) == f"!o{__name__}.Model(a=1,b=0)"
    assert encode_part(Model(a=1)) != encode_part(Model(a="1"))
    assert encode_part(Model(a=Model(a=1))) != encode_part(Model(a={"a": 1, "b": 0}))


def test_objects_are_refused_not_stringified() -> None:
    with pytest.raises(UnstableKeyError, match="__cache_key__"):
        encode_part(Plain())
    with pytest.raises(UnstableKeyError):
        encode_part(lambda: 1)
    with pytest.raises(UnstableKeyError):
        encode_part(functools.partial(int, 1))
    with pytest.raises(UnstableKeyError):
        encode_part(Secret("a", Plain()))  # type: ignore[arg-type]


def test_classes_defined_inside_a_function_are_refused() -> None:
    def make() -> Any:
        @dataclass
        class Local:
            x: int

        return Local

    one, two = make(), make()
    with pytest.raises(UnstableKeyError, match="inside a function"):
        encode_part(one(1))
    with pytest.raises(UnstableKeyError):
        encode_part(two)
    assert encode_part(Secret) == f"!y{__name__}.Secret"


# -- callables the default template cannot name -----------------------------


def fetch(x: int) -> int:
    return x


def test_lambdas_partials_and_closures_are_refused_at_compile_time() -> None:
    dec = lambda x: x - 1  # noqa: E731
    inc = lambda x: x + 1  # noqa: E731
    for func in (dec, inc, functools.partial(fetch), functools.partial(fetch, 2)):
        with pytest.raises(UnstableKeyError, match="namespace="):
            KeyTemplate.compile(None, func)

    made = []
    for n in range(2):

        def add(x: int, n: int = n) -> int:
            return x + n

        made.append(add)
    for func in made:
        with pytest.raises(UnstableKeyError, match="inside another function"):
            KeyTemplate.compile(None, func)
    # Named, they are keyed apart; a template names them too.
    a = KeyTemplate.compile(None, dec, namespace="dec").render((10,), {})
    b = KeyTemplate.compile(None, inc, namespace="inc").render((10,), {})
    assert a != b
    assert KeyTemplate.compile("inc:{x}", inc).render((10,), {}) == "inc:10"
    with pytest.raises(ValueError, match="not both"):
        KeyTemplate.compile("inc:{x}", inc, namespace="inc")
    with pytest.raises(ValueError, match="non-empty"):
        KeyTemplate.compile(None, inc, namespace="")


class CallableObject:
    def __call__(self, x: int) -> int:
        return x


@given(
    st.lists(
        st.sampled_from(
            [
                fetch,
                lambda x: x,
                lambda x: -x,
                functools.partial(fetch),
                CallableObject(),
                Secret("a", "x").__eq__,
            ]
        ),
        min_size=2,
        max_size=4,
        unique_by=id,
    )
)
def test_distinct_callables_get_distinct_namespaces_or_are_refused(
    funcs: list[Any],
) -> None:
    keys = []
    for f in funcs:
        try:
            keys.append(KeyTemplate.compile(None, f).render((1,), {}))
        except UnstableKeyError:
            continue
    assert len(keys) == len(set(keys))
