"""The pure log decisions: repeats held back on a fake clock, transitions,
scrubbing of foreign messages, redaction of private keys."""

from __future__ import annotations

import pytest

from freshcache._core.logs import (
    FIELDS,
    Repeats,
    Transitions,
    failure,
    namespace_of,
    redact_key,
    scrub,
)
from freshcache.testing import FakeClock


def test_a_repeat_is_held_back_until_the_interval_then_reports_the_count() -> None:
    clock = FakeClock()
    repeats = Repeats(clock.monotonic, every=10.0)
    kind = ("freshcache.redis", "Redis %s error: %s", "config")
    assert repeats.check(kind) == (True, 0)  # the first one
    for _ in range(20):  # twice a second for 10 s
        clock.advance(0.49)
        assert repeats.check(kind) == (False, 0)
    clock.advance(0.3)  # 10.1 s after the first
    assert repeats.check(kind) == (True, 20)  # "repeated 20 times"
    assert repeats.check(kind) == (False, 0)
    clock.advance(10.0)
    assert repeats.check(kind) == (True, 1)


def test_kinds_are_held_back_apart_and_memory_is_bounded() -> None:
    clock = FakeClock()
    repeats = Repeats(clock.monotonic, every=10.0, max_kinds=3)
    assert repeats.check("a") == (True, 0)
    assert repeats.check("b") == (True, 0)  # another kind: not held back
    assert repeats.check("a") == (False, 0)
    for kind in ("c", "d", "e"):  # pushes out the oldest kinds
        assert repeats.check(kind) == (True, 0)
    assert repeats.check("a") == (True, 0)  # forgotten: a first one again
    assert repeats.check("a", every=0.0) == (True, 0)  # a caller's own interval


def test_repeats_refuse_bad_settings() -> None:
    with pytest.raises(ValueError):
        Repeats(FakeClock().monotonic, every=-1)
    with pytest.raises(ValueError):
        Repeats(FakeClock().monotonic, max_kinds=0)


def test_transitions_fire_once_per_change() -> None:
    circuit = Transitions(initial="closed")
    assert not circuit.changed("redis", "closed")
    assert circuit.changed("redis", "open")
    assert not circuit.changed("redis", "open")  # a failed probe: same state
    assert circuit.changed("redis", "closed")
    assert circuit.state("redis") == "closed"
    assert circuit.changed("other", "open")  # each name apart


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "Error connecting to redis://user:pw-9@db.example:6379/0 refused",
            "Error connecting to redis://db.example:6379/0 refused",
        ),
        ("rediss://:pw-9@h:1 and redis://u@h:2", "rediss://h:1 and redis://h:2"),
        ("dsn postgres://app:pw-9@h/db", "dsn postgres://h/db"),
        ("bare user:pw-9@host:6379 here", "bare host:6379 here"),
        (
            "Command # 2 (EVALSHA abc 2 fc:v1:user:1 lease v4lue-secret 0) of "
            "pipeline caused error: OOM command not allowed",
            "Command # 2 of pipeline caused error: OOM command not allowed",
        ),
        (  # a value that itself holds the phrase: cut up to the last one
            "Command # 1 (SET k x) of pipeline caused error: y) of pipeline "
            "caused error: WRONGTYPE Operation",
            "Command # 1 of pipeline caused error: WRONGTYPE Operation",
        ),
        (
            "Error 111 connecting to 127.0.0.1:6379.",
            "Error 111 connecting to 127.0.0.1:6379.",
        ),
    ],
)
def test_scrub_removes_passwords_and_command_arguments(text: str, shown: str) -> None:
    assert scrub(text) == shown
    assert "pw-9" not in scrub(text)
    assert "secret" not in scrub(text)


def test_scrub_bounds_the_length() -> None:
    assert len(scrub("x" * 10_000)) <= 503


def test_a_private_key_is_redacted_with_a_stable_short_hash() -> None:
    private = frozenset({"session"})
    shown = redact_key("session:tok-123", private)
    assert shown.startswith("session:<redacted:")
    assert "tok-123" not in shown
    assert redact_key("session:tok-123", private) == shown  # stable
    assert redact_key("session:tok-124", private) != shown
    full = redact_key("fc:v1:session~3:tok-123", private, head="fc:v1:")
    assert full.startswith("fc:v1:session~3:<redacted:")
    assert "tok" not in full
    assert redact_key("user:1", private) == "user:1"
    assert redact_key("session", private).startswith("session:<redacted:")
    assert redact_key("session:x", frozenset()) == "session:x"
    assert namespace_of("fc:v1:user~2:1", "fc:v1:") == "user"
    assert namespace_of("user:1") == "user"


def test_failure_names_the_class_and_place_never_the_message() -> None:
    try:
        raise ValueError("row (secret-row-42)")
    except ValueError as exc:
        shown = failure(exc)
    assert shown.startswith("ValueError at test_logs.py:")
    assert "secret" not in shown
    assert failure(KeyError("secret")) == "KeyError"


def test_field_names_do_not_collide_with_log_record_attributes() -> None:
    import logging

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert not set(FIELDS) & set(vars(record))
    assert all(name.startswith("freshcache_") for name in FIELDS)


def test_a_write_or_malformed_entry_repr_shows_no_value() -> None:
    from freshcache import Write
    from freshcache._core.streams import Malformed

    write = Write("user:1", '{"token": "fc-canary-2b9e"}', 1, "1-0")
    assert "canary" not in repr(write)
    assert "user:1" in repr(write)
    bad = Malformed("1-0", "s", "no version", {"p": "fc-canary-2b9e"})
    assert "canary" not in repr(bad)
