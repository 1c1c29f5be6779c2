"""What the log-hygiene checks look for, shared by ``conftest.py`` (every
freshcache record of the whole run) and the tests that plant values.

A test that caches a value, or uses a key, that must never reach a record
puts ``CANARY`` in it; ``conftest.py`` fails the run if any freshcache
record (its message, its arguments, its formatted traceback with every
chained exception, its structured fields) holds a canary, a test password,
or any URL with a password in it."""

from __future__ import annotations

import logging
import re
import traceback

CANARY = "fc-canary-2b9e"
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@]*:[^\s/@]+@")
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "m", (), None))) | {
    "message",
    "asctime",
}


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler or formatter could show of ``record``."""
    try:
        text = record.getMessage()
    except Exception:  # a bad format: not ours to judge here
        text = f"{record.msg} {record.args!r}"
    text += f"\n{record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += "".join(traceback.format_exception(record.exc_info[1]))
    if record.exc_text:
        text += record.exc_text
    if record.stack_info:
        text += record.stack_info
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    return f"{text}\n{extra!r}"


def leaks(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What ``text`` shows that it must not."""
    found = [s for s in (CANARY, *secrets) if s in text]
    found += URL_WITH_PASSWORD.findall(text)
    return found
