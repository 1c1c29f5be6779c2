"""Mapping keys of another deployed version of a prefix onto this one's."""

from __future__ import annotations

import pytest

from freshcache._core.deploys import (
    local_keys,
    readings,
    split_head,
    versioned_key,
)
from freshcache._core.keys import KeyBuilder
from freshcache._core.layout import versioned


def test_split_head() -> None:
    assert split_head("app:v1:") == ("app", "v1")
    for bad in ("app:v1", "app::", ":v1:", "app:v1:x"):
        with pytest.raises(ValueError):
            split_head(bad)


def test_a_key_of_another_version_maps_to_ours_at_our_namespace_version() -> None:
    v1, v2 = KeyBuilder("app", "v1"), KeyBuilder("app", "v2")
    theirs = versioned(v1.head, "user", 3, v1.key("user", 1, "profile"))
    assert theirs == "app:v1:user~3:1:profile"
    assert local_keys([theirs], v2.head, {"user": 0}) == [v2.key("user", 1, "profile")]
    assert local_keys([theirs], v2.head, {"user": 5}) == ["app:v2:user~5:1:profile"]
    # a key without a namespace version, and a namespace-only key
    assert local_keys(["app:v1:user:1"], v2.head, {"user": 2}) == ["app:v2:user~2:1"]
    assert local_keys(["app:v1:user~4"], v2.head, {"user": 0}) == ["app:v2:user"]


def test_our_own_keys_stay_and_other_prefixes_are_ignored() -> None:
    head = "app:v2:"
    mine = "app:v2:user~9:1"  # ours, whatever version we know
    assert local_keys([mine], head, {}) == [mine]
    assert local_keys(["other:v1:user:1", "apps:v1:user:1"], head, {"user": 0}) == []
    assert local_keys(["app:!bus", "app:!live"], head, {"!bus": 0, "!live": 0}) == []


def test_a_namespace_we_have_no_version_for_maps_to_nothing() -> None:
    assert local_keys(["app:v1:user:1"], "app:v2:", {"team": 0}) == []


def test_a_raw_namespace_ending_in_tilde_digits_maps_both_ways() -> None:
    # "a~1:x" is either namespace "a" at version 1, or the raw namespace "a~1"
    assert readings("a~1:x") == [("a~1", ":x"), ("a", ":x")]
    assert sorted(local_keys(["app:v1:a~1:x"], "app:v2:", {"a": 0, "a~1": 2})) == [
        "app:v2:a:x",
        "app:v2:a~1~2:x",
    ]
    assert readings("~1:x") == [("~1", ":x")]  # an empty namespace is no reading


def test_versioned_key_agrees_with_the_layout() -> None:
    b = KeyBuilder("app", "v1")
    full = b.key("search", "books", page=2)
    for n in (0, 1, 12):
        (namespace, remainder), *_ = readings(full[len(b.head) :])
        assert versioned_key(b.head, namespace, n, remainder) == versioned(
            b.head, "search", n, full
        )
