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
heavy = [m for m in ("torch", "torchvision", "onnxruntime", "httpx") if m in sys.modules]
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "setup",
    [
        "import imgsearch, imgsearch.cli",
        "import imgsearch; imgsearch.Index; imgsearch.SearchResult",
        "from imgsearch.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
        "from imgsearch.cli import app\ntry:\n    app(['search', '--help'])\nexcept SystemExit:\n    pass",
        "from imgsearch.cli import app\ntry:\n    app(['models'])\nexcept SystemExit:\n    pass",
        "import imgsearch.sources, imgsearch.encoding.decode",
    ],
    ids=["import", "library", "help", "search-help", "models", "sources"],
)
def test_nothing_heavy_at_import_or_help(setup) -> None:
    """Nor an HTTP client where nothing is downloaded: httpx is a sixth of a second of each
    command's start (`sources`: what reading a query or an ingested file loads)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "none"


def test_test_modules_import_helpers_from_the_support_package_only() -> None:
    """Shared helpers live in tests/support/; no test module imports another test module."""
    import ast

    tests = ROOT / "tests"
    offenders = []
    for file in sorted(tests.rglob("*.py")):
        package = file.relative_to(ROOT).parent.parts
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                origin = [*base, *(node.module.split(".") if node.module else [])]
                targets = [origin + [a.name] for a in node.names] if not node.module else [origin]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                targets = [n.split(".") for n in names if n and n.split(".")[0] == "tests"]
            else:
                continue
            for target in targets:
                if target[:2] != ["tests", "support"]:
                    offenders.append(f"{file.relative_to(ROOT)}: {'.'.join(target)}")
    assert not offenders, offenders
