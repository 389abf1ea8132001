"""`imgsearch db partition`: hash partitions with per-partition ANN indexes, behind the same
SQL contract."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from imgsearch.cli import app
from imgsearch.db.connection import connect
from imgsearch.db.indexes import create_index, index_status
from imgsearch.db.partition import partition, partition_count
from imgsearch.errors import ImgsearchError
from imgsearch.ingest import ingest

from .support.photos import sample_photos


def _similar(db, image_id: int) -> list[tuple[int, float]]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT image_id, similarity FROM imgsearch.similar_to_image(%s, 8)", (image_id,)
        ).fetchall()
    return [(i, round(s, 5)) for i, s in rows]


def test_partitioned_vectors_answer_the_same_sql_and_take_new_rows(db, lite0, tmp_path) -> None:
    for name, img in sample_photos().items():
        img.resize((256, 192)).save(tmp_path / f"{name}.jpg")
        img.resize((256, 192)).rotate(90).save(tmp_path / f"{name}-r.jpg")
    ingest([tmp_path], encoder=lite0, database=db)
    create_index(db, lite0.name, "hnsw")
    before = {i: _similar(db, i) for i in (1, 5, 9)}

    report = partition(db, 4)
    assert (report.partitions, report.indexes) == (4, ["embeddings_hnsw_enc1"])
    assert report.rows == 2 * len(sample_photos())
    with connect(db) as conn:
        assert partition_count(conn) == 4
        parts = conn.execute(
            "SELECT count(*) FROM pg_partition_tree('imgsearch.embeddings_hnsw_enc1') WHERE isleaf"
        ).fetchone()[0]
        per_partition = conn.execute("SELECT count(*) FROM imgsearch.embeddings_p0").fetchone()[0]
    assert parts == 4 and 0 < per_partition < report.rows
    assert {i: _similar(db, i) for i in before} == before
    [status] = index_status(db)
    assert status.size_bytes > 0 and status.rows == report.rows

    extra = tmp_path / "extra"
    extra.mkdir()
    sample_photos()["coffee"].resize((200, 150)).save(extra / "new.jpg")
    assert ingest([extra], encoder=lite0, database=db).new == 1
    with connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM imgsearch.embeddings").fetchone()[0] == report.rows + 1
        conn.execute("DELETE FROM imgsearch.images WHERE path LIKE '%%new.jpg'")
        conn.commit()
    assert partition(db, 1).partitions == 1
    with connect(db) as conn:
        assert partition_count(conn) == 1
    assert {i: _similar(db, i) for i in before} == before
    with pytest.raises(ImgsearchError):
        partition(db, 0)


def test_partition_command(db, monkeypatch) -> None:
    monkeypatch.setenv("IMGSEARCH_DATABASE_URL", db.url)
    result = CliRunner().invoke(app, ["db", "partition", "--count", "2"])
    assert result.exit_code == 0 and "0 rows in 2 hash partitions" in result.output
