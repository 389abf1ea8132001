"""`imgsearch evaluate`: leave-one-out aggregation, labelled folders and CSVs, the index check,
near-duplicate copy detection, the CLI's table and JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from imgsearch.cli.evaluation_tables import evaluation_table
from imgsearch.db.connection import Database
from imgsearch.db.indexes import create_index
from imgsearch.encoding.edited_copies import TRANSFORMS, make_copy
from imgsearch.errors import ImgsearchError
from imgsearch.evaluation.evaluate import EvaluationOptions, evaluate, leave_one_out
from imgsearch.evaluation.near_duplicates import CopyDetectionOptions, near_duplicates
from imgsearch.ingest.labelled import from_csv

from .support.cli import imgsearch as run_imgsearch
from .support.photos import TRANSFORMS as PHOTO_EDITS
from .support.photos import sample_photos


def _angles(*degrees: float) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_leave_one_out_by_hand() -> None:
    # a1 at 0 deg, b1 at 10, a2 at 20, b2 at 90: every nearest neighbour is of the other class
    #   a1 ranks b1 a2 b2 -> AP 1/2; b1 ranks (a1 a2 tied) b2 -> AP 1/3
    #   a2 ranks b1 a1 b2 -> AP 1/2; b2 ranks a2 b1 a1 -> AP 1/2
    scores = leave_one_out(_angles(0, 10, 20, 90), ["a", "b", "a", "b"], ks=[1, 2])
    assert scores.queries == 4 and scores.without_relevant == 0
    assert scores.precision[1] == 0.0
    assert scores.recall[2] == pytest.approx(0.75)
    assert scores.precision[2] == pytest.approx(0.375)
    assert scores.map == pytest.approx((0.5 + 1 / 3 + 0.5 + 0.5) / 4)
    assert scores.mrr == pytest.approx(scores.map)  # one relevant item per query
    assert scores.chance_precision == pytest.approx(1 / 3)


def test_leave_one_out_leaves_out_classes_of_one() -> None:
    scores = leave_one_out(_angles(0, 5, 60, 65, 30), ["a", "a", "b", "b", "c"], ks=[1])
    assert scores.queries == 4 and scores.without_relevant == 1
    assert scores.precision[1] == 1.0 and scores.map == 1.0


def _save(img, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95)


@pytest.fixture(scope="module")
def labelled_dir(tmp_path_factory) -> Path:
    """Three classes of one photo and its edits, a class of one, a corrupt file, a stray image."""
    root = tmp_path_factory.mktemp("labelled")
    photos = sample_photos()
    for name in ("chelsea", "astronaut", "coffee"):
        _save(photos[name], root / name / "original.jpg")
        for edit, fn in PHOTO_EDITS.items():
            _save(fn(photos[name]), root / name / f"{edit}.jpg")
    _save(photos["rocket"], root / "rocket" / "only.jpg")
    (root / "coffee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _save(photos["grace_hopper"], root / "stray.jpg")
    return root


def test_evaluate_a_labelled_folder_then_with_an_index(db: Database, lite0, labelled_dir) -> None:
    result = evaluate(labelled_dir, EvaluationOptions(ks=[1, 3]), encoders=[lite0], database=db)
    assert result.classes == {"astronaut": 4, "chelsea": 4, "coffee": 5, "rocket": 1}
    assert result.unlabelled == 1 and result.missing == 0
    (m,) = result.models
    assert m.images == 13 and m.not_ingested == 1  # the broken file
    assert m.scores.queries == 12 and m.scores.without_relevant == 1  # rocket has no sibling
    assert m.scores.precision[1] == 1.0  # each edit finds another picture of its photo first
    assert m.scores.recall[3] == 1.0
    assert m.scores.chance_precision == pytest.approx(3 / 12)
    assert m.index is None
    table = evaluation_table(result)
    assert "P@1" in table and "chance" in table and "no ANN index" in table

    create_index(db, lite0.name)
    again = evaluate(labelled_dir, EvaluationOptions(ks=[1, 3]), encoders=[lite0], database=db)
    (m2,) = again.models
    assert m2.scores == m.scores  # quality is ranked exactly either way
    assert m2.index is not None and m2.index.kind == "hnsw" and m2.index.queries == 13
    assert m2.index.recall[3] == pytest.approx(1.0)
    assert "index R@3" in evaluation_table(again)
    skipped = evaluate(labelled_dir, EvaluationOptions(ks=[1], exact=True), encoders=[lite0], database=db)
    assert skipped.models[0].index is None


def test_several_models_make_one_comparison_table(db: Database, lite0, labelled_dir) -> None:
    from imgsearch.encoding.torch_models import build_torchvision

    untrained = build_torchvision("resnet18", device="cpu", random_init_seed=0)
    result = evaluate(labelled_dir, EvaluationOptions(ks=[1, 5]), encoders=[lite0, untrained], database=db)
    assert [m.model for m in result.models] == ["efficientnet-lite0", "resnet18"]
    assert all(m.images == 13 for m in result.models)
    rows = [
        line
        for line in evaluation_table(result).splitlines()
        if line.startswith(("efficientnet-lite0 ", "resnet18 "))
    ]
    assert len(rows) == 2
    # ImageNet features tell the photos apart better than random ones
    assert result.models[0].scores.map >= result.models[1].scores.map


def test_labels_from_a_csv(db: Database, lite0, labelled_dir, tmp_path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "path,label\nchelsea/original.jpg,cat\nchelsea/half.jpg,cat\n"
        "astronaut/original.jpg,person\nastronaut/crop80.jpg,person\n"
        "gone/missing.jpg,cat\n"
    )
    result = evaluate(
        labelled_dir, EvaluationOptions(ks=[1], labels_csv=csv_path), encoders=[lite0], database=db
    )
    assert result.classes == {"cat": 2, "person": 2} and result.missing == 1
    assert result.models[0].scores.precision[1] == 1.0

    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.jpg,x\n")
    with pytest.raises(ImgsearchError, match="path.*label"):
        from_csv(bad, labelled_dir)


def test_too_few_images_is_a_clear_error(db: Database, lite0, tmp_path) -> None:
    with pytest.raises(ImgsearchError, match="fewer than two"):
        evaluate(tmp_path, encoders=[lite0], database=db)
    with pytest.raises(ImgsearchError, match="not a folder"):
        evaluate(tmp_path / "nowhere", encoders=[lite0], database=db)


def test_every_copy_is_a_decodable_edit() -> None:
    from imgsearch.encoding.decode import decode_image

    photo = sample_photos()["chelsea"]
    for name in TRANSFORMS:
        copy = decode_image(make_copy(photo, name)).image
        assert copy.mode == "RGB"
        if name == "resize":
            assert copy.width == photo.width // 4
        if name == "grayscale":
            r, g, b = (np.asarray(c, dtype=int) for c in copy.split())
            assert np.abs(r - g).max() <= 8 and np.abs(g - b).max() <= 8  # JPEG chroma noise


def test_near_duplicates_find_their_originals(db: Database, lite0, tmp_path) -> None:
    photos = sample_photos()
    for name, img in photos.items():
        _save(img, tmp_path / f"{name}.jpg")
    result = near_duplicates(tmp_path, CopyDetectionOptions(ks=[1, 5]), encoders=[lite0], database=db)
    (m,) = result.models
    assert m.originals == len(photos) and m.copies == len(photos) * len(TRANSFORMS)
    assert set(m.recall) == set(TRANSFORMS)
    assert m.overall[1] >= 0.9
    assert m.recall["flip"][1] == 1.0 and m.recall["jpeg"][1] == 1.0
    with pytest.raises(ImgsearchError, match="Unknown transform"):
        near_duplicates(tmp_path, CopyDetectionOptions(transforms=["blur"]), encoders=[lite0], database=db)


@pytest.mark.slow
def test_cli_json_and_table(db: Database, labelled_dir) -> None:
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    run = run_imgsearch("evaluate", labelled_dir, "--k", "1,5", "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["ks"] == [1, 5]
    assert data["models"][0]["model"] == "efficientnet-lite0"
    assert data["models"][0]["scores"]["precision"]["1"] == 1.0
    copies = run_imgsearch("evaluate", labelled_dir, "--near-duplicates", "--k", "1,5", env=env, timeout=600)
    assert copies.returncode == 0, copies.stderr
    assert "among the 14 originals" in copies.stdout  # 15 files, one of them broken
    assert all(t in copies.stdout for t in TRANSFORMS)
    bad = run_imgsearch("evaluate", labelled_dir, "--k", "x", env=env, timeout=600)
    assert bad.returncode == 2 and "comma-separated" in bad.stderr
