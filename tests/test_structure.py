"""The package's shape: layers that only import downwards and no import circles
(import-linter, contracts in pyproject.toml), nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_layers_point_down_and_no_circles() -> None:
    """`lint-imports`, as CI and a contributor run it."""
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


PROBE = """
import sys
{setup}
heavy = [m for m in ("torch", "torchvision", "onnxruntime") if m in sys.modules]
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "setup",
    [
        "import imgsearch, imgsearch.cli",
        "import imgsearch; imgsearch.Index; imgsearch.SearchResult",
        "from imgsearch.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
        "from imgsearch.cli import app\ntry:\n    app(['search', '--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_nothing_heavy_at_import_or_help(setup) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "none"
