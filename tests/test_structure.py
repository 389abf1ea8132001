"""The package's shape: no import circles, nothing heavy at import, small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgsearch"
MAX_LINES = 300


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
        and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    """imgsearch modules that `path` imports anywhere (also inside functions), except under
    `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("imgsearch"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imgsearch"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = {_module_name(root, p): p for p in root.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                return trail[trail.index(dep):] + [dep]
            if dep not in state and (circle := visit(dep, [*trail, dep])):
                return circle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module, [module])):
            return circle
    return None


def test_no_import_circles() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 20
    assert find_circle(graph) is None


def test_a_lazy_import_back_is_a_circle(tmp_path) -> None:
    fake = tmp_path / "imgsearch"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "a.py").write_text("def f():\n    from imgsearch import b\n")
    (fake / "b.py").write_text("from imgsearch.a import f\n")
    (fake / "c.py").write_text("from imgsearch.a import f\n")
    assert find_circle(import_graph(fake)) == ["imgsearch.a", "imgsearch.b", "imgsearch.a"]


PROBE = """
import sys
{setup}
heavy = [m for m in ("torch", "torchvision", "onnxruntime") if m in sys.modules]
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize("setup", [
    "import imgsearch, imgsearch.cli",
    "import imgsearch; imgsearch.Index; imgsearch.SearchResult",
    "from imgsearch.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
    "from imgsearch.cli import app\ntry:\n    app(['search', '--help'])\nexcept SystemExit:\n    pass",
])
def test_nothing_heavy_at_import_or_help(setup) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "none"


def test_modules_are_small() -> None:
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
