"""Journeys through the real CLI (issue 33): every command `imgsearch --help` lists, and every
subcommand of every group, run as a person runs it (a process of its own, the default human output
and `--json` where the command has it; forked from a warm interpreter, support/cli.py, except
`serve` and `ingest --watch`, which are new interpreters stopped with Ctrl-C) on one small
collection of real photos, ingested once for the module.

`JOURNEYS` maps each command path to the command lines its journeys run;
`test_every_command_has_a_journey` walks the Typer app and fails when a command has none (so a
command added without a journey fails), and `test_every_journey_step_ran` fails when a line of
`JOURNEYS` was never run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from PIL import Image, ImageOps

from imgsearch.cli import app
from imgsearch.db.connection import Database
from imgsearch.db.migrations import head_revision

from ..support.cli import imgsearch as run_imgsearch
from ..support.photos import TRANSFORMS, sample_photos
from ..support.warm_python import Finished

pytestmark = pytest.mark.slow

TIMEOUT_S = 300  # one command; a busy 2-core machine runs each in seconds
LABELLED = ("astronaut", "chelsea", "coffee", "rocket")  # classes: a photo and its edited copies
EDITS = (*TRANSFORMS, "mirror")


@dataclass(frozen=True)
class Step:
    """One command line and what it must show.

    `line`'s words may hold placeholders filled from the collection ({photos}, {labelled},
    {out}, {n}, {id[photos/rocket.jpg]}, ...; see `Journey.fill`). `shows` must be in stdout
    (for `--json`: a key of the one JSON object; for a refusal: in its one sentence on stderr).
    `code` 2 is a documented refusal. `database`: "collection" (the module's), "scratch" (an
    empty migrated database of the test's own) or "none" (no database URL, a bare home)."""

    line: str
    shows: str
    code: int = 0
    database: str = "collection"


JOURNEYS: dict[str, list[Step]] = {
    "ingest": [
        Step("ingest {root}", "efficientnet-lite0: {n} new, 0 updated, 0 unchanged, 0 failed"),
        Step(
            "ingest {root} --workers 1 --batch-size 4",
            "1 indexed file under these folders is gone: `--prune` removes it",
        ),
        Step("ingest {root} --prune", "1 new, 0 updated, {n_less_1} unchanged, 0 failed"),
        Step("ingest {watched} --watch", "efficientnet-lite0: 0 new"),
    ],
    "search": [
        Step("search {photos}/chelsea.jpg -k 3", "{photos}/chelsea.jpg"),
        Step("search {photos}/chelsea.jpg -k 3 --json", "results"),
        Step("search id:{id[photos/rocket.jpg]} -k 2 --exact", "{labelled}/rocket/"),
        Step("search {photos}/coffee.jpg -k 4 --grid {out}/grid.png", "grid written to {out}/grid.png"),
        Step("search {photos}/chelsea.jpg -k 3 --model labelled-head", "{labelled}/chelsea/"),
    ],
    "prune": [Step("prune", "removed 1 image whose files are gone")],
    "clusters": [
        Step("clusters -n 3", "nearest its centre"),
        Step("clusters -n 3 --json", "clusters_found"),
        Step("clusters --auto", "k by silhouette"),
    ],
    "map": [
        Step("map --out {out}/map.png", "written to {out}/map.png"),
        Step("map --out {out}/map.html", "written to {out}/map.html"),
    ],
    "evaluate": [
        Step("evaluate {labelled} --k 1,5", "{n_labelled} labelled images in 4 classes"),
        Step("evaluate {labelled} --k 1,5 --json", "models"),
        Step("evaluate {labelled} --near-duplicates --k 1,5", "edited copies searched among"),
        Step("evaluate {labelled} -m efficientnet-lite0 -m labelled-head --k 1,5", "labelled-head"),
        Step("evaluate {labelled} --split 0.5 --epochs 3 --k 1,3", "scored on the 8 held out"),
    ],
    "train": [
        Step(
            "train {labelled} --epochs 5 --dim 32",
            "labelled-head: head of efficientnet-lite0, 32 dimensions, fitted on {n_labelled} images",
        ),
        Step("train --pca 8", "collection-pca8: pca of efficientnet-lite0, 8 dimensions"),
    ],
    "serve": [Step("serve --port {port}", "")],
    "db": [],  # a group: only its commands run
    "db status": [
        Step("db status", "revision:    {head} (head)"),
        Step("db status", "revision:    none (behind head {head}", database="scratch"),
    ],
    "db url": [Step("db url", "postgresql://")],
    "db upgrade": [
        Step("db upgrade", "schema at revision {head}", database="scratch"),
        Step("db upgrade", "schema at revision {head}"),
    ],
    "db downgrade": [Step("db downgrade base", "schema at revision base", database="scratch")],
    "db stop": [
        Step("db stop", "embedded server was not running", database="none"),
        Step("db stop", "IMGSEARCH_DATABASE_URL is set", code=2),
    ],
    "db partition": [
        Step("db partition --count 2", "rows in 2 hash partitions; rebuilt embeddings_hnsw"),
        Step("db partition --count 1", "rows in one table; rebuilt embeddings_hnsw"),
    ],
    "db drop-encoder": [Step("db drop-encoder collection-pca8", "dropped collection-pca8")],
    "index": [],
    "index status": [
        Step("index status", "no ANN indexes"),
        Step("index status", "m=16, ef_construction=64"),
    ],
    "index create": [
        Step("index create", "created index embeddings_hnsw"),
        Step("index create --kind ivfflat --recall 0", "created index embeddings_ivfflat"),
    ],
    "index tune": [Step("index tune --queries 10 -k 5", "efficientnet-lite0: searches use ef_search")],
    "index drop": [Step("index drop", "dropped embeddings_ivfflat")],
    "duplicates": [
        Step("duplicates", "groups (calibrated margin"),
        Step("duplicates --json", "groups"),
        Step("duplicates --explain", "rule: calibrated margin"),
        Step("duplicates --calibrate", "calibrated on {n} images"),
        Step("duplicates --decided", "your choice"),
    ],
    "duplicates decide": [
        Step(
            "duplicates decide {id[photos/motorcycle_left.jpg]} {id[photos/motorcycle_right.jpg]} "
            "--not-duplicates",
            "recorded not-duplicates for 1 pair",
        ),
        Step(
            "duplicates decide {id[photos/rocket.jpg]} {id[labelled/rocket/mirror.jpg]} "
            "--keep {id[photos/rocket.jpg]}",
            "recorded keep for 1 pair",
        ),
    ],
    "duplicates resolve": [Step("duplicates resolve", "removed 1 duplicate image from the index")],
    "models": [Step("models", "journey-clip", database="none")],  # efficientnet-lite0 too
    "models pull": [
        Step("models pull clip-vit-b-32", "Could not download", code=2, database="none"),
        Step("models pull journey-clip --from {checkpoint}", "journey-clip: checkpoint in", database="none"),
    ],
}

_RAN: set[tuple[str, int]] = set()  # (command path, step index) of every step run


def _is_group(command: Any) -> bool:
    """A group of commands (Typer may ship its own click: no isinstance of click.Group)."""
    return isinstance(getattr(command, "commands", None), dict)


def command_paths() -> dict[str, Any]:
    """Every command path of the Typer app: commands, groups and their commands, recursively."""
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            found[path] = command
            if _is_group(command):
                walk(command, path)

    root = typer.main.get_command(app)
    assert _is_group(root)
    walk(root, "")
    return found


def _one_sentence(text: str) -> bool:
    """One line that ends with a full stop and has no sentence break inside (quoted commands,
    file names and dotted names do not count)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return False
    plain = re.sub(r"`[^`]*`", "CMD", lines[0].strip())
    return plain.endswith(".") and re.search(r"[.!?]\s+[A-Z]", plain[:-1]) is None


@dataclass
class Journey:
    """The collection and how to run the real `imgsearch` on it."""

    root: Path
    out: Path
    bare_home: Path  # IMGSEARCH_HOME of the steps run with no database
    db: Database
    head: str

    @property
    def photos(self) -> Path:
        return self.root / "photos"

    @property
    def labelled(self) -> Path:
        return self.root / "labelled"

    def ids(self) -> dict[str, int]:
        """Image ids by path relative to the collection's root."""
        with psycopg.connect(self.db.url) as conn:
            found = conn.execute("SELECT id, path FROM imgsearch.images").fetchall()
        return {
            Path(path).relative_to(self.root).as_posix(): i
            for i, path in found
            if path.startswith(str(self.root))
        }

    @property
    def n_labelled(self) -> int:
        return len(LABELLED) * (1 + len(EDITS))

    @property
    def n(self) -> int:
        """How many images the collection holds."""
        return len(sample_photos()) + self.n_labelled

    def fill(self, text: str, **extra: object) -> str:
        n, n_labelled = self.n, self.n_labelled
        values: dict[str, object] = {
            "root": self.root,
            "photos": self.photos,
            "labelled": self.labelled,
            "out": self.out,
            "watched": self.out / "watched",
            "n": n,
            "n_less_1": n - 1,
            "n_labelled": n_labelled,
            "head": self.head,
            "checkpoint": self.out / "journey-clip",
            **extra,
        }
        if "{id[" in text:
            values["id"] = self.ids()
        return text.format(**values)

    def env(self, database: str, scratch: Database | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
        env |= {"IMGSEARCH_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}  # never the network
        if database == "none":
            return env | {"IMGSEARCH_HOME": str(self.bare_home)}
        url = self.db.url if database == "collection" else scratch.url if scratch else None
        assert url is not None, "a scratch step needs the test's own database"
        return env | {"IMGSEARCH_HOME": os.environ["IMGSEARCH_HOME"], "IMGSEARCH_DATABASE_URL": url}

    def argv(self, step: Step, **extra: object) -> list[str]:
        return [sys.executable, "-m", "imgsearch", *(self.fill(word, **extra) for word in step.line.split())]

    def walk(self, path: str, *indices: int, scratch: Database | None = None) -> list[Finished]:
        """Run JOURNEYS[path]'s steps (the given ones, else all) and check each: its exit code,
        no traceback nor unexpected error, and what it shows."""
        chosen = indices or tuple(range(len(JOURNEYS[path])))
        return [self.check(path, i, scratch) for i in chosen]

    def check(self, path: str, i: int, scratch: Database | None = None) -> Finished:
        step = JOURNEYS[path][i]
        result = run_imgsearch(*self.argv(step)[3:], env=self.env(step.database, scratch), timeout=TIMEOUT_S)
        _RAN.add((path, i))
        command = " ".join(result.args[3:])
        context = f"`imgsearch {command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        assert result.returncode == step.code, context
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr.lower(), context
        shows = self.fill(step.shows)
        if step.code != 0:
            assert _one_sentence(result.stderr), context
            assert shows in result.stderr, context
        elif "--json" in step.line.split():
            answer = json.loads(result.stdout)
            assert isinstance(answer, dict) and shows in answer, context
        else:
            assert result.stdout.strip() and shows in result.stdout, context
        return result


def _small(img: Image.Image) -> Image.Image:
    img = img.copy()
    img.thumbnail((320, 320))
    return img


def _write_collection(root: Path) -> None:
    """The sample photos, and a labelled folder: per class, a photo and its edited copies (so
    `duplicates` finds groups and `evaluate` / `train` have classes)."""
    photos = sample_photos()
    (root / "photos").mkdir(parents=True)
    for name, img in photos.items():
        _small(img).save(root / "photos" / f"{name}.jpg", quality=90)
    for name in LABELLED:
        folder = root / "labelled" / name
        folder.mkdir(parents=True)
        img = _small(photos[name])
        img.save(folder / "original.jpg", quality=90)
        for edit, transform in TRANSFORMS.items():
            transform(img).save(folder / f"{edit}.jpg", quality=90)
        ImageOps.mirror(img).save(folder / "mirror.jpg", quality=90)


@pytest.fixture(scope="module")
def journey(module_db, lite0, tmp_path_factory):
    """The collection, ingested once through the CLI (the first `ingest` step); `lite0` has
    exported the encoder into this session's model cache, which the commands then reuse."""
    root = tmp_path_factory.mktemp("journey-collection")
    out = tmp_path_factory.mktemp("journey-out")
    bare_home = Path(tempfile.mkdtemp(prefix="imgsearch-journey-home-"))
    _write_collection(root)
    walker = Journey(root, out, bare_home, module_db, head_revision(module_db))
    walker.walk("ingest", 0)
    yield walker
    shutil.rmtree(bare_home, ignore_errors=True)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """Steps that need no database: a bare home and an output folder, no collection."""
    out = tmp_path_factory.mktemp("journey-bare")
    bare_home = Path(tempfile.mkdtemp(prefix="imgsearch-journey-home-"))
    yield Journey(out, out, bare_home, Database("postgresql://unused/none"), "")
    shutil.rmtree(bare_home, ignore_errors=True)


# --- the map of journeys -------------------------------------------------------------------


def test_every_command_has_a_journey() -> None:
    commands = command_paths()
    assert set(JOURNEYS) == set(commands), (
        f"commands without a journey: {sorted(set(commands) - set(JOURNEYS))}; "
        f"journeys of no command: {sorted(set(JOURNEYS) - set(commands))}"
    )
    for path, command in commands.items():
        steps = JOURNEYS[path]
        runnable = not _is_group(command) or command.invoke_without_command
        assert bool(steps) == runnable, f"{path}: a command runs, a group's journeys are its commands'"
        for step in steps:
            words = step.line.split()
            assert words[: len(path.split())] == path.split(), f"{step.line!r} is not `{path}`"
            if _is_group(command):  # the group itself, not one of its commands
                assert len(words) == 1 or words[1].startswith("-"), step.line
        has_json = any("--json" in getattr(p, "opts", ()) for p in command.params)
        if has_json:
            assert any("--json" in s.line.split() for s in steps), f"{path} has --json: no step uses it"
            assert any("--json" not in s.line.split() for s in steps), f"{path}: no human output step"


# --- no collection -----------------------------------------------------------------------------


def test_models_list_and_pull(bare) -> None:
    """Pulling from the hub offline is refused in one sentence; a model of one's own installed
    `--from` a folder is listed with the others (one listing: each loads torch for the
    torchvision models' weight files)."""
    import open_clip
    import torch

    from ..support import tiny_clip

    bare.walk("models pull", 0)
    torch.manual_seed(0)  # an untrained tiny CLIP: installing reads its config, not its skill
    tiny_clip._write(open_clip.CLIP(**tiny_clip.MODEL_CFG), Path(bare.fill("{checkpoint}")))
    (installed,) = bare.walk("models pull", 1)
    folder = Path(installed.stdout.strip().rpartition(" checkpoint in ")[2])
    assert folder.is_relative_to(bare.bare_home) and (folder / "open_clip_config.json").is_file()
    (listed,) = bare.walk("models")
    assert "efficientnet-lite0" in listed.stdout and "clip-vit-b-32" in listed.stdout


def test_db_migrations_on_an_empty_database(bare, db) -> None:
    """Down to base and up to head again; `db stop` with no server of its own to stop."""
    bare.head = head_revision(db)
    bare.walk("db downgrade", scratch=db)
    bare.walk("db status", 1, scratch=db)
    bare.walk("db upgrade", 0, scratch=db)
    bare.walk("db stop", 0)


# --- on the collection ----------------------------------------------------------------------


def test_ingest_search_and_prune(journey) -> None:
    first = journey.walk("search", 0)[0]
    top = first.stdout.splitlines()[2]  # the header, its rule, then rank 1
    assert "chelsea" in top and "1.0000" in top, first.stdout
    (as_json,) = journey.walk("search", 1)
    results = json.loads(as_json.stdout)["results"]
    assert len(results) == 3 and results[0]["similarity"] > 0.99
    assert {Path(r["path"]).parent.name for r in results} <= {"photos", "chelsea"}
    journey.walk("search", 2, 3)
    grid = Path(journey.fill("{out}/grid.png"))
    assert Image.open(grid).format == "PNG"

    gone = journey.photos / "china.jpg"
    kept = journey.out / "china.jpg"
    gone.rename(kept)
    try:
        journey.walk("ingest", 1)
        journey.walk("prune")
    finally:
        kept.rename(gone)
    journey.walk("ingest", 2)


def test_clusters_and_map(journey) -> None:
    clusters, as_json, _ = journey.walk("clusters")
    assert "in 3 clusters" in clusters.stdout
    found = json.loads(as_json.stdout)["clusters_found"]
    assert len(found) == 3 and sum(c["size"] for c in found) == journey.n
    journey.walk("map")
    assert Image.open(journey.fill("{out}/map.png")).format == "PNG"
    page = Path(journey.fill("{out}/map.html")).read_text()
    assert page.startswith("<!doctype html>") and str(journey.photos / "chelsea.jpg") in page


def test_evaluate_train_and_drop_an_encoder(journey) -> None:
    table, as_json, _ = journey.walk("evaluate", 0, 1, 2)
    assert "P@1" in table.stdout and "efficientnet-lite0" in table.stdout
    (model,) = json.loads(as_json.stdout)["models"]
    assert model["model"] == "efficientnet-lite0"
    journey.walk("train")
    journey.walk("search", 4)
    journey.walk("evaluate", 3)
    (split,) = journey.walk("evaluate", 4)  # a small folder: PCA below its training images
    assert "PCA 11 whitened" in split.stdout
    journey.walk("db drop-encoder")


def test_index_and_partitions(journey) -> None:
    journey.walk("index status", 0)
    (created,) = journey.walk("index create", 0)
    assert "searches use ef_search" in created.stdout
    journey.walk("index status", 1)
    journey.walk("index tune")
    journey.walk("db partition", 0)  # the index is rebuilt on each partition
    journey.walk("search", 0)
    (one,) = journey.walk("db partition", 1)
    assert "on each" not in one.stdout
    journey.walk("index create", 1)
    journey.walk("index drop")
    assert "no ANN indexes" in journey.walk("index status", 0)[0].stdout


def test_database_commands_on_the_collection(journey) -> None:
    (status,) = journey.walk("db status", 0)
    assert "images" in status.stdout and "efficientnet-lite0" in status.stdout
    (url,) = journey.walk("db url")
    assert url.stdout.strip() == journey.db.url
    journey.walk("db stop", 1)
    journey.walk("db upgrade", 1)  # at head already: nothing to do, and it says so


def test_duplicates_decide_and_resolve(journey) -> None:
    listed, as_json, _, _ = journey.walk("duplicates", 0, 1, 2, 3)
    groups = json.loads(as_json.stdout)["groups"]
    assert len(groups) >= len(LABELLED)
    assert "keep" in listed.stdout and str(journey.photos / "rocket.jpg") in listed.stdout
    journey.walk("duplicates decide")
    journey.walk("duplicates", 4)  # the group with a keeper chosen, listed on demand
    journey.walk("duplicates resolve")
    after = json.loads(journey.walk("duplicates", 1)[0].stdout)["groups"]
    paths = {m["path"] for g in after for m in g["members"]}
    assert str(journey.labelled / "rocket" / "mirror.jpg") not in paths
    assert not {
        str(journey.photos / "motorcycle_left.jpg"),
        str(journey.photos / "motorcycle_right.jpg"),
    } <= {m["path"] for g in after for m in g["members"] if len(g["members"]) == 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read()


@contextlib.contextmanager
def _running(journey: Journey, path: str, i: int, **extra: object):
    """A long-running step in the background, yielding the process and its stderr so far;
    stopped with Ctrl-C (SIGINT) as a person stops it, then checked like any step."""
    step = JOURNEYS[path][i]
    process = subprocess.Popen(
        journey.argv(step, **extra),
        env=journey.env(step.database),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _RAN.add((path, i))
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(process.stdout or ()), daemon=True),
        threading.Thread(target=lambda: err.extend(process.stderr or ()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        yield process, err
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=10)
        stdout, stderr = "".join(out), "".join(err)
        context = f"`{step.line}` exited {process.returncode}:\n{stdout}\n{stderr}"
        assert process.returncode == step.code, context
        assert "Traceback" not in stderr and "unexpected" not in stderr.lower(), context
        assert journey.fill(step.shows, **extra) in stdout, context
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _within(seconds: float, what: str, probe) -> object:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.25)


def test_serve(journey) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with _running(journey, "serve", 0, port=port) as (process, err):

        def healthy() -> bool:
            assert process.poll() is None, "".join(err)
            with contextlib.suppress(OSError):
                return _get(f"{base}/health")[0] == 200
            return False

        _within(120, "serve answering /health", healthy)
        status, page = _get(f"{base}/")
        assert status == 200 and b"<title>imgsearch</title>" in page
        status, body = _get(f"{base}/api/stats")
        stats = json.loads(body)
        assert status == 200 and stats["model"] == "efficientnet-lite0"
        assert stats["images"] == len(journey.ids()) > 0


def test_ingest_watch(journey) -> None:
    watched = Path(journey.fill("{watched}"))
    watched.mkdir()
    query = journey.out / "turned.jpg"  # a picture the collection does not hold
    _small(sample_photos()["grace_hopper"]).rotate(90, expand=True).save(query, quality=90)
    added = watched / "turned.jpg"
    search = ["search", str(query), "-k", "1", "--json"]
    with _running(journey, "ingest", 3) as (process, err):
        _within(120, "the watcher starting", lambda: "watching" in "".join(err) or process.poll() is not None)
        assert process.poll() is None, "".join(err)
        copied = [0.0]

        def found() -> bool:
            if time.monotonic() - copied[0] > 5:  # (again, in case the watch began after a copy)
                shutil.copyfile(query, added)
                copied[0] = time.monotonic()
            answer = run_imgsearch(*search, env=journey.env("collection"), timeout=TIMEOUT_S)
            assert answer.returncode == 0, answer.stderr
            return json.loads(answer.stdout)["results"][0]["path"] == str(added)

        _within(60, "search finding the watched file", found)
    assert "watch: 1 changed: 1 new" in "".join(err) and "stopped watching" in "".join(err)


def test_every_journey_step_ran(request) -> None:
    """Every line of JOURNEYS ran (when the whole module did)."""
    module_tests = [item for item in request.session.items if item.module is request.module]
    if len(module_tests) != len([n for n in dir(request.module) if n.startswith("test_")]):
        pytest.skip("only part of the module ran")
    missing = [
        f"{path}: {step.line}"
        for path, steps in JOURNEYS.items()
        for i, step in enumerate(steps)
        if (path, i) not in _RAN
    ]
    assert not missing, f"journey steps never run: {missing}"
