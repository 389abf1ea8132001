"""What the benchmarks share (not a benchmark: the test suite runs every benchmarks/*.py whose
name does not start with "_"):

- `add_arguments`: `--smoke` (tiny sizes, seconds: the test suite runs every benchmark this way,
  so none of them rots), `--database-url` (a database of one's own instead of a throwaway embedded
  server), `--home` (IMGSEARCH_HOME, default a new temporary folder) and `--elpv` (where elpv is
  used: a labels.csv in elpv-dataset's layout, such as the suite's tiny stand-in);
- `home` and `database_server`: the run's IMGSEARCH_HOME and its PostgreSQL server;
- `load_elpv`: elpv's cells, probabilities and types, from the package or a stand-in;
- the test suite's helpers the benchmarks use, imported here only (one place to change).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The test suite's helpers: real sample photos (no downloads), their edits, and the browser
# tests' Chromium settings and in-thread server. Imported here only.
from tests.support.photos import center_crop, halved, jpeg_recompressed, sample_photos  # noqa: E402

__all__ = ["center_crop", "halved", "jpeg_recompressed", "sample_photos", "web_support"]


def web_support():
    """The browser tests' helpers (CHROMIUM, LAUNCH_ARGS, serving); imported when asked for."""
    from tests.support import web as module

    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, a few seconds: checks that the benchmark runs (the test suite runs it)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to use (new databases are made beside it and dropped at the "
        "end); default: a throwaway embedded server in the home",
    )
    parser.add_argument(
        "--home", type=Path, help="IMGSEARCH_HOME of the run (default: a new temporary folder)"
    )
    parser.add_argument(
        "--elpv",
        type=Path,
        help="where elpv is used: labels.csv of a folder in elpv-dataset's layout (default: the "
        "elpv-dataset package's; with --smoke, a tiny stand-in made here)",
    )


def temporary_folder(prefix: str) -> Path:
    """A new temporary folder, removed when the run exits (after its servers have stopped)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def home(args: argparse.Namespace, prefix: str) -> Path:
    """The run's IMGSEARCH_HOME (`--home`, or a new temporary folder, removed at exit), set in
    os.environ."""
    folder = args.home if args.home is not None else temporary_folder(prefix)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["IMGSEARCH_HOME"] = str(folder)
    return folder


def with_database(url: str, name: str) -> str:
    """`url` with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class Server:
    """A PostgreSQL server: `url`, the benchmark's database, and `admin_url`, one to create
    others from (`new_database`)."""

    url: str
    admin_url: str
    embedded_home: Path | None = None
    prefix: str = ""  # of the databases made here, when on a server of someone else's
    made: list[str] = field(default_factory=list)

    def new_database(self, name: str) -> str:
        """A new, empty database (dropped first if there is one of that name): its URL. On a
        server given by --database-url its name is made unique, and it is dropped at the end."""
        import psycopg

        name = f"{self.prefix}{name}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return with_database(self.admin_url, name)

    @property
    def embedded(self) -> bool:
        return self.embedded_home is not None


@contextlib.contextmanager
def database_server(args: argparse.Namespace, home_folder: Path) -> Iterator[Server]:
    """`--database-url`'s server (the databases made beside it dropped at the end), or an
    embedded server started in `home_folder` and stopped at the end."""
    if args.database_url:
        server = Server(args.database_url, args.database_url, prefix=f"bench_{uuid.uuid4().hex[:8]}_")
        try:
            yield server
        finally:
            import psycopg

            with psycopg.connect(server.admin_url, autocommit=True) as conn:
                for name in server.made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    from imgsearch.db import embedded

    # a run stopped with SIGTERM (kill, a timeout) stops its server too, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = embedded.start(home_folder)
    try:
        yield Server(started.url, started.admin_url, embedded_home=home_folder)
    finally:
        embedded.stop(home_folder)


def load_elpv(labels: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """elpv's cells (uint8 arrays), defect probabilities and module types: from the elpv-dataset
    package (pip install -e '.[bench]'), or from `labels`, a labels.csv in its layout (lines of
    `images/cellNNNN.png probability type`, paths relative to the file)."""
    if labels is None:
        from elpv_dataset.utils import load_dataset

        return load_dataset()
    from PIL import Image

    paths, probs, types = [], [], []
    for line in labels.read_text().splitlines():
        if line.strip():
            path, prob, kind = line.split()
            paths.append(path)
            probs.append(float(prob))
            types.append(kind)
    cells = []
    for path in paths:
        with Image.open(labels.parent / path) as img:
            cells.append(np.asarray(img))
    return np.array(cells), np.array(probs), np.array(types)


def elpv_labels(args: argparse.Namespace) -> Path | None:
    """The labels.csv of elpv as the arguments say: `--elpv`, with --smoke alone a stand-in made
    here, else None (the elpv-dataset package's 2,624 cells)."""
    if args.elpv is None and args.smoke:
        args.elpv = write_elpv_standin(Path(tempfile.mkdtemp(prefix="elpv-standin-")))
    return args.elpv


def elpv(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """elpv's cells, probabilities and types as the arguments say (`elpv_labels`)."""
    return load_elpv(elpv_labels(args))


def write_elpv_standin(folder: Path, cells: int = 40, size: int = 300, seed: int = 0) -> Path:
    """A tiny stand-in for elpv in its layout (`folder`/labels.csv and `folder`/images/*.png):
    grey cells with bus bars and random cracks, each of the 4 probabilities x 2 types in turn;
    returns labels.csv."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(cells):
        prob = (0.0, 1 / 3, 2 / 3, 1.0)[i % 4]
        kind = ("mono", "poly")[(i // 4) % 2]
        base = rng.normal(120 if kind == "mono" else 90, 12, (size, size)).clip(0, 255)
        img = Image.fromarray(base.astype(np.uint8), "L")
        draw = ImageDraw.Draw(img)
        for x in (size // 4, size // 2, 3 * size // 4):
            draw.line((x, 0, x, size), fill=200, width=3)
        for _ in range(int(prob * 6)):
            x0, y0 = rng.integers(0, size, 2)
            draw.line((int(x0), int(y0), int(x0 + rng.integers(-80, 80)), int(y0 + 60)), fill=20, width=2)
        name = f"images/cell{i:04d}.png"
        img.save(folder / name)
        lines.append(f"{name} {prob:.6f} {kind}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels
