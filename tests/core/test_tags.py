"""Exact types through json and msgpack (and pickle): the tag layer, via Codec."""

from __future__ import annotations

import collections
import math
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freshcache._core.codec import typetags as _tags
from freshcache._core.codec.envelope import CRC, HEADER, Codec
from freshcache._core.entry import Entry
from freshcache.errors import SerializationError

SECRET = b"test-secret-0123456789abcdef0123"
SERIALIZERS = ["json", "msgpack", "pickle"]


def make(serializer: str, **options: Any) -> Codec:
    if serializer == "pickle":
        options.setdefault("secret", SECRET)
    return Codec(serializer, **options)  # type: ignore[arg-type]


def same(a: object, b: object) -> bool:
    """Equal in type and value, recursively (NaN equals NaN, -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal | datetime | time | date):
        return repr(a) == repr(b)  # exact digits; tzinfo and fold
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, set | frozenset):
        assert isinstance(b, set | frozenset)
        rest = list(b)
        for x in a:
            match = next((i for i, y in enumerate(rest) if same(x, y)), None)
            if match is None:
                return False
            del rest[match]
        return not rest
    return a == b


def round_trip(codec: Codec, value: object, key: str = "app:k") -> object:
    decoded = codec.decode(key, codec.encode(key, Entry(value, 1.0)))
    assert isinstance(decoded, Entry), decoded
    return decoded.value


# -- round trips ----------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")
EXAMPLES: list[object] = [
    None, True, False, 0, "", [], {}, (), set(), frozenset(), b"", bytearray(),
    math.nan, math.inf, -math.inf, -0.0, 0.1, 2**64 + 1, -(2**100), 2**64 - 1,
    -(2**63), -(2**63) - 1, 10**5000, "\x00\r\n é 🎉", (1, "a"), (1, (2, (3,))),
    {1, 2}, frozenset({(1, "a")}), b"\x00\xff", bytearray(b"ab"),
    datetime(2020, 1, 2, 3, 4, 5, 6), datetime(2020, 1, 1, tzinfo=UTC),
    datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
    datetime(2021, 3, 28, 2, 30, tzinfo=PARIS),  # imaginary wall time
    datetime(2020, 1, 1, fold=1), date(2020, 2, 29), time(1, 2, 3, 4),
    time(1, 2, tzinfo=timezone(-timedelta(hours=3))), time(1, 2, tzinfo=PARIS),
    timedelta(days=-1, microseconds=5), Decimal("1.10"), Decimal("-0"),
    Decimal("sNaN"), Decimal("-Infinity"), Decimal("1E+999"),
    UUID("12345678-1234-5678-1234-567812345678"),
    {"!": 1, "v": 2}, {"a": {"!": [1]}}, {1: "a", (1, 2): [3], None: 0, 1.5: 2},
    {frozenset({1}): {"x": (1.5, math.nan)}}, [[(1,)], {"t": (b"x",)}],
    {"d": datetime(2020, 1, 1), "n": [math.inf, {1, 2}], "i": -(2**70)},
]  # fmt: skip


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_examples_round_trip_exactly(serializer: str, value: object) -> None:
    assert same(round_trip(make(serializer), value), value)


timezones = (
    st.none()
    | st.timezones()
    | st.builds(
        timezone,
        st.timedeltas(
            min_value=-timedelta(hours=23, minutes=59),
            max_value=timedelta(hours=23, minutes=59),
        ),
    )
)
hashable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats()
    | st.text()
    | st.binary()
    | st.datetimes(timezones=timezones)
    | st.dates()
    | st.times(timezones=timezones)
    | st.timedeltas()
    | st.decimals(allow_nan=False)  # hash(Decimal("sNaN")) raises
    | st.uuids(),
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3)
    ),
    max_leaves=6,
)
values = st.recursive(
    hashable
    | st.binary().map(bytearray)
    | st.decimals()
    | st.sampled_from(["!", "v", math.nan, -0.0, 2**64, -(2**63) - 1, Decimal("1.10")]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text() | st.sampled_from(["!", "v"]), inner, max_size=4)
        | st.dictionaries(hashable, inner, max_size=3)
        | st.sets(hashable, max_size=3)
        | st.frozensets(hashable, max_size=3)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("serializer", SERIALIZERS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_any_supported_value_round_trips_exactly(
    serializer: str, value: object
) -> None:
    assert same(round_trip(make(serializer), value), value)


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_a_fixed_offset_with_microseconds_round_trips(serializer: str) -> None:
    """Python 3.11's ``fromisoformat`` drops an offset's microseconds (found by
    the property test above)."""
    codec = make(serializer)
    for offset in (timedelta(microseconds=1), -timedelta(hours=3, microseconds=7)):
        zone = timezone(offset)
        for value in (datetime(2000, 1, 1, tzinfo=zone), time(1, 2, tzinfo=zone)):
            back = round_trip(codec, value)
            assert same(back, value)
            assert isinstance(back, datetime | time)
            assert back.utcoffset() == offset


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_plain_data_is_not_tagged(serializer: str) -> None:
    value = {"a": [1, "x", 1.5, None, True], "b": {"c": -(2**63)}}
    data = make(serializer).encode("k", Entry(value, 1.0))
    assert data[3] == 0  # no tags: decode is one loads, no walk
    if serializer == "json":
        assert (
            data[HEADER.size + CRC.size :]
            == b'{"a":[1,"x",1.5,null,true],"b":{"c":-9223372036854775808}}\n'
        )
    tagged = make(serializer).encode("k", Entry({"a": (1,)}, 1.0))
    assert tagged[3] == 2


def test_json_tags_are_compact() -> None:
    data = make("json").encode("k", Entry([(1, 2), {"!": 0}, math.nan, b"ab"], 1.0))
    assert data[HEADER.size + CRC.size :] == (
        b'[{"!":"t","v":[1,2]},{"!":"m","v":[["!",0]]},'
        b'{"!":"f","v":"nan"},{"!":"b","v":"YWI="}]\n'
    )


def test_value_is_not_mutated_by_encoding() -> None:
    value = {"a": [(1,), 2], "b": {3: 4}}
    make("json").encode("k", Entry(value, 1.0))
    assert value == {"a": [(1,), 2], "b": {3: 4}}


# -- what encode refuses --------------------------------------------------


def _generator() -> Any:
    yield 1


@pytest.fixture(params=["lambda", "lock", "generator", "socket", "file"])
def unserializable(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "socket":
        with socket.socket() as sock:
            yield sock
    elif request.param == "file":
        with open(tmp_path / "f", "w") as handle:
            yield handle
    else:
        yield {"lambda": lambda: None, "lock": threading.Lock()}.get(
            request.param, _generator()
        )


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_unserializable_values_raise(serializer: str, unserializable: object) -> None:
    with pytest.raises(SerializationError):
        make(serializer).encode("k", Entry(unserializable, 1.0))
    with pytest.raises(SerializationError):
        make(serializer).encode("k", Entry({"nested": [unserializable]}, 1.0))


class _Opaque:
    pass


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize(
    "value",
    [
        _Opaque(),
        object(),
        memoryview(b"x"),
        1j,
        "\ud800",
        ["ok", "\udfff"],
        {"\ud800": 1},
        {(1, "\ud800"): 1},
        datetime(2020, 1, 1, tzinfo=_NoOffset()),
        time(1, tzinfo=_NoOffset()),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_without_an_exact_form_raise(serializer: str, value: object) -> None:
    with pytest.raises(SerializationError):
        make(serializer).encode("k", Entry(value, 1.0))


def test_pickle_keeps_surrogates_and_cycles() -> None:
    codec = make("pickle")
    assert round_trip(codec, "\ud800") == "\ud800"
    cycle: list[Any] = [1]
    cycle.append(cycle)
    back = round_trip(codec, cycle)
    assert isinstance(back, list)
    assert back[1] is back


def _nested(depth: int, wrap: Any = list) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = wrap([value])
    return value


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize(
    "wrap", [list, tuple, lambda v: {"k": v}], ids=["list", "tuple", "dict"]
)
def test_deep_nesting_raises_serialization_error(serializer: str, wrap: Any) -> None:
    with pytest.raises(SerializationError):
        make(serializer).encode("k", Entry(_nested(10**5, wrap), 1.0))


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_recursive_structures_raise(serializer: str) -> None:
    codec = make(serializer)
    cycle: list[Any] = []
    cycle.append(cycle)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    for value in (cycle, loop, (cycle,)):
        with pytest.raises(SerializationError, match=r"nested deeper|recursive"):
            codec.encode("k", Entry(value, 1.0))
    assert same(round_trip(codec, _nested(200)), _nested(200))


# -- models, enums and subclasses (decoded without a target type) -------------


class Color(Enum):
    RED = "red"


@dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...] = ()


class Pair(NamedTuple):
    a: int
    b: str


class Name(str):
    def __str__(self) -> str:
        return "overridden"


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_models_and_subclasses_decode_as_plain_data(serializer: str) -> None:
    codec = make(serializer)
    assert round_trip(codec, Color.RED) == "red"
    assert same(round_trip(codec, Point(1, (2,))), {"x": 1, "y": (2,)})
    assert same(round_trip(codec, Pair(1, "b")), (1, "b"))
    assert same(round_trip(codec, Name("ann")), "ann")
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    assert same(round_trip(codec, ordered), {"b": 1, "a": 2})
    assert same(round_trip(codec, collections.Counter("aab")), {"a": 2, "b": 1})
    with pytest.raises(SerializationError, match="dict key or set member"):
        codec.encode("k", Entry({Point(1): 1}, 1.0))
    with pytest.raises(SerializationError):
        codec.encode("k", Entry({frozenset({Point(1)})}, 1.0))


def test_missing_zone_comes_back_as_a_fixed_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = make("json")
    value = datetime(2021, 7, 1, 12, tzinfo=PARIS)
    data = codec.encode("k", Entry(value, 1.0))

    def missing(key: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(key)

    monkeypatch.setattr(_tags, "ZoneInfo", missing)
    decoded = codec.decode("k", data)
    assert isinstance(decoded, Entry)
    assert decoded.value == value
    assert decoded.value.tzinfo == timezone(timedelta(hours=2))
