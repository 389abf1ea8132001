"""Every benchmark runs: each benchmarks/*.py (not the helpers named _*.py) in its `--smoke` mode,
as `python benchmarks/NAME.py --smoke ...` runs it (in a process forked from a warm interpreter:
support/warm_python.py), on the test database and a temporary IMGSEARCH_HOME. A new benchmark
without --smoke fails here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from .support import warm_python

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# a line each smoke run prints (its figures, in the format of a full run); a script not named
# here need only print something
PRINTS = {
    "api": "clients: p50",
    "cli": "imgsearch --help",
    "collection": "duplicates among",
    "duplicates": "grouping",
    "elpv_folders": "elpv cells in",
    "elpv_paper": "| efficientnet-lite0 |",
    "encode": "decode + resize/crop to 224",
    "finetuned_speed": "run 2: tuned",
    "growth": "| n | dim | index | way | setting |",
    "hostile": "imgsearch serve, POST /api/search uploads",
    "ingest": "peak RSS,",
    "keeper": "| all |",
    "knn": "| method | build s |",
    "learning": "PCA",
    "page": "duplicates, warm reload",
    "quality": "near-duplicates,",
    "replica": "2 servers (primary + replica)",
    "sample_images": "JPEGs of 640x480",
    "scale": "partitions |",
    "search": "warm searches through imgsearch.open()",
    "search_overhead": "library - similar_to_vector p50",
    "text_query": "cold (a new interpreter",
}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_every_benchmark_takes_the_shared_arguments(script: Path) -> None:
    """--smoke, --database-url, --home and --elpv (benchmarks/_support.py): a script that took no
    arguments would run in full, for minutes, when the suite asks for its smoke run."""
    assert "_support.add_arguments(parser)" in script.read_text(), f"{script.name} has no --smoke"


def test_no_line_expected_of_a_missing_benchmark():
    assert set(PRINTS) <= {p.stem for p in BENCHMARKS}


@pytest.fixture(scope="session")
def elpv_standin(tmp_path_factory) -> Path:
    """A few generated cells in elpv-dataset's layout (labels.csv, images/): 24 of 160 px, three
    of each of the 8 classes, the fewest every smoke run's splits take (the smoke runs that use
    them take about half the time they took with the 40 of 300 px a hand-run `--smoke` makes)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _support import write_elpv_standin
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return write_elpv_standin(tmp_path_factory.mktemp("elpv-standin"), cells=24, size=160)


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_smoke(script: Path, db, lite0, elpv_standin: Path, tmp_path: Path) -> None:
    if script.stem == "page":
        from .support.web import _need_browser

        _need_browser()
    home = tmp_path / "home"
    home.mkdir()
    models = Path(os.environ["IMGSEARCH_HOME"]) / "models"  # the session's: exported once
    models.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(models, target_is_directory=True)
    env = {**os.environ, "IMGSEARCH_HOME": str(home), "IMGSEARCH_DEVICE": "cpu"}
    args = ["--smoke", "--database-url", db.url, "--home", str(home), "--elpv", str(elpv_standin)]
    t0 = time.perf_counter()
    done = warm_python.shared().run(script, args, env=env, cwd=tmp_path, timeout=600)
    seconds = time.perf_counter() - t0
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script.name} --smoke failed ({seconds:.0f} s):\n{output[-6000:]}"
    expected = PRINTS.get(script.stem, "")
    assert done.stdout.strip() and expected in done.stdout, f"{script.name} printed:\n{done.stdout[-4000:]}"
    print(f"{script.name} --smoke: {seconds:.1f} s")
