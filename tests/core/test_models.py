"""Typed revival of decoded data: dataclasses, pydantic models, containers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Annotated, Any, Generic, NamedTuple, NewType, Optional, TypeVar

import pydantic
import pytest

from freshcache._core.codec.envelope import Codec
from freshcache._core.codec.revival import make_reviver
from freshcache._core.entry import Entry
from freshcache.errors import RevivalError, SerializationError

T = TypeVar("T")
UserId = NewType("UserId", int)


def revive(value: object, tp: object) -> object:
    """``value`` revived into ``tp`` the way a cached read does."""
    reviver = make_reviver(tp)
    return value if reviver is None else reviver(value)


class Role(Enum):
    ADMIN = "admin"
    USER = "user"


class Level(IntEnum):
    LOW = 1


@dataclass
class Address:
    city: str
    zip: str = ""


@dataclass
class User:
    id: int
    name: str
    role: Role = Role.USER
    address: Address | None = None
    tags: tuple[str, ...] = ()
    seen: datetime | None = None
    cached_label: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.cached_label = f"{self.id}:{self.name}"


@dataclass(frozen=True)
class Tag:
    name: str


@dataclass(frozen=True)
class Alias:
    name: str


@dataclass
class Tree:
    value: int
    children: list[Tree] = field(default_factory=list)


@dataclass
class Box(Generic[T]):
    item: T


class Point(NamedTuple):
    x: int
    address: Address


class Item(pydantic.BaseModel):
    sku: str
    price: Decimal


class Order(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)

    id: int
    items: list[Item]
    role: Role
    placed: datetime
    note: str | None = pydantic.Field(default=None, alias="comment")


USER = User(
    1,
    "ann",
    Role.ADMIN,
    Address("Paris", "75001"),
    ("a", "b"),
    datetime(2024, 1, 1, tzinfo=UTC),
)
ORDER = Order(
    id=7,
    items=[Item(sku="x", price=Decimal("1.10"))],
    role=Role.USER,
    placed=datetime(2024, 5, 1, 12, 30),
    comment="leave at door",
)


def through(codec: Codec, value: object) -> object:
    decoded = codec.decode("k", codec.encode("k", Entry(value, 1.0)))
    assert isinstance(decoded, Entry)
    return decoded.value


@pytest.fixture(params=["json", "msgpack", "pickle"])
def codec(request: pytest.FixtureRequest) -> Codec:
    secret = b"s" * 32 if request.param == "pickle" else None
    return Codec(request.param, secret=secret)


def test_dataclass(codec: Codec) -> None:
    data = through(codec, USER)
    if codec.serializer != "pickle":
        assert data == {
            "id": 1,
            "name": "ann",
            "role": "admin",
            "address": {"city": "Paris", "zip": "75001"},
            "tags": ("a", "b"),
            "seen": datetime(2024, 1, 1, tzinfo=UTC),
            "cached_label": "1:ann",
        }
    revived = revive(data, User)
    assert revived == USER
    assert isinstance(revived, User)
    assert type(revived.address) is Address
    assert revived.role is Role.ADMIN


def test_nested_containers_of_dataclasses(codec: Codec) -> None:
    users = [USER, User(2, "bob")]
    assert revive(through(codec, users), list[User]) == users
    assert revive(through(codec, tuple(users)), tuple[User, ...]) == tuple(users)
    assert revive(through(codec, {"a": USER}), dict[str, User]) == {"a": USER}
    if codec.serializer == "pickle":  # json/msgpack refuse models as set members
        assert revive(through(codec, {Tag("x")}), set[Tag]) == {Tag("x")}
    pair = (USER, 3)
    assert revive(through(codec, pair), tuple[User, int]) == pair
    assert revive(through(codec, {1: [Address("a")]}), dict[int, list[Address]]) == {
        1: [Address("a")]
    }


def test_recursive_and_generic_dataclasses(codec: Codec) -> None:
    tree = Tree(1, [Tree(2), Tree(3, [Tree(4)])])
    assert revive(through(codec, tree), Tree) == tree
    box = Box(Address("x"))
    assert revive(through(codec, box), Box[Address]) == box
    assert revive(through(codec, Box([box])), Box[list[Box[Address]]]) == Box([box])
    if codec.serializer != "pickle":  # no type argument: the field stays a dict
        assert revive(through(codec, box), Box) == Box({"city": "x", "zip": ""})


def test_pydantic_model(codec: Codec) -> None:
    data = through(codec, ORDER)
    if codec.serializer != "pickle":
        assert isinstance(data, dict)
        assert data["comment"] == "leave at door"  # by alias, as validation expects
        assert data["items"] == [{"sku": "x", "price": Decimal("1.10")}]
    revived = revive(data, Order)
    assert revived == ORDER
    assert revive(through(codec, [ORDER]), list[Order]) == [ORDER]
    assert revive(through(codec, None), Optional[Order]) is None  # noqa: UP045


def test_optional_and_unions() -> None:
    assert revive(None, Optional[User]) is None  # noqa: UP045
    assert revive(None, User | None) is None
    assert revive({"id": 1, "name": "a"}, User | None) == User(1, "a")
    assert revive({"city": "x"}, User | Address) == Address("x")  # first that fits
    # A | B == B | A for Python, but the order decides here (and in the cache)
    assert type(revive({"name": "x"}, Tag | Alias)) is Tag
    assert type(revive({"name": "x"}, Alias | Tag)) is Alias
    assert revive({"city": "x"}, dict[str, str] | Address) == {"city": "x"}
    assert revive(5, int | User) == 5
    assert revive([{"city": "x"}], list[Address] | None) == [Address("x")]
    with pytest.raises(RevivalError):
        revive({"nope": 1}, User | Address)


def test_enums_namedtuples_and_wrappers() -> None:
    assert revive("admin", Role) is Role.ADMIN
    assert revive(1, Level) is Level.LOW
    assert revive(["admin", "user"], list[Role]) == [Role.ADMIN, Role.USER]
    point = revive((1, {"city": "x"}), Point)
    assert point == Point(1, Address("x"))
    assert type(point) is Point
    assert revive({"city": "x"}, Annotated[Address, "meta"]) == Address("x")
    assert revive(3, UserId) == 3


def test_no_reviver_for_plain_types() -> None:
    for tp in (
        None, int, str, bytes, float, bool, Any, object, list, dict, list[int],
        dict[str, int], tuple[int, str], tuple[int, ...], tuple[()], int | None,
        Optional[str], "User", T, set[datetime], Annotated[int, "x"], UserId,  # noqa: UP045
    ):  # fmt: skip
        assert make_reviver(tp) is None, tp


def test_wrong_shapes_pass_through() -> None:
    assert revive(None, User) is None
    assert revive("x", list[User]) == "x"
    assert revive([1, 2], dict[str, User]) == [1, 2]
    assert revive(USER, User) is USER
    assert revive(ORDER, Order) is ORDER


def test_schema_drift_raises_revival_error() -> None:
    reviver = make_reviver(User)
    assert reviver is not None
    with pytest.raises(RevivalError) as caught:
        reviver({"id": 1})  # "name" was added since the value was cached
    assert isinstance(caught.value, SerializationError)
    assert "User" in str(caught.value)
    with pytest.raises(RevivalError) as caught:
        revive({"id": 1, "items": [], "role": "gone", "placed": "secret-value"}, Order)
    assert "secret-value" not in str(caught.value)  # never echo cached values
    with pytest.raises(RevivalError):
        revive("nobody", Role)
    # extra fields (removed from the class since) are ignored
    assert revive({"id": 1, "name": "a", "old": 0}, User) == User(1, "a")


def test_unresolvable_hints_still_build_the_dataclass() -> None:
    namespace: dict[str, Any] = {}
    exec(  # a dataclass whose annotation names a type that does not exist
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Ghost:\n    x: Missing\n",
        namespace,
    )
    ghost = namespace["Ghost"]
    assert revive({"x": {"a": 1}}, ghost) == ghost({"a": 1})


def test_pydantic_is_never_imported() -> None:
    script = textwrap.dedent(
        """
        import sys
        from dataclasses import dataclass
        from freshcache._core.codec.revival import make_reviver
        from freshcache._core.codec.envelope import Codec
        from freshcache._core.entry import Entry

        @dataclass
        class A:
            x: int

        assert make_reviver(int) is None
        assert make_reviver(list[A])([{"x": 1}]) == [A(1)]
        codec = Codec()
        assert codec.decode("k", codec.encode("k", Entry(A(1), 1.0))).value == {"x": 1}
        assert "pydantic" not in sys.modules
        sys.modules["pydantic"] = None  # as if it were not installed
        assert make_reviver(A | None)({"x": 2}) == A(2)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
