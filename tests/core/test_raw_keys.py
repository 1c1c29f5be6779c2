"""Raw keys (``cache.get("user:1")``) cannot name freshcache's bookkeeping
or another namespace version; bookkeeping counters read foreign bytes as
unknown, never as an exception carrying them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freshcache._core.keys import KeyBuilder, check_raw_key
from freshcache._core.layout import read_counter

KB = KeyBuilder("app", "v3")


# -- raw keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "!ns:user",
        "!epoch",
        "!tag:team:1",
        "user~1:5",
        "user~:5",
        "{user}:lease",
        "user:1}",
        ":1",
        "a b:1",
        "%7e:1",  # lower case: not as cache.key escapes
        "%41:1",  # "A" is never escaped
        "%FF:1",  # not UTF-8
        "%zz:1",
    ],
)
def test_raw_keys_that_could_name_bookkeeping_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match=r"namespace|\{"):
        check_raw_key(key)


@pytest.mark.parametrize(
    "key", ["user:1", "user", "user:!N", "a%20b:1", "café:1", "user:1~2", "ns:a=b"]
)
def test_raw_keys_as_cache_key_writes_them_are_accepted(key: str) -> None:
    assert check_raw_key(key) == key.partition(":")[0]


@given(st.text(min_size=1), st.lists(st.integers() | st.text(), max_size=2))
def test_every_key_cache_key_builds_is_a_valid_raw_key(
    namespace: str, parts: list[object]
) -> None:
    try:
        full = KB.key(namespace, *parts)
    except ValueError:  # a lone surrogate
        return
    relative = full[len(KB.head) :]
    assert check_raw_key(relative) == relative.partition(":")[0]


def test_counters_read_foreign_bytes_as_unknown() -> None:
    assert read_counter(None) == 0
    assert read_counter(b"12") == 12
    assert read_counter("3") == 3
    for foreign in (b"", b"-1", b"1.5", b"\x80\x01secret", b"9" * 30, b" 1", "x"):
        assert read_counter(foreign) is None
