"""Duplicate groups on real photos and their edited copies; decisions that last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ImageOps

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .hostile import rows
from .photos import center_crop, halved, jpeg_recompressed, sample_photos

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "china", "flower"]
EDITS = {
    "half": halved,
    "jpeg60": lambda img: jpeg_recompressed(img, 60),
    "mirror": ImageOps.mirror,
    "crop90": lambda img: center_crop(img, 0.9),
}


@pytest.fixture
def index(db, lite0, tmp_path):
    for name in PHOTOS:
        img = sample_photos()[name]
        img.save(tmp_path / f"{name}.jpg", quality=92)
        if name in ("astronaut", "chelsea", "coffee"):
            for edit, make in EDITS.items():
                make(img).save(tmp_path / f"{name}.{edit}.png")
    index = Index(db.url, device="cpu", encoders=[lite0])
    index.ingest([tmp_path])
    index.folder = tmp_path
    yield index
    index.close()


def _names(group) -> set[str]:
    return {Path(m.path).name.split(".")[0] for m in group.members}


def test_copies_group_with_their_originals(index) -> None:
    groups = index.duplicates().groups
    assert len(groups) == 3
    for group in groups:
        assert len(group.members) == 1 + len(EDITS)
        assert len(_names(group)) == 1  # one photo and its copies, nothing unrelated
        kept = next(m for m in group.members if m.id == group.keep)
        assert Path(kept.path).suffix == ".jpg"  # the original, not a copy
        assert group.reasons  # and why
        assert group.members[0].id == group.keep and kept.similarity == pytest.approx(1, abs=1e-3)
    grouped = set().union(*(_names(g) for g in groups))
    assert grouped == {"astronaut", "chelsea", "coffee"}


def test_not_duplicates_survives_a_second_run_and_a_reingest(index, db) -> None:
    group = index.duplicates().groups[0]
    index.decide([m.id for m in group.members], "not-duplicates")
    assert group.id not in {g.id for g in index.duplicates().groups}
    assert index.duplicates().total == 2
    rows_before = rows(db, "SELECT count(*) FROM imgsearch.duplicate_decisions")
    with index.reading() as conn:
        conn.execute("DELETE FROM imgsearch.images")
        conn.commit()
    index.ingest([index.folder])  # every image comes back with a new id
    assert index.duplicates().total == 2
    assert rows(db, "SELECT count(*) FROM imgsearch.duplicate_decisions") == rows_before


def test_keep_then_resolve_forgets_the_others(index, db) -> None:
    group = index.duplicates().groups[0]
    index.decide([m.id for m in group.members], "keep", keep=group.keep)
    removed = index.resolve_duplicates()
    assert removed == len(group.members) - 1
    assert index.image(group.keep) is not None
    assert all(index.image(m.id) is None for m in group.members if m.id != group.keep)
    assert index.duplicates().total == 2
    for file in (m.path for m in group.members):
        assert os.path.exists(file)  # the files themselves are untouched


@pytest.mark.slow
def test_cli_json_shape_and_api(index, db) -> None:
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    run = subprocess.run(
        [sys.executable, "-m", "imgsearch", "duplicates", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    group = data["groups"][0]
    assert set(group) == {"id", "keep", "reasons", "members"}
    assert set(group["members"][0]) == {
        "id",
        "path",
        "byte_size",
        "width",
        "height",
        "mtime",
        "sha256",
        "similarity",
    }
    with TestClient(create_app(index, api_token="t")) as client:
        page = client.get("/api/duplicates", params={"limit": 2}).json()
        assert page["total"] == 3 and len(page["groups"]) == 2 and page["next_offset"] == 2
        ids = [m["id"] for m in page["groups"][0]["members"]]
        body = {"decision": "not-duplicates", "image_ids": ids}
        url = f"/api/duplicates/{page['groups'][0]['id']}/decision"
        assert client.post(url, json=body).status_code == 401
        done = client.post(url, json=body, headers={"Authorization": "Bearer t"})
        assert done.status_code == 200, done.text
        assert client.get("/api/duplicates").json()["total"] == 2
