"""The package as users install it: a built wheel carries every file the page and the
migrations need (finding 9 of the journeys probe of 6450b97: the wheel left out the page's
JavaScript modules, so an installed `serve` answered 404 for them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_page_and_the_migrations(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    output = build.stdout + build.stderr
    assert "would be ignored" not in output and "is not in `packages`" not in output, output[-3000:]
    (wheel,) = tmp_path.glob("imgsearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = ROOT / "imgsearch" / "service" / "web"
    expected = {f"imgsearch/service/web/{p.relative_to(web)}" for p in web.rglob("*") if p.is_file()}
    expected |= {
        f"imgsearch/migrations/versions/{p.name}" for p in (ROOT / "migrations" / "versions").glob("0*.py")
    }
    assert expected and not expected - names, sorted(expected - names)
