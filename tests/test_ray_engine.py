"""`imgsearch ingest --engine ray` on a local Ray (2 CPUs): the same rows as the local engine,
incremental, one bad file costs only itself, and a killed job leaves no partial rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from imgsearch.db.connection import Database, connect
from imgsearch.db.schema import open_database
from imgsearch.ingest import IngestOptions, ingest

from .support import pg
from .support.photos import sample_photos

pytestmark = [
    pytest.mark.slow,  # a local Ray cluster: the full tier only
    # (found, not imported: importing Ray costs every test process's collection a second)
    pytest.mark.skipif(find_spec("ray") is None, reason="the Ray engine's extra is not installed"),
]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from imgsearch.ingest.ray_engine import start_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start_ray(None)  # the engine's quiet settings, on the running instance
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The sample photos as JPEGs, two resized variants each, and one corrupt file."""
    root = tmp_path_factory.mktemp("ray-photos")
    for name, img in sample_photos().items():
        img.save(root / f"{name}.jpg", quality=90)
        img.resize((img.width // 2, img.height // 2)).save(root / f"{name}-half.jpg", quality=85)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    return root


@pytest.fixture
def second_db(pg_admin_url):
    with pg.scratch_database(pg_admin_url) as url:
        yield open_database(url)


def _rows(db: Database) -> dict[str, tuple]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT i.path, i.sha256, i.byte_size, i.width, i.height, i.format, e.embedding"
            " FROM imgsearch.images i JOIN imgsearch.embeddings e ON e.image_id = i.id"
        ).fetchall()
    return {r[0]: (*r[1:6], r[6].to_numpy().astype(np.float32)) for r in rows}


def test_ray_rows_equal_local_rows_and_a_second_run_ingests_nothing(
    local_ray, photos, db, second_db, lite0
) -> None:
    report = ingest([photos], encoder=lite0, database=db, options=IngestOptions(engine="ray"))
    n = 2 * len(sample_photos())
    assert (report.new, report.failed, report.encoded) == (n, 1, n)
    assert report.failures[0].location.endswith("corrupt.jpg")
    local = ingest([photos], encoder=lite0, database=second_db)
    assert (local.new, local.failed) == (n, 1)
    by_ray, by_local = _rows(db), _rows(second_db)
    assert set(by_ray) == set(by_local) and len(by_ray) == n
    for path, (*meta, vector) in by_ray.items():
        assert meta == list(by_local[path][:5])
        assert float(vector @ by_local[path][5]) >= 0.9999 * np.linalg.norm(vector) ** 2
    with connect(db) as conn:
        errors = conn.execute("SELECT path, kind FROM imgsearch.ingest_errors").fetchall()
    assert [(Path(p).name, k) for p, k in errors] == [("corrupt.jpg", "corrupt")]
    assert [(f.kind, f.message) for f in report.failures] == [(f.kind, f.message) for f in local.failures]

    again = ingest([photos], encoder=lite0, database=db, options=IngestOptions(engine="ray"))
    assert (again.new, again.updated, again.encoded, again.unchanged) == (0, 0, 0, n)


def test_a_killed_ray_job_leaves_no_partial_rows_and_a_rerun_completes(
    local_ray, db, lite0, tmp_path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    # 110 photos: the job is killed once 4 are written (6-32 were in by then, with 66, 110 or 220)
    for i, img in enumerate(list(sample_photos().values()) * 10):
        img.rotate(7 * i, expand=True).resize((320, 240)).save(folder / f"{i:03d}.jpg")
    total = len(list(folder.iterdir()))
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url}
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgsearch",
            "ingest",
            str(folder),
            "--engine",
            "ray",
            "--address",
            local_ray,
            "--batch-size",
            "2",
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        written = 0
        while written < 4 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
            with connect(db) as conn:
                written = conn.execute("SELECT count(*) FROM imgsearch.images").fetchone()[0]
        assert job.poll() is None, "the job ended before it could be killed"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    with connect(db) as conn:
        images, without_vector = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM"
            " imgsearch.embeddings e WHERE e.image_id = i.id)) FROM imgsearch.images i"
        ).fetchone()
    assert 4 <= images < total and without_vector == 0
    rerun = ingest([folder], encoder=lite0, database=db, options=IngestOptions(engine="ray"))
    assert (rerun.new, rerun.unchanged, rerun.failed) == (total - images, images, 0)
    assert len(_rows(db)) == total


def test_ray_ingests_with_a_fine_tuned_encoder(local_ray, photos, db, second_db, tmp_path) -> None:
    """A fine-tuned encoder is no registered model: Ray workers build it from its weights."""
    from imgsearch.encoding.registry import finetuned_encoder
    from imgsearch.learning.finetune import FinetuneOptions, finetune

    paths = sorted(str(p) for p in photos.glob("*.jpg") if p.name != "corrupt.jpg")
    labels = [Path(p).stem.split("-")[0] for p in paths]
    options = FinetuneOptions(epochs=1, first_block=15, size=96, batch=8)
    weights = tmp_path / "tuned.pt"
    weights.write_bytes(finetune(paths, labels, options).weights)
    tuned = finetuned_encoder("tuned", weights, 96, "cpu", "onnx")
    report = ingest([photos], encoder=tuned, database=db, options=IngestOptions(engine="ray"))
    assert (report.new, report.failed) == (len(paths), 1)
    local = ingest([photos], encoder=tuned, database=second_db)
    assert local.new == len(paths)
    by_ray, by_local = _rows(db), _rows(second_db)
    for path, (*_, vector) in by_ray.items():
        assert float(vector @ by_local[path][5]) >= 0.9999 * np.linalg.norm(vector) ** 2
