"""What the web integrations share: which responses may be stored, the
key of a request, the entity tag of a body, and ``If-None-Match``.

Framework-free: ``contrib.fastapi`` and ``contrib.flask`` turn their
requests and responses into these plain values and back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "NO_STORE_HEADERS",
    "Stored",
    "Uncacheable",
    "cacheable",
    "entity_tag",
    "key_parts",
    "matches",
    "names",
    "tags_for",
]

# (status, headers, body, entity tag): what one cached response holds.
Stored = tuple[int, list[tuple[str, str]], bytes, str]

# Never stored with a response: recomputed (length), or set per reply.
NO_STORE_HEADERS = frozenset(
    {"content-length", "etag", "set-cookie", "date", "server", "transfer-encoding"}
)


class Uncacheable(Exception):  # noqa: N818  # a signal, not an error
    """A response not to store, out of the single flight to its caller."""

    def __init__(self, response: object, token: object) -> None:
        super().__init__("not cacheable")
        self.response = response
        self.token = token


def cacheable(status: int, headers: Iterable[tuple[str, str]]) -> bool:
    """Only a 200 that sets no cookie and is not ``private``/``no-store``."""
    if status != 200:
        return False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "set-cookie":
            return False
        if lowered == "cache-control":
            control = value.lower()
            if "private" in control or "no-store" in control:
                return False
    return True


def entity_tag(body: bytes) -> str:
    """A strong ``ETag``: a 128-bit blake2b of the body, quoted."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or is ``*``): the weak
    comparison RFC 9110 prescribes for it (``W/`` is ignored)."""
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def names(given: Iterable[str], what: str) -> tuple[str, ...]:
    """Query parameter or header names, checked (a lone str is refused)."""
    if isinstance(given, str):
        raise TypeError(f"{what} is a list of names, not one str")
    found = tuple(given)
    for name in found:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what} holds non-empty str names, not {name!r}")
    return found


def tags_for(templates: Sequence[str], params: Mapping[str, Any]) -> list[str]:
    """The tag templates rendered from the path parameters."""
    return [t.format(**params) for t in templates]


def key_parts(
    query: Sequence[str],
    headers: Sequence[str],
    get_query: Callable[[str], list[str]],
    get_header: Callable[[str], str | None],
) -> dict[str, object]:
    """The chosen query parameters (every value, in order) and headers
    (``None`` when absent, which no value equals) as named key parts."""
    return {
        "q": [(name, get_query(name)) for name in query],
        "h": [(name.lower(), get_header(name)) for name in headers],
    }
