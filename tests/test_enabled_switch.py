"""The on/off switch's setting: ``enabled=`` and ``FRESHCACHE_ENABLED``.

What a disabled cache does is in tests/_async/test_disabled.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from freshcache import AsyncCache, Cache

VARIABLE = "FRESHCACHE_ENABLED"
CACHES = pytest.mark.parametrize("cls", [Cache, AsyncCache])


@CACHES
@pytest.mark.parametrize("value", ["0", "false", "No", " OFF ", "FALSE"])
def test_the_variable_disables(
    cls: type[Cache], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    assert cls().enabled is False


@CACHES
@pytest.mark.parametrize("value", ["1", "true", "YES", "on ", "", "  "])
def test_the_variable_enables(
    cls: type[Cache], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, value)  # set but empty: as if not set
    assert cls().enabled is True


@CACHES
def test_enabled_by_default(cls: type[Cache], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    assert cls().enabled is True


@CACHES
@pytest.mark.parametrize("value", ["disabled", "2", "nope", "of", "0 1"])
def test_an_unknown_value_is_an_error(
    cls: type[Cache], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(ValueError, match=VARIABLE):
        cls()


@CACHES
@pytest.mark.parametrize("value", ["0", "1", "garbage"])
def test_the_argument_wins_over_the_variable(
    cls: type[Cache], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    assert cls(enabled=True).enabled is True
    assert cls(enabled=False).enabled is False


@CACHES
@pytest.mark.parametrize("value", ["false", 0, 1])
def test_the_argument_is_a_bool(cls: type[Cache], value: object) -> None:
    with pytest.raises(TypeError, match="enabled"):
        cls(enabled=value)  # type: ignore[arg-type]


def test_other_arguments_are_still_checked() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Cache("http://127.0.0.1", enabled=False)
    with pytest.raises(ValueError, match="ttl"):
        Cache(enabled=False, ttl=-1)


def test_a_disabled_cache_imports_no_redis() -> None:
    """Switched off by the variable alone: a Redis URL, and neither redis nor
    a connection (port 1: nothing listens there)."""
    code = (
        "import sys\n"
        "from freshcache import Cache, MISS\n"
        "with Cache('redis://127.0.0.1:1/0') as cache:\n"
        "    assert not cache.enabled\n"
        "    assert cache.get_or_load('k', lambda: 7) == 7\n"
        "    assert cache.get('k') is MISS\n"
        "    assert cache.stats().errors == {}\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
    )
    env = {**os.environ, VARIABLE: "off"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
