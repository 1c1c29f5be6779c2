"""The suite-wide log check (``tests/hygiene.py``, used by ``conftest.py``)
finds a planted canary or password wherever a record can carry it: the
message, its arguments, a chained exception in its traceback, a structured
field; and a URL with a password in any form."""

from __future__ import annotations

import logging
import sys

import pytest

from tests.hygiene import CANARY, leaks, record_text


def _record(**kw: object) -> logging.LogRecord:
    fields = {"msg": "plain %s", "args": ("words",), "exc_info": None}
    fields.update(kw)
    return logging.LogRecord(
        "freshcache.redis", logging.ERROR, __file__, 1,
        fields["msg"], fields["args"], fields["exc_info"],  # type: ignore[arg-type]
    )  # fmt: skip


def _chained() -> object:
    try:
        try:
            raise ValueError(f"row ({CANARY})")
        except ValueError as inner:
            raise RuntimeError("store failed") from inner
    except RuntimeError:
        return sys.exc_info()


@pytest.mark.parametrize(
    "record",
    [
        _record(msg=f"value {CANARY}"),
        _record(args=(f"{CANARY}",)),
        _record(msg="no format %s %s"),  # a bad format: the args still count
        _record(exc_info=_chained()),  # only in the chained exception
    ],
)
def test_a_canary_anywhere_in_a_record_is_found(record: logging.LogRecord) -> None:
    if record.msg == "no format %s %s":
        record.args = (CANARY,)
    assert leaks(record_text(record)) == [CANARY]


def test_a_canary_in_a_structured_field_is_found() -> None:
    record = _record()
    record.freshcache_namespace = CANARY
    assert leaks(record_text(record)) == [CANARY]


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:pw@host:6379/0",
        "rediss://:pw@host",
        "redis+sentinel://u:p@s1:26379,s2/mymaster",
        "postgresql://app:pw@db/test",
    ],
)
def test_a_url_with_a_password_is_found(url: str) -> None:
    assert leaks(f"connecting to {url} failed") != []


def test_clean_text_and_passwordless_urls_pass() -> None:
    record = _record(msg="Redis circuit opened after %s", args=("TimeoutError",))
    assert leaks(record_text(record)) == []
    assert leaks("redis://host:6379/0 and redis://user@host/0") == []
    assert leaks("the secret", {"secret"}) == ["secret"]
