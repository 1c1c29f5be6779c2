"""What a user's type checker infers from freshcache's API (``mypy --strict``).

``tests/typing/user_code.py`` states it with ``assert_type``; the control
shows that a wrong statement fails, so the check cannot pass by accident.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_CODE = ROOT / "tests" / "typing" / "user_code.py"


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", "/dev/null", str(path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.slow
def test_mypy_strict_infers_the_types_users_need() -> None:
    done = _mypy(USER_CODE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_a_wrong_type_statement_fails(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        USER_CODE.read_text().replace(
            'assert_type(cache.get_or_load("user:1", load_user), User)',
            'assert_type(cache.get_or_load("user:1", load_user), int)',
        )
    )
    done = _mypy(wrong)
    assert done.returncode == 1
    assert 'Expression is of type "User", not "int"' in done.stdout
