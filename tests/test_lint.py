"""The code base stays `ruff` clean and formatted, and `mypy` finds no error (part of the
README's test command, so CI runs them)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_clean() -> None:
    result = _run("ruff", "check", str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_error() -> None:
    result = _run("mypy")  # the files and settings are in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_applied() -> None:
    result = _run("ruff", "format", "--check", str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
