"""End to end on the real database with the real efficientnet-lite0 weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from imgsearch.db.connection import Database
from imgsearch.db.nearest import NoVectors
from imgsearch.db.prune import prune
from imgsearch.ingest import IngestOptions, ingest
from imgsearch.search import search

from .support.cli import imgsearch as run_imgsearch
from .support.photos import TRANSFORMS, decompression_bomb, sample_photos
from .support.warm_python import Finished

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Real photos plus transformed copies of each (in a sub-folder)."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "copies").mkdir()
    for name, img in sample_photos().items():
        img.save(folder / f"{name}.jpg", quality=92)
        for tname, transform in TRANSFORMS.items():
            transform(img).save(folder / "copies" / f"{name}.{tname}.png")
    return folder


def _count(db: Database, table: str) -> int:
    with psycopg.connect(db.url) as conn:
        return conn.execute(f"SELECT count(*) FROM imgsearch.{table}").fetchone()[0]


def _cli(db: Database, *args: str, check: bool = True) -> Finished:
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    result = run_imgsearch(*args, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_copies_find_their_originals_and_reingest_is_incremental(db, lite0, photo_dir) -> None:
    n_photos = len(sample_photos())
    report = ingest([photo_dir], encoder=lite0, database=db, options=IngestOptions(batch_size=8))
    total = n_photos * (1 + len(TRANSFORMS))
    assert (report.new, report.failed, report.encoded) == (total, 0, total)
    assert _count(db, "embeddings") == total

    # A query by file (not indexed itself) finds the photo it was made from first.
    query = sample_photos()["grace_hopper"].resize((300, 380))
    query.save(photo_dir.parent / "query.jpg", quality=60)
    best = search(str(photo_dir.parent / "query.jpg"), 1, encoder=lite0, database=db).results[0]
    assert Path(best.path).name.startswith("grace_hopper")

    again = ingest([photo_dir], encoder=lite0, database=db)
    assert (again.new, again.updated, again.unchanged, again.encoded) == (0, 0, total, 0)

    # Changed content: that file alone is re-encoded.
    changed = photo_dir / "coffee.jpg"
    sample_photos()["coffee"].rotate(90, expand=True).save(changed, quality=90)
    third = ingest([photo_dir], encoder=lite0, database=db)
    assert (third.updated, third.unchanged, third.encoded) == (1, total - 1, 1)

    # Only the mtime changed: the sha256 confirms the content, nothing is encoded.
    os.utime(photo_dir / "rocket.jpg", (time.time() + 5, time.time() + 5))
    fourth = ingest([photo_dir], encoder=lite0, database=db)
    assert (fourth.updated, fourth.unchanged, fourth.encoded) == (0, total, 0)


def test_each_copy_has_its_original_in_top3(db, lite0, photo_dir) -> None:
    ingest([photo_dir], encoder=lite0, database=db)
    for copy in sorted((photo_dir / "copies").iterdir()):
        with psycopg.connect(db.url) as conn:
            copy_id = conn.execute(
                "SELECT id FROM imgsearch.images WHERE path = %s", (str(copy),)
            ).fetchone()[0]
        original = str(photo_dir / (copy.name.split(".")[0] + ".jpg"))
        top3 = [m.path for m in search(f"id:{copy_id}", 3, database=db).results]
        assert original in top3, (copy.name, top3)


def test_identical_content_at_two_paths_is_encoded_once(db, lite0, tmp_path) -> None:
    sample_photos()["chelsea"].save(tmp_path / "a.jpg", quality=90)
    (tmp_path / "b.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert (report.new, report.encoded) == (2, 1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert (report.new, report.unchanged, report.encoded) == (1, 2, 0)


@pytest.mark.slow
def test_cli_json_shape_manifest_metadata_and_grid(db, photo_dir, tmp_path) -> None:
    manifest = tmp_path / "artworks.csv"
    manifest.write_text(
        "path,title,artist\n"
        f"{photo_dir / 'astronaut.jpg'},Portrait of an astronaut,NASA\n"
        f"{photo_dir / 'chelsea.jpg'},Chelsea the cat,\n"
    )
    _cli(db, "ingest", "--manifest", str(manifest))
    result = _cli(db, "search", str(photo_dir / "copies" / "chelsea.half.png"), "--json", "-k", "2")
    payload = json.loads(result.stdout)
    assert set(payload) == {"query", "model", "results"}
    assert payload["model"] == "efficientnet-lite0"
    best = payload["results"][0]
    assert set(best) == {
        "rank",
        "image_id",
        "path",
        "similarity",
        "distance",
        "metadata",
        "width",
        "height",
        "mtime",
    }
    assert best["rank"] == 1 and best["path"].endswith("chelsea.jpg")
    assert best["metadata"] == {"title": "Chelsea the cat"}
    assert abs(best["similarity"] - (1 - best["distance"])) < 1e-9
    assert payload["results"][0]["similarity"] >= payload["results"][1]["similarity"]

    table = _cli(
        db, "search", f"id:{best['image_id']}", "-k", "1", "--grid", str(tmp_path / "grid.png")
    ).stdout
    assert "Portrait of an astronaut" in table
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width > 2 * 224

    none = _cli(db, "search", f"id:{best['image_id']}", "--min-similarity", "0.99").stdout
    assert "no close match" in none


def test_search_before_ingest_says_what_to_run(db, lite0, photo_dir) -> None:
    with pytest.raises(NoVectors, match="imgsearch ingest"):
        search(str(photo_dir / "coffee.jpg"), encoder=lite0, database=db)


def test_prune_removes_vanished_files(db, lite0, tmp_path) -> None:
    for name in ("astronaut", "rocket", "coffee"):
        sample_photos()[name].save(tmp_path / f"{name}.jpg")
    ingest([tmp_path], encoder=lite0, database=db)
    (tmp_path / "rocket.jpg").unlink()
    assert prune(db) == 1
    assert (_count(db, "images"), _count(db, "embeddings")) == (2, 2)


@pytest.fixture
def mixed_dir(tmp_path) -> Path:
    for name in ("astronaut", "coffee", "rocket"):
        sample_photos()[name].save(tmp_path / f"{name}.jpg", quality=90)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image at all")
    good = (tmp_path / "coffee.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "bomb.png").write_bytes(decompression_bomb())
    (tmp_path / ".hidden").mkdir()
    sample_photos()["chelsea"].save(tmp_path / ".hidden" / "skipped.jpg")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    return tmp_path


@pytest.mark.slow
def test_bad_files_are_reported_and_the_rest_ingested(db, mixed_dir) -> None:
    result = _cli(db, "ingest", str(mixed_dir), "--follow-symlinks", "--batch-size", "2")
    assert "3 new, 0 updated, 0 unchanged, 5 failed" in result.stdout
    for bad in ("empty.jpg", "notes.jpg", "truncated.jpg", "bomb.png", "loop"):
        assert bad in result.stdout
    assert _count(db, "images") == 3 and _count(db, "embeddings") == 3
    with psycopg.connect(db.url) as conn:
        kinds = dict(
            conn.execute(
                "SELECT regexp_replace(path, '.*/', ''), kind FROM imgsearch.ingest_errors"
            ).fetchall()
        )
    assert kinds == {
        "empty.jpg": "empty",
        "notes.jpg": "not_an_image",
        "truncated.jpg": "corrupt",
        "bomb.png": "too_large",
        "loop": "symlink_loop",
    }


@pytest.mark.slow
def test_exit_code_1_when_nothing_could_be_ingested(db, tmp_path) -> None:
    (tmp_path / "a.jpg").write_text("text")
    result = _cli(db, "ingest", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "1 failed" in result.stdout


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory) -> Path:
    """96 distinct photos of 320x240: the CLI encodes one in some tens of milliseconds, so the
    88 or so left when a test interrupts the run after its second batch take seconds (larger
    photos took longer to make and to decode, and added nothing). Only read, never changed."""
    folder = tmp_path_factory.mktemp("many")
    photos = list(sample_photos().values())
    for i in range(96):
        img = photos[i % len(photos)]
        img.resize((320, 240)).rotate(i * 7 % 360).save(folder / f"img{i:03d}.png", compress_level=1)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_ingest_keeps_whole_batches_and_resumes(db, lite0, many_photos: Path, sig) -> None:
    # (`lite0`: the encoder is exported into the session's model cache before the command runs)
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "ingest", str(many_photos), "--batch-size", "4"]
        + ["--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _count(db, "embeddings") < 8 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, out + err
        assert "interrupted" in out
    images, vectors = _count(db, "images"), _count(db, "embeddings")
    assert images == vectors  # no image row without its vector
    assert images < 96  # the signal landed mid-run
    rerun = _cli(db, "ingest", str(many_photos), "--batch-size", "4")
    assert f"{96 - images} new" in rerun.stdout and f"{images} unchanged" in rerun.stdout
    assert _count(db, "images") == _count(db, "embeddings") == 96
