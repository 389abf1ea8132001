"""The code base stays `ruff` clean and formatted, and `mypy` finds no error (part of the
README's test command, so CI runs them). mypy keeps its cache beside the tests' other kept
artefacts (support/artefacts.py), so that a new checkout on the same machine checks only what
differs (85 s cold, 3 s warm: most of the work is torch's and numpy's types)."""

import subprocess
import sys
from pathlib import Path

from .support import artefacts

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_clean() -> None:
    result = _run("ruff", "check", str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_error() -> None:
    kept = artefacts.root()
    cache = ["--cache-dir", str(kept / f"mypy-py{sys.version_info[0]}.{sys.version_info[1]}")] if kept else []
    result = _run("mypy", *cache)  # the files and settings are in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_applied() -> None:
    result = _run("ruff", "format", "--check", str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
