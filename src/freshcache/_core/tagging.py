"""Invalidation tags: what a tag may be, and rendering them for one value."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

TagSource = Callable[[Any], Iterable[str]]
"""A callable given the loaded value, returning the tags it depends on."""


def render_tags(tags: Sequence[str | TagSource], value: Any) -> tuple[str, ...]:
    """Literal tags as given; callables are asked with the loaded value."""
    out: list[str] = []
    for tag in tags:
        produced = [tag] if isinstance(tag, str) else list(tag(value))
        for one in produced:
            check_tag(one)
            out.append(one)
    return tuple(dict.fromkeys(out))


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"a tag is a non-empty str, not {tag!r}")
    if "{" in tag or "}" in tag or "\x1f" in tag:
        raise ValueError(f"tags may not contain '{{', '}}' or 0x1F: {tag!r}")
    return tag
