"""The package's shape: no import cycles, and tests that keep out of the facade.

The layers themselves (which folder may import which) are import-linter
contracts in ``pyproject.toml``, run by ``make check``. A layers contract
does not see a cycle inside one layer, so this test looks for any: the
strongly connected components of the import graph, type-only imports
(``if TYPE_CHECKING:``) included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
FACADES = [
    ROOT / "src" / "freshcache" / "_async" / "cache.py",
    ROOT / "src" / "freshcache" / "_sync" / "cache.py",
]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_no_import_cycles_type_only_imports_included() -> None:
    graph = grimp.build_graph("freshcache", cache_dir=None)
    assert len(graph.modules) > 60
    assert _cycles(graph) == []


def _facade_privates() -> set[str]:
    """The private names of the facade: its attributes and methods."""
    names: set[str] = set()
    for path in FACADES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr.startswith("_")
            ):
                names.add(node.attr)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def test_no_test_reaches_a_private_attribute_of_the_facade() -> None:
    privates = _facade_privates()
    assert {"_engine", "_keys", "_metrics", "_resolve"} <= privates
    reached = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in privates
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                reached.append(f"{where} .{node.attr}")
    assert reached == []


EMBEDDED = """
import asyncio, sys
import freshcache
assert "redis" not in sys.modules, "import freshcache"
url, prefix = (sys.argv[1:] + ["layers"])[:2] if sys.argv[1:] else (None, "layers")
with freshcache.Cache(url, prefix=prefix) as cache:
    cache.set("k", 1)
    assert cache.get("k") == 1
    cache.get_or_load("j", lambda: 2)


async def main():
    async with freshcache.AsyncCache(l1=freshcache.L1()) as cache:
        await cache.set("k", 1)
        assert await cache.get("k") == 1


asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("redis", "hiredis"))
assert not loaded, loaded
"""


def test_the_embedded_cache_never_imports_redis() -> None:
    """``import freshcache`` and the embedded default load no Redis client:
    only a Redis URL (or write-behind) does."""
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.redis
def test_a_redis_url_does_import_redis(
    redis_url: str, key_prefix: str, redis_cleanup: None
) -> None:
    """The control: the check above sees redis when it is loaded."""
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED, redis_url, key_prefix],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "AssertionError: ['hiredis'" in done.stderr or "'redis'" in done.stderr
