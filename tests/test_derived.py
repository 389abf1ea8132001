"""Derived encoders (`imgsearch train`): registered in the database, filled from stored base
vectors, kept up to date by ingest, searched like any encoder, and protected from losing
their base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from imgsearch.cli import app
from imgsearch.db import store
from imgsearch.db.connection import connect
from imgsearch.db.nearest import QueryOptions
from imgsearch.encoding.projection import as_stored
from imgsearch.errors import ImgsearchError
from imgsearch.evaluation.split import Collected, SplitOptions, split_evaluate, split_near_duplicates
from imgsearch.learning.derive import labelled_vectors, unlabelled_vectors
from imgsearch.learning.train import TrainOptions
from imgsearch.library import Index

from .support import pg
from .support.photos import EDITS, PHOTO_NAMES, sample_photos

OPTIONS = TrainOptions(dim=32, hidden=128, epochs=30, lr=1e-3, seed=0)
N = 10 * len(PHOTO_NAMES)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Every sample photo x 10 edits, one sub-folder per photo."""
    root = tmp_path_factory.mktemp("labelled")
    for name, img in sample_photos().items():
        (root / name).mkdir()
        small = img.resize((256, int(256 * img.height / img.width)))
        for i, edit in enumerate(EDITS):
            edit(small).convert("RGB").save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def ingested_labelled(pg_admin_url, migrated_template, lite0, labelled):
    """`labelled` ingested once for the module: a template database."""
    with pg.ingested_template(pg_admin_url, migrated_template, lite0, labelled) as name:
        yield name


@pytest.fixture
def db(request, pg_admin_url, migrated_template):
    """This module's `db`: a copy of `ingested_labelled` for a test that asks for it, else an
    empty one (whose first `train` ingests the folder itself)."""
    template = migrated_template
    if "ingested_labelled" in request.fixturenames:
        template = request.getfixturevalue("ingested_labelled")
    with pg.database_copy(pg_admin_url, template) as db:
        yield db


@pytest.fixture
def index(db, lite0):
    index = Index(db.url, device="cpu", encoders=[lite0])
    yield index
    index.close()


def _vectors(db, encoder) -> dict[int, np.ndarray]:
    with connect(db) as conn:
        enc_id = store.find_encoder_id(conn, encoder.identity)
        rows = conn.execute(
            "SELECT image_id, embedding FROM imgsearch.embeddings WHERE encoder_id = %s", (enc_id,)
        ).fetchall()
    return {image_id: v.to_numpy().astype(np.float32) for image_id, v in rows}


def test_a_trained_encoder_is_registered_filled_searched_and_kept_up_to_date(
    index, db, labelled, tmp_path
) -> None:
    report = index.train("photos-head", labelled, options=OPTIONS)
    assert (report.kind, report.dimension, report.images, report.classes) == ("head", 32, N, N // 10)
    assert report.filled == N
    head = index.encoder("photos-head")
    base, derived = _vectors(db, index.encoder()), _vectors(db, head)
    assert set(base) == set(derived)
    ids = sorted(base)
    expected = head.projection.apply(np.stack([base[i] for i in ids]))
    # stored derived vectors = head(stored base vectors), to float16 precision
    np.testing.assert_allclose(np.stack([derived[i] for i in ids]), as_stored(expected), atol=1e-3)

    # searched like any encoder, by the library and by the SQL contract
    query = str(labelled / "astronaut" / "0.jpg")
    result = index.search(query, k=5, model="photos-head")
    assert [Path(r.path).parent.name for r in result.results] == ["astronaut"] * 5
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT path FROM imgsearch.similar_to_image(%s, 3, 'photos-head')", (result.results[0].image_id,)
        ).fetchall()
    assert len(rows) == 3

    # a new image ingested with the base (or with the derived name) gets both vectors
    new = tmp_path / "new"
    new.mkdir()
    sample_photos()["chelsea"].rotate(90).save(new / "a.jpg")
    sample_photos()["coffee"].rotate(90).save(new / "b.jpg")
    index.ingest([new / "a.jpg"])
    assert index.ingest([new / "b.jpg"], model="photos-head").new == 1
    base, derived = _vectors(db, index.encoder()), _vectors(db, head)
    assert len(base) == len(derived) == N + 2
    for image_id in set(derived) - set(ids):
        np.testing.assert_allclose(
            derived[image_id], as_stored(head.projection.apply(base[image_id][None]))[0], atol=1e-3
        )
    # a fresh index (another process) finds the trained encoder by name
    with Index(db.url, device="cpu", encoders=[index.encoder()]) as other:
        assert other.encoder("photos-head").identity == head.identity


def test_the_base_cannot_be_dropped_while_a_derived_encoder_needs_it(
    index, db, labelled, ingested_labelled
) -> None:
    index.train("photos-pca", labelled, pca=8)
    with pytest.raises(ImgsearchError, match="photos-pca.*--cascade"):
        index.database.drop_encoder(index.model)
    with connect(db) as conn, pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("DELETE FROM imgsearch.encoders WHERE name = %s", (index.model,))
    assert len(_vectors(db, index.encoder())) == N  # nothing lost
    assert index.database.drop_encoder(index.model, cascade=True) == ["photos-pca", index.model]
    with connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM imgsearch.embeddings").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM imgsearch.images").fetchone()[0] == N


def test_pca_on_the_whole_collection_reports_storage(index, labelled, ingested_labelled) -> None:
    index.ingest([labelled])
    report = index.train("collection-pca", pca=16, whiten=True)
    assert (report.kind, report.dimension, report.filled) == ("pca-whitened", 16, N)
    assert report.bytes_per_vector == 32 and report.base_bytes_per_vector == 2560
    hits = index.search(str(labelled / "coffee" / "3.jpg"), k=1, model="collection-pca").results
    assert Path(hits[0].path).name == "3.jpg"


def test_held_out_split_scores_the_head_above_the_base(index, db, labelled, ingested_labelled) -> None:
    split = SplitOptions(seed=0, ks=(1, 4), train=OPTIONS, pca=(8,))
    paths, vectors, labels = labelled_vectors(labelled, index.encoder(), db)
    data = Collected(str(labelled), paths, vectors, labels)
    result = split_evaluate(data, split, encoder=index.encoder())
    assert (result.train_images, result.test_images) == (N // 2, N // 2)
    rows = {r.encoder: r for r in result.rows}
    base, head = rows[index.model].scores["P@4"], rows["head (supcon)"].scores["P@4"]
    print(f"held-out P@4: base {base.mean:.3f} {base.low:.3f}-{base.high:.3f}, head {head.mean:.3f}")
    assert head.mean > base.mean
    assert base.low <= base.mean <= base.high
    assert {"PCA 8", "PCA 8 whitened"} <= set(rows)
    assert result.chance["P@4"] == pytest.approx(4 / (N // 2 - 1))


def test_self_supervised_split_and_test_time_augmentation_run(index, db, labelled) -> None:
    folder = labelled / "chelsea"
    split = SplitOptions(
        seed=0,
        ks=(1,),
        copies=2,
        tta=True,
        augment=2,
        train=TrainOptions(dim=32, hidden=64, epochs=2, seed=0),
    )
    paths, vectors = unlabelled_vectors(folder, index.encoder(), db)
    result = split_near_duplicates(Collected(str(folder), paths, vectors), split, encoder=index.encoder())
    names = [
        index.model,
        f"{index.model} + index augmentation 2",
        "self-supervised head",
        "self-supervised head + index augmentation 2",
    ]
    assert [r.encoder for r in result.rows] == names + [f"{n} + TTA" for n in names]
    assert all(0.0 <= r.scores["recall@1"].mean <= 1.0 for r in result.rows)
    hit = index.search(str(folder / "0.jpg"), k=1, tta=True).results[0]
    assert Path(hit.path) == folder / "0.jpg" and hit.similarity > 0.95


@pytest.mark.slow
def test_train_and_drop_encoder_commands(db, labelled, monkeypatch) -> None:
    monkeypatch.setenv("IMGSEARCH_DATABASE_URL", db.url)
    runner = CliRunner()
    result = runner.invoke(
        app, ["train", str(labelled), "--name", "cli-head", "--dim", "16", "--epochs", "3"]
    )
    assert result.exit_code == 0, result.output
    assert f"cli-head: head of efficientnet-lite0, 16 dimensions, fitted on {N} images" in result.output
    assert f"{N} vectors computed" in result.output
    result = runner.invoke(app, ["search", str(labelled / "rocket" / "1.jpg"), "-m", "cli-head", "--json"])
    assert result.exit_code == 0 and "rocket" in result.output
    result = runner.invoke(app, ["db", "drop-encoder", "efficientnet-lite0"])
    assert result.exit_code != 0 and "cli-head" in str(result.exception or result.output)
    result = runner.invoke(app, ["db", "drop-encoder", "cli-head"])
    assert result.exit_code == 0 and "dropped cli-head" in result.output


def test_index_augmentation_stores_extra_vectors_and_lists_each_image_once(index, db, labelled) -> None:
    folder = labelled / "coffee"
    assert index.ingest([folder], augment=3).new == 10
    with connect(db) as conn:
        counts = conn.execute(
            "SELECT count(*), count(DISTINCT image_id), max(variant) FROM imgsearch.augmented_embeddings"
        ).fetchone()
    assert counts == (30, 10, 3)
    # the same content gives the same edits: a re-run encodes nothing
    again = index.ingest([folder], augment=3)
    assert (again.new, again.updated, again.encoded) == (0, 0, 0)
    # asking for more re-encodes every image once
    assert index.ingest([folder], augment=4).updated == 10
    hits = index.search(str(folder / "2.jpg"), k=10).results
    assert len({h.image_id for h in hits}) == len(hits) == 10
    assert Path(hits[0].path).name == "2.jpg" and hits[0].similarity > 0.99
    plain = index.search(str(folder / "2.jpg"), k=10, options=QueryOptions(augmented=False)).results
    # an image's score is its closest vector: never below its primary vector's score
    best = {h.image_id: h.similarity for h in hits}
    assert all(best[h.image_id] >= h.similarity - 1e-6 for h in plain)
    # a changed file loses its stale augmentations when re-ingested without --augment
    (folder / "2.jpg").write_bytes((folder / "3.jpg").read_bytes())
    index.ingest([folder])
    with connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM imgsearch.augmented_embeddings").fetchone()[0] == 36
