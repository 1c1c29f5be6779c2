"""Bus messages: what goes out comes back, and no bytes make ``decode`` raise."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from freshcache._core.events import Message, decode, encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from("vonkltfe"), inner, max_size=6)
    ),
    max_leaves=20,
)


def test_round_trip() -> None:
    message = Message(
        "o1", keys=("k",), tags=("t",), namespaces=(("user", 3),), flush=True,
        event=("e", {"a": 1}), fills=("f",), head="app:v2:",
    )  # fmt: skip
    assert decode(encode(message)) == message
    assert decode(b'{"v":1,"o":"o1","n":[["user",3]]}') == Message(
        "o1", namespaces=(("user", 3),)
    )  # from a sender that names no head: its namespaces are ours
    assert decode(b'{"v":1,"o":"o1","h":7}') is None


@given(st.binary(max_size=300))
def test_decode_never_raises_on_bytes(data: bytes) -> None:
    decode(data)


@given(json_values)
def test_decode_never_raises_on_json(value: object) -> None:
    body = {"v": 1, "o": "x", **value} if isinstance(value, dict) else value
    decode(json.dumps(body, allow_nan=True))


def test_versions_must_be_counters() -> None:
    for version in ("Infinity", "-Infinity", "NaN", "1e400", "-1", str(1 << 63)):
        assert decode('{"v":1,"o":"x","n":[["a",' + version + "]]}") is None
    assert decode('{"v":1,"o":"x","n":[["a",7]]}') == Message(
        "x", namespaces=(("a", 7),)
    )
    assert decode(b"[" * 100_000) is None
