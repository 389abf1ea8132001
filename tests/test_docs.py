"""The documentation: README.md stays short with working links, the site under docs/ builds with
`mkdocs build --strict` (any warning fails: a broken link or anchor, a page left out of the
navigation), and its configuration table lists every IMGSEARCH_* variable the code reads."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200


def _relative_links(markdown: str) -> list[str]:
    """Link and image targets that are not web addresses or anchors in the same page."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", markdown)
    targets += re.findall(r"<img[^>]+src=\"([^\"]+)\"", markdown)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"
    links = _relative_links(readme)
    assert links, "the README links into the documentation"
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_docs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "WARNING" not in output, output
    page = (tmp_path / "site" / "operations" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "<!-- variables -->" not in page and "IMGSEARCH_DATABASE_URL" in page


def test_plots_are_drawn(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "plots.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    shipped = sorted(p.name for p in (ROOT / "docs" / "img").glob("*.png"))
    assert drawn == shipped, (drawn, shipped)


def test_every_variable_is_documented() -> None:
    from imgsearch.config import documented_variables

    documented = {name for name, _default, _meaning in documented_variables()}
    read = set()
    for path in (ROOT / "imgsearch").rglob("*.py"):
        read |= set(re.findall(r"\bIMGSEARCH_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    assert read, "the code reads IMGSEARCH_* variables"
    assert not read - documented, f"not in config.documented_variables(): {sorted(read - documented)}"
    for name, default, meaning in documented_variables():
        assert name.startswith("IMGSEARCH_") and default and meaning, name
