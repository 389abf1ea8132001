"""ANN indexes, the SQL functions, the read-only role, filtered search, README's SQL."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector

from imgsearch.db import store
from imgsearch.db.connection import Database, connect
from imgsearch.db.indexes import create_index, default_lists, drop_index, index_status
from imgsearch.db.nearest import QueryOptions, nearest
from imgsearch.encoding.encoder import EncoderIdentity

from .support.vectors import clustered_vectors

ROOT = Path(__file__).resolve().parents[1]
DIM = 64
N = 20_000


@pytest.fixture(scope="module")
def synthetic_db(pg_admin_url):
    """A database holding N clustered vectors of a 64-d encoder, written like ingest writes."""
    from imgsearch.db.schema import open_database

    from .support import pg

    with pg.scratch_database(pg_admin_url) as url:
        db = open_database(url)
        vectors = clustered_vectors(N + 100, DIM)  # the last 100 are held-out queries
        with connect(db, autocommit=True) as conn:
            enc_id = store.encoder_id(conn, EncoderIdentity("synthetic-64", DIM, "none", "none"))
            for start in range(0, N, 2000):
                rows = [
                    store.ImageRow(
                        f"/synthetic/{i}.jpg",
                        f"sha{i}",
                        1,
                        8,
                        8,
                        "JPEG",
                        0.0,
                        {"parity": "even" if i % 2 == 0 else "odd", "title": f"vector {i}"},
                    )
                    for i in range(start, start + 2000)
                ]
                store.write_batch(conn, enc_id, rows, vectors[start : start + 2000])
        yield db, enc_id, vectors


def _ids(conn: psycopg.Connection, enc_id: int, query: np.ndarray, k: int, **options) -> list[int]:
    rows = nearest(conn, enc_id, DIM, HalfVector(query), k, options=QueryOptions(**options))
    conn.rollback()  # (each search's settings are its transaction's)
    return [r[0] for r in rows]


def _default_hnsw(db: Database) -> None:
    """synthetic-64's HNSW index as `create_index` builds it by default: kept from the test
    before when it built the same (a build of N vectors takes seconds), else built."""
    built = [
        s
        for s in index_status(db)
        if s.kind == "hnsw" and s.valid and "m=16, ef_construction=64" in s.parameters
    ]
    if not built:
        create_index(db, "synthetic-64")


@pytest.mark.slow
def test_hnsw_default_recall_and_filters(synthetic_db) -> None:
    db, enc_id, vectors = synthetic_db
    name, warnings = create_index(db, "synthetic-64")
    assert name == f"embeddings_hnsw_enc{enc_id}" and warnings == []
    queries = vectors[N:]
    recalls = []
    with connect(db) as conn:
        for q in queries:
            exact = set(_ids(conn, enc_id, q, 10, exact=True))
            approx = set(_ids(conn, enc_id, q, 10))
            recalls.append(len(exact & approx) / 10)
    assert np.mean(recalls) >= 0.95, np.mean(recalls)

    # The plan uses the index; the filtered search still returns k rows.
    with connect(db) as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT image_id FROM imgsearch.embeddings WHERE encoder_id = {enc_id}"
                f" ORDER BY embedding::halfvec({DIM}) <=> %s::halfvec({DIM}) LIMIT 10",
                (HalfVector(queries[0]),),
            ).fetchall()
        )
        assert name in plan
        rows = nearest(
            conn,
            enc_id,
            DIM,
            HalfVector(queries[0]),
            50,
            options=QueryOptions(where={"parity": "odd"}, ef_search=20),
        )
    assert len(rows) == 50
    assert all(r.metadata["parity"] == "odd" for r in rows)

    status = {s.name: s for s in index_status(db)}[name]
    assert status.valid and status.kind == "hnsw" and status.rows == N and "m=16" in status.parameters


def test_sql_functions_use_the_index_and_the_reader_role(synthetic_db) -> None:
    db, enc_id, vectors = synthetic_db
    _default_hnsw(db)
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT image_id, path, similarity FROM imgsearch.similar_to_image(%s, 5, 'synthetic-64')", (7,)
        ).fetchall()
        assert len(rows) == 5 and 7 not in [r[0] for r in rows]
        assert rows[0][2] >= rows[-1][2]
        by_vector = conn.execute(
            "SELECT image_id FROM imgsearch.similar_to_vector(%s, 3, 'synthetic-64')",
            (HalfVector(vectors[7]),),
        ).fetchall()
        seventh = conn.execute("SELECT id FROM imgsearch.images WHERE path = '/synthetic/7.jpg'").fetchone()[
            0
        ]
        assert by_vector[0][0] == seventh
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_nested_statements = on")
        conn.execute("SET client_min_messages = log")
        conn.execute("SET auto_explain.log_level = notice")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SELECT * FROM imgsearch.similar_to_image(7, 5, 'synthetic-64')").fetchall()
        assert any(f"embeddings_hnsw_enc{enc_id}" in n for n in notices), notices
        conn.rollback()

        conn.execute("SET ROLE imgsearch_reader")
        assert (
            len(conn.execute("SELECT * FROM imgsearch.similar_to_image(7, 3, 'synthetic-64')").fetchall())
            == 3
        )
        assert conn.execute("SELECT count(*) FROM imgsearch.image_catalog").fetchone()[0] == N
        for statement in (
            "INSERT INTO imgsearch.images (path, sha256, byte_size) VALUES ('x','y',1)",
            "DELETE FROM imgsearch.images",
            "SELECT * FROM imgsearch.ingest_errors",
            "SELECT * FROM imgsearch.embeddings",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
            conn.execute("SET ROLE imgsearch_reader")


def test_the_lookup_role_cannot_choose_vectors(synthetic_db) -> None:
    """imgsearch_reader may probe with any vector (and so learn stored vectors, README);
    imgsearch_lookup finds images like an indexed one and can choose no vector."""
    db, _, vectors = synthetic_db
    probe = HalfVector(np.eye(DIM, dtype=np.float32)[0])
    with connect(db) as conn:
        conn.execute("SET ROLE imgsearch_reader")
        assert (
            len(
                conn.execute(
                    "SELECT * FROM imgsearch.similar_to_vector(%s, 3, 'synthetic-64')", (probe,)
                ).fetchall()
            )
            == 3
        )
        conn.rollback()
        conn.execute("SET ROLE imgsearch_lookup")
        assert (
            len(conn.execute("SELECT * FROM imgsearch.similar_to_image(7, 3, 'synthetic-64')").fetchall())
            == 3
        )
        assert conn.execute("SELECT count(*) FROM imgsearch.image_catalog").fetchone()[0] == N
        for statement, params in [
            ("SELECT * FROM imgsearch.similar_to_vector(%s, 3, 'synthetic-64')", (probe,)),
            ("SELECT embedding FROM imgsearch.embeddings LIMIT 1", ()),
            ("SELECT * FROM imgsearch.images LIMIT 1", ()),
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, params)
            conn.rollback()
            conn.execute("SET ROLE imgsearch_lookup")


@pytest.mark.slow
def test_ivfflat_lists_and_drop(synthetic_db) -> None:
    db, enc_id, _ = synthetic_db
    assert default_lists(20_000) == 20 and default_lists(4_000_000) == 2000
    name, warnings = create_index(db, "synthetic-64", "ivfflat", lists=1000)
    assert warnings and "rebuild" in warnings[0]
    status = {s.name: s for s in index_status(db)}
    assert name in status and f"embeddings_hnsw_enc{enc_id}" not in status
    assert drop_index(db, "synthetic-64") == [name]
    assert index_status(db) == []


def test_readme_sql_examples_run(db, lite0) -> None:
    from imgsearch.ingest import ingest

    ingest([ROOT / "examples" / "photos"], encoder=lite0, database=db)
    blocks = []
    for page in ("README.md", "docs/sql.md"):  # the README's tour and the SQL interface's page
        found = re.findall(r"```sql\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
        assert found, page
        blocks += found
    with connect(db) as conn:
        for block in blocks:
            assert conn.execute(block).fetchall(), block


@pytest.mark.slow
def test_readme_python_example_runs(db) -> None:
    import os
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"}
    run = subprocess.run(
        [sys.executable, "-c", block], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("1 ") and lines[0].endswith("chelsea.jpg")  # the cat finds itself
    assert lines[-1].startswith("{1: ")


@pytest.mark.parametrize("k", [100, 200, 1000])
def test_sql_functions_return_k_rows_through_the_index(synthetic_db, k: int) -> None:
    """An HNSW scan stops at ef_search (40) candidates unless iterative scans are on."""
    db, enc_id, vectors = synthetic_db
    _default_hnsw(db)
    with connect(db, autocommit=True) as conn:
        conn.execute("ANALYZE imgsearch.embeddings, imgsearch.images")  # so the planner picks HNSW
        conn.execute("SET ROLE imgsearch_reader")
        rows = conn.execute(
            "SELECT image_id, similarity FROM imgsearch.similar_to_vector(%s, %s, 'synthetic-64')",
            (HalfVector(vectors[N + 1]), k),
        ).fetchall()
        assert len(rows) == k
        similarities = [r[1] for r in rows]
        assert similarities == sorted(similarities, reverse=True)
        assert len({r[0] for r in rows}) == k
        by_image = conn.execute(
            "SELECT count(*) FROM imgsearch.similar_to_image(7, %s, 'synthetic-64')", (k,)
        ).fetchone()[0]
        assert by_image == k


# --- issue 32 (trust boundaries), finding 8: the roles' contract, any k --------------------


def _usable(conn: psycopg.Connection, role: str) -> set[str]:
    """The relations, sequences and functions of the imgsearch schema that `role` may use."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'imgsearch' AND (
               (c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (
                   has_table_privilege(%(role)s, c.oid,
                                       'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                   OR has_any_column_privilege(%(role)s, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')))
               OR (c.relkind = 'S' AND has_sequence_privilege(%(role)s, c.oid, 'USAGE, SELECT, UPDATE')))
           UNION ALL
           SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'imgsearch' AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')""",
        {"role": role},
    ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def tuned_db(db):
    """A database with 6 vectors of an 8-d encoder and a tuned search setting for it."""
    vectors = clustered_vectors(6, 8, clusters=2)
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, EncoderIdentity("tiny-8", 8, "none", "none"))
        rows = [store.ImageRow(f"/tiny/{i}.jpg", f"sha{i}", 1, 8, 8, "JPEG", 0.0, {}) for i in range(6)]
        store.write_batch(conn, enc_id, rows, vectors)
        conn.execute(
            """INSERT INTO imgsearch.search_settings (encoder_id, index_name, ef_search, k,
                   target_recall, recall, p50_ms, queries, rows_at_tuning)
               VALUES (%s, 'none', 80, 10, 0.95, 1.0, 1.0, 10, 6)""",
            (enc_id,),
        )
    return db, vectors


def test_issue_32_finding_8_roles_may_use_exactly_what_the_readme_grants(tuned_db) -> None:
    """Issue 32, finding 8a: imgsearch_reader could read search_settings and
    duplicate_calibrations; the README grants it the view and the two functions only (and
    imgsearch_lookup the view and similar_to_image). The functions still read the tuned
    settings, as their owner."""
    db, vectors = tuned_db
    with connect(db, autocommit=True) as conn:
        assert _usable(conn, "imgsearch_reader") == {"image_catalog", "similar_to_vector", "similar_to_image"}
        assert _usable(conn, "imgsearch_lookup") == {"image_catalog", "similar_to_image"}
        first = conn.execute("SELECT id FROM imgsearch.images WHERE path = '/tiny/0.jpg'").fetchone()[0]
        conn.execute("SET ROLE imgsearch_reader")
        for table in ("search_settings", "duplicate_calibrations", "images", "embeddings"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM imgsearch.{table}")
        by_vector = conn.execute(
            "SELECT image_id FROM imgsearch.similar_to_vector(%s, 3, 'tiny-8')", (HalfVector(vectors[0]),)
        ).fetchall()
        assert len(by_vector) == 3 and by_vector[0][0] == first
        by_image = conn.execute("SELECT image_id FROM imgsearch.similar_to_image(%s, 3, 'tiny-8')", (first,))
        assert len(by_image.fetchall()) == 3
        assert conn.execute("SELECT count(*) FROM imgsearch.image_catalog").fetchone()[0] == 6


@pytest.mark.parametrize("role", [None, "imgsearch_reader", "imgsearch_lookup"])
def test_issue_32_finding_8_similar_to_image_takes_any_k(tuned_db, role: str | None) -> None:
    """Issue 32, finding 8b: k = 2147483647 failed with "integer out of range"; a k beyond the
    collection is a LIMIT like any other: every other image."""
    db, _ = tuned_db
    with connect(db, autocommit=True) as conn:
        first = conn.execute("SELECT id FROM imgsearch.images WHERE path = '/tiny/0.jpg'").fetchone()[0]
        if role:
            conn.execute(f"SET ROLE {role}")
        rows = conn.execute(
            "SELECT image_id FROM imgsearch.similar_to_image(%s, 2147483647, 'tiny-8')", (first,)
        ).fetchall()
        assert len(rows) == 5 and first not in {r[0] for r in rows}
