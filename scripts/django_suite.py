"""Fetch Django's own cache test suite for the installed Django version.

Usage: ``python scripts/django_suite.py [--print-path]``

Django's tests are not in its wheel; its sdist on PyPI has them. This
script downloads the sdist of exactly the Django version installed in the
running environment, through pip (so the machine's package index settings
apply), checks its SHA-256 against the hash ``uv.lock`` records for that
version, and extracts ``tests/cache/`` (the suite and the modules it
imports: ``models.py``, ``closeable_cache.py``, ``liberal_backend.py``,
``failing_cache.py``) and Django's ``LICENSE`` (BSD-3-Clause) into
``.django-suite/<version>/`` (ignored by git). Nothing is fetched when that
directory is complete. A version ``uv.lock`` does not hold (``make
test-latest``) is checked against the hash pip verified from the index only,
and says so.

Why not vendor the files: 3,000 lines of Django's code in this repository
would have to be kept in step with the locked Django by hand; this way the
suite is always the one of the Django the tests run on, byte for byte what
Django released, and a change of the lock brings its suite with it
(``docs/django.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / ".django-suite"
FILES = (
    "__init__.py",
    "tests.py",
    "tests_async.py",
    "models.py",
    "closeable_cache.py",
    "liberal_backend.py",
    "failing_cache.py",
)


def locked_hash(version: str) -> str | None:
    """The sdist SHA-256 ``uv.lock`` records for ``django==version``."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for package in lock.get("package", []):
        if package.get("name") == "django" and package.get("version") == version:
            digest = package.get("sdist", {}).get("hash", "")
            if digest.startswith("sha256:"):
                return str(digest.removeprefix("sha256:"))
    return None


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, else the system's."""
    for python in (sys.executable, shutil.which("python3")):
        if python is None:
            continue
        probe = subprocess.run(
            [python, "-m", "pip", "--version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [python, "-m", "pip"]
    raise SystemExit("django_suite: no pip to download Django's sdist with")


def fetch(version: str) -> Path:
    """``.django-suite/<version>``, with ``cache/`` and ``LICENSE``."""
    target = DEST / version
    if (
        all((target / "cache" / name).is_file() for name in FILES)
        and (target / "LICENSE").is_file()
    ):
        return target
    expected = locked_hash(version)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [*_pip(), "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, f"django=={version}"],
            check=True,
        )  # fmt: skip
        archives = list(Path(tmp).glob("*.tar.gz"))
        if len(archives) != 1:
            raise SystemExit(f"django_suite: expected one sdist, found {archives}")
        archive = archives[0]
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if expected is None:
            print(
                f"django_suite: Django {version} is not in uv.lock; its sdist "
                f"(sha256 {digest}) is checked by pip against the index only",
                file=sys.stderr,
            )
        elif digest != expected:
            raise SystemExit(
                f"django_suite: {archive.name} has sha256 {digest}, but uv.lock "
                f"records {expected}"
            )
        staging = Path(tmp) / "out"
        (staging / "cache").mkdir(parents=True)
        with tarfile.open(archive) as tar:
            top = archive.name.removesuffix(".tar.gz")
            members = {f"{top}/tests/cache/{name}": f"cache/{name}" for name in FILES}
            members[f"{top}/LICENSE"] = "LICENSE"
            for member in tar.getmembers():
                name = members.pop(member.name, None)
                if name is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                assert source is not None
                (staging / name).write_bytes(source.read())
            if members:
                raise SystemExit(f"django_suite: missing from the sdist: {members}")
        (staging / "VERSION").write_text(f"Django {version}, sdist sha256 {digest}\n")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print-path", action="store_true")
    args = parser.parse_args()
    version = importlib.metadata.version("django")
    path = fetch(version)
    if args.print_path:
        print(path)


if __name__ == "__main__":
    main()
