"""Clusters: K-Means runs on real photos and their copies, stored, over the CLI and HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import ImageOps

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support import pg
from .support.cli import imgsearch as run_imgsearch
from .support.hostile import rows
from .support.photos import center_crop, halved, jpeg_recompressed, sample_photos

CLASSES = ["astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "china"]
EDITS = [halved, lambda img: jpeg_recompressed(img, 50), ImageOps.mirror, lambda img: center_crop(img, 0.85)]


@pytest.fixture(scope="module")
def ingested(pg_admin_url, migrated_template, lite0, tmp_path_factory):
    """The photos and their copies, written and ingested once: the database each test copies."""
    folder = tmp_path_factory.mktemp("cluster-photos")
    for name in CLASSES:
        img = sample_photos()[name]
        img.save(folder / f"{name}.jpg", quality=92)
        for i, edit in enumerate(EDITS):
            edit(img).save(folder / f"{name}.{i}.png")
    with pg.ingested_template(pg_admin_url, migrated_template, lite0, folder) as name:
        yield name


@pytest.fixture
def db(pg_admin_url, ingested):
    """This module's `db`: a copy of the ingested one (CREATE DATABASE ... TEMPLATE)."""
    with pg.database_copy(pg_admin_url, ingested) as db:
        yield db


@pytest.fixture
def index(db, lite0):
    index = Index(db.url, device="cpu", encoders=[lite0])
    yield index
    index.close()


def _label(path: str) -> str:
    return Path(path).name.split(".")[0]


def test_clusters_follow_the_photos(index, db) -> None:
    result = index.clusters(len(CLASSES))
    assert result.clusters == len(CLASSES) and result.images == len(CLASSES) * (1 + len(EDITS))
    assert sum(c.size for c in result.clusters_found) == result.images
    assigned = rows(
        db,
        """SELECT i.path, a.cluster FROM imgsearch.cluster_assignments a
                           JOIN imgsearch.images i ON i.id = a.image_id
                           WHERE a.clustering_id = %s""",
        (result.id,),
    )
    truth = [_label(path) for path, _ in assigned]
    found = [cluster for _, cluster in assigned]
    from sklearn.metrics import adjusted_rand_score

    ari = adjusted_rand_score(truth, found)
    chance = adjusted_rand_score(truth, np.random.default_rng(0).permutation(found))
    assert ari >= 0.9 > 0.2 > chance
    for cluster in result.clusters_found:  # the images nearest a centre, nearest first
        distances = [m.distance for m in cluster.nearest]
        assert distances == sorted(distances)


def test_auto_and_the_latest_run(index) -> None:
    result = index.clusters(None)
    assert 2 <= result.clusters <= 25 and result.method.startswith("kmeans, k by silhouette")
    assert index.latest_clusters().id == result.id
    first = result.clusters_found[0]
    members = index.cluster_members(first.cluster)
    assert len(members) == first.size


@pytest.mark.slow
def test_cli_and_api(index, db) -> None:
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    run = run_imgsearch("clusters", "-n", "3", "--json", env=env)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["clusters"] == 3 and len(data["clusters_found"]) == 3
    assert run_imgsearch("clusters", env=env).returncode == 2
    with TestClient(create_app(index, api_token="t")) as client:
        latest = client.get("/api/clusters").json()
        assert latest["id"] == data["id"]
        cluster = latest["clusters_found"][0]["cluster"]
        images = client.get(f"/api/clusters/{cluster}/images").json()["images"]
        assert images and images[0]["thumb_url"].endswith("/thumb")
        assert client.post("/api/clusters", json={"n": 2}).status_code == 401
        again = client.post("/api/clusters", json={"n": 2}, headers={"Authorization": "Bearer t"})
        assert again.status_code == 200 and again.json()["clusters"] == 2
