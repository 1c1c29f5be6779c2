"""scripts/unasync.py: the conversion rules, and the committed _sync/ being current."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_unasync_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unasync = _load()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("async def get(self) -> None:", "def get(self) -> None:"),
        ("    async with self._lock:", "    with self._lock:"),
        ("value = await self._store.get(key)", "value = self._store.get(key)"),
        ("await x", "x"),
        ("class AsyncCache:", "class Cache:"),
        (
            "cache = AsyncCache(store=AsyncRedisStore())",
            "cache = Cache(store=RedisStore())",
        ),
        (
            "from collections.abc import AsyncIterator",
            "from collections.abc import Iterator",
        ),
        ("-> AsyncGenerator[int, None]:", "-> Generator[int, None]:"),
        ("typing.AsyncIterator[str]", "typing.Iterator[str]"),
        ("await self._client.aclose()", "self._client.close()"),
        ("async def aclose(self) -> None:", "def close(self) -> None:"),
        ("async def __aenter__(self) -> Self:", "def __enter__(self) -> Self:"),
        (
            "async def __aexit__(self, *exc: object) -> None:",
            "def __exit__(self, *exc: object) -> None:",
        ),
        ("from redis.asyncio import Redis", "from redis import Redis"),
        (
            "from redis.asyncio.client import Pipeline",
            "from redis.client import Pipeline",
        ),
        ("await asleep(0.1)", "sleep(0.1)"),
        (
            "from freshcache._concurrency import asleep",
            "from freshcache._concurrency import sleep",
        ),
        (
            "from freshcache._async.cache import AsyncCache",
            "from freshcache._sync.cache import Cache",
        ),
        (
            "from tests._async.helpers import make",
            "from tests._sync.helpers import make",
        ),
        ("from .._async import stores", "from .._sync import stores"),
        ("value = await ainvoke(loader)", "value = invoke(loader)"),
        (
            "acheck_function(func, 'AsyncCache.cached')",
            "check_function(func, 'Cache.cached')",
        ),
        ("func: Callable[P, Awaitable[R]],", "func: Callable[P, R],"),
        ("-> Awaitable[R_co]: ...", "-> R_co: ..."),
        ('"""Return the AsyncCache for url."""', '"""Return the Cache for url."""'),
        ("    @pytest_asyncio.fixture", "    @pytest.fixture"),
    ],
)
def test_rules_convert(source: str, expected: str) -> None:
    assert unasync.unasync_line(source) == expected


@pytest.mark.parametrize(
    "line",
    [
        "class MyAsyncThing:",  # Async not at a token start
        "Asyncio = 1",  # no capital after Async
        "import asyncio",
        "def is_async_ready(): ...",
        "x = _async_helper",
        "awaited = 1",
        "y = self.aclosed",
        "falseep = basleep",
        "from redis.asyncio_extra import x",
        "def fasync(): ...",
        "import pytest_asyncio",
    ],
)
def test_rules_respect_token_boundaries(line: str) -> None:
    assert unasync.unasync_line(line) == line


def test_rules_apply_in_order_on_one_line() -> None:
    line = (
        "    async with AsyncLock() as lock: await lock.aclose()  # from redis.asyncio"
    )
    expected = "    with Lock() as lock: lock.close()  # from redis"
    assert unasync.unasync_line(line) == expected


def test_skip_marker_drops_the_line() -> None:
    source = "import asyncio  # unasync: skip\nx = 1\n"
    assert unasync.unasync_line("import asyncio  # unasync: skip\n") is None
    assert unasync.unasync_source(source) == "x = 1\n"


def test_keep_marker_leaves_the_line_unchanged() -> None:
    line = "    await asyncio.sleep(0)  # unasync: keep\n"
    assert unasync.unasync_line(line) == line
    assert unasync.unasync_line("AsyncFoo  #unasync:keep") == "AsyncFoo  #unasync:keep"


def test_skip_block_drops_its_lines() -> None:
    source = (
        "a = 1\n"
        "    # unasync: skip-begin (async only)\n"
        "    @overload\n"
        "    async def f(x: Awaitable[T]) -> T: ...\n"
        "    # unasync: skip-end\n"
        "b = 2\n"
    )
    assert unasync.unasync_source(source) == "a = 1\nb = 2\n"


@pytest.mark.parametrize(
    "source",
    [
        "# unasync: skip-begin\nx = 1\n",
        "# unasync: skip-end\n",
        "# unasync: skip-begin\n# unasync: skip-begin\n# unasync: skip-end\n",
    ],
)
def test_unbalanced_skip_blocks_are_errors(source: str) -> None:
    with pytest.raises(ValueError, match="skip-"):
        unasync.unasync_source(source)


def test_marker_only_counts_at_the_end_of_the_line() -> None:
    line = "x = '# unasync: skip'; await y"
    assert unasync.unasync_line(line) == "x = '# unasync: skip'; y"


def test_fired_rules_are_recorded() -> None:
    fired: set[str] = set()
    unasync.unasync_source("async def f():\n    await g()\n", fired)
    assert fired == {r"\basync def\b", r"\bawait\s+"}


ASYNC_MODULE = """\
from redis.asyncio import Redis


class AsyncThing:
    async def aclose(self) -> None:
        await self._client.aclose()
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway repository with one async source file."""
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 88\n")
    (tmp_path / "a" / "_async" / "pkg").mkdir(parents=True)
    (tmp_path / "a" / "_async" / "pkg" / "mod.py").write_text(ASYNC_MODULE)
    monkeypatch.setattr(unasync, "ROOT", tmp_path)
    monkeypatch.setattr(unasync, "DIRS", [("a/_async", "a/_sync")])
    return tmp_path


def test_generate_check_and_prune(
    tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unasync, "STRICT_UNUSED", False)  # a tiny tree fires few
    assert unasync.main(["--check"]) == 1  # nothing generated yet
    assert "+++ b/a/_sync/pkg/mod.py" in capsys.readouterr().out

    assert unasync.main([]) == 0
    out = tree / "a" / "_sync"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.py")) == [
        "__init__.py",
        "pkg/__init__.py",
        "pkg/mod.py",
    ]
    assert (out / "pkg" / "mod.py").read_text() == (
        "# AUTOGENERATED from a/_async/pkg/mod.py by scripts/unasync.py. DO NOT EDIT.\n"
        "from redis import Redis\n\n\nclass Thing:\n"
        "    def close(self) -> None:\n        self._client.close()\n"
    )
    assert (
        (out / "pkg" / "__init__.py")
        .read_text()
        .startswith("# AUTOGENERATED from a/_async/pkg/ by")
    )
    assert "warning: unasync rules that never fired" in capsys.readouterr().err
    assert unasync.main(["--check"]) == 0

    (out / "pkg" / "mod.py").write_text("edited\n")
    (out / "stale.py").write_text(unasync.HEADER.format("a/_async/stale.py"))
    assert unasync.main(["--check"]) == 1
    diff = capsys.readouterr().out
    assert "-edited" in diff
    assert "--- a/a/_sync/stale.py\n+++ /dev/null" in diff

    assert unasync.main([]) == 0
    assert not (out / "stale.py").exists()
    assert unasync.main(["--check"]) == 0

    monkeypatch.setattr(unasync, "STRICT_UNUSED", True)
    assert unasync.main(["--check"]) == 2
    assert unasync.main(["--check", "--allow-unused"]) == 0


def test_generated_sync_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        "src/freshcache/_sync or tests/_sync is out of step with _async; "
        "run `python scripts/unasync.py` and commit the result\n" + result.stdout
    )
