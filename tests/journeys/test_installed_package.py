"""The package as users install it (finding 9 of the journeys probe of 6450b97: the wheel left
out the page's JavaScript modules, so an installed `serve` answered 404 for them): a built
wheel carries every file the page and the migrations need, and installed in a new virtual
environment it runs the CLI and serves every file the page loads."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from ..support.hostile import write_photos

ROOT = Path(__file__).resolve().parents[2]
# what a checkout holds besides the source: left out of the copy the wheel is built from, so
# that modules a former build left under build/ cannot hide one the package list forgets
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", "site")


def _build_wheel(tmp_path: Path) -> tuple[Path, str]:
    """A wheel built from a clean copy of the checkout, and the build's output."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("imgsearch-*.whl")
    return wheel, build.stdout + build.stderr


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_page_and_the_migrations(tmp_path: Path) -> None:
    wheel, output = _build_wheel(tmp_path)
    assert "would be ignored" not in output and "is not in `packages`" not in output, output[-3000:]
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"imgsearch/{p.relative_to(ROOT / 'imgsearch')}" for p in (ROOT / "imgsearch").rglob("*.py")}
    assert modules - names == set(), f"modules left out of the wheel: {sorted(modules - names)}"
    web = ROOT / "imgsearch" / "service" / "web"
    expected = {f"imgsearch/service/web/{p.relative_to(web)}" for p in web.rglob("*") if p.is_file()}
    expected |= {
        f"imgsearch/migrations/versions/{p.name}" for p in (ROOT / "migrations" / "versions").glob("0*.py")
    }
    assert expected and not expected - names, sorted(expected - names)


def _modules(client: httpx.Client, url: str, seen: set[str]) -> None:
    """`url` and every module it imports, fetched (each must answer 200)."""
    if url in seen:
        return
    seen.add(url)
    answer = client.get(url)
    assert answer.status_code == 200, f"{url}: {answer.status_code}"
    if url.endswith(".js"):
        for name in re.findall(r"""(?:from|import)\s*["'](\./[^"']+\.js)["']""", answer.text):
            _modules(client, url.rsplit("/", 1)[0] + "/" + name[2:], seen)


@pytest.mark.slow
def test_the_installed_wheel_runs_the_cli_and_the_page(tmp_path: Path, db) -> None:
    """The package as `pip install` gives it (not editable): a new virtual environment holding
    the wheel (its dependencies seen from the system), walked through the CLI and the page."""
    wheel, _ = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(pip, check=True, timeout=300, capture_output=True)
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import imgsearch; print(imgsearch.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(venv) in where and str(ROOT) not in where  # the installed copy, not the checkout

    photos = tmp_path / "photos"
    write_photos(photos, 3)
    cli = str(venv / "bin" / "imgsearch")
    for args in (["ingest", str(photos)], ["search", str(photos / "photo0000.jpg"), "-k", "2"]):
        run = subprocess.run([cli, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "photo0000.jpg" in run.stdout

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [cli, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.5)
            page = client.get("/")
            assert page.status_code == 200
            assets = re.findall(r"""(?:src|href)="(/static/[^"]+)""", page.text)
            seen: set[str] = set()
            for url in assets:
                _modules(client, url, seen)
            assert any(u.endswith("/router.js") for u in seen) and len(seen) >= 10, sorted(seen)
    finally:
        server.terminate()
        server.wait(timeout=30)
