"""The search path itself: a search by a vector one already has (`Index.search_vector`), the
round trips and prepared statements of a search, settings that never outlive their search, and
a binary-quantised index's candidates re-ranked before the images are joined (the library's and
`similar_to_vector`'s)."""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from PIL import Image

from imgsearch.db import nearest as nearest_module
from imgsearch.db import nearest_sql, store
from imgsearch.db.connection import connect
from imgsearch.db.indexes import create_index, drop_index
from imgsearch.db.nearest import NoVectors, QueryOptions, lookup, nearest
from imgsearch.encoding.encoder import Encoder, EncoderIdentity
from imgsearch.errors import ImgsearchError
from imgsearch.library import Index
from imgsearch.search import VECTOR_QUERY, search_vector

from .support.vectors import clustered_vectors

DIM = 32
N = 3000
AUGMENTED = "augmented-32"  # an encoder whose first images have 2 augmented vectors each
K = 10


class PixelEncoder(Encoder):
    """A tiny deterministic encoder: a fixed projection of a 4x4 thumbnail (no model)."""

    name = "pixels-32"
    dimension = DIM
    weights_id = "fixed projection"
    device = "cpu"
    _projection = np.random.default_rng(0).normal(size=(48, DIM)).astype(np.float32)

    @property
    def preprocessing_id(self) -> str:
        return "4x4 thumbnail"

    @property
    def min_decode_size(self) -> int:
        return 8

    def preprocess(self, image: Image.Image) -> tuple[np.ndarray, ...]:
        return (np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32).reshape(-1) / 255,)

    def encode_batch(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        x = (inputs[0] - 0.5) @ self._projection
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def collection(pg_admin_url, migrated_template):
    """N vectors of PixelEncoder (the first 300 under /far/ with shoot=far), and of AUGMENTED
    (the first 200 images with 2 augmented vectors each)."""

    from .support import pg

    vectors = clustered_vectors(2 * N, DIM, clusters=60, seed=5)
    rng = np.random.default_rng(2)
    with pg.database_copy(pg_admin_url, migrated_template) as db:
        with connect(db, autocommit=True) as conn:
            enc_id = store.encoder_id(conn, PixelEncoder().identity)
            rows = [
                store.ImageRow(f"/far/{i}.jpg", f"p{i}", 1, 8, 8, "JPEG", float(i), {"shoot": "far"})
                if i < 300
                else store.ImageRow(f"/near/{i}.jpg", f"p{i}", 1, 8, 8, "JPEG", float(i))
                for i in range(N)
            ]
            for start in range(0, N, 1000):
                store.write_batch(conn, enc_id, rows[start : start + 1000], vectors[start : start + 1000])
            aug_id = store.encoder_id(conn, EncoderIdentity(AUGMENTED, DIM, "none", "none"))
            rows = [store.ImageRow(f"/aug/{i}.jpg", f"a{i}", 1, 8, 8, "JPEG", 0.0) for i in range(N)]
            extras = [
                [v + 0.3 * rng.normal(size=DIM).astype(np.float32) for _ in range(2)] if i < 200 else []
                for i, v in enumerate(vectors[N:])
            ]
            store.write_batch(conn, aug_id, rows, vectors[N:], augmented=extras)
            conn.execute("ANALYZE imgsearch.embeddings, imgsearch.images, imgsearch.augmented_embeddings")
        yield db, enc_id, aug_id


def _queries(count: int, seed: int = 11) -> np.ndarray:
    return clustered_vectors(count, DIM, clusters=60, seed=seed)


def _hits(result) -> list[tuple[int, float]]:
    return [(m.image_id, round(m.similarity, 6)) for m in result.results]


# --- a search by a vector one already has ------------------------------------------------


def test_search_vector_finds_what_search_finds(collection) -> None:
    db, _, _ = collection
    encoder = PixelEncoder()
    with Index(db.url, model=encoder.name, encoders=[encoder]) as index, Index(db.url) as cold:
        for seed in range(5):
            picture = _png(seed)
            vector = index.encode([picture])[0]
            by_picture = index.search(picture, k=K)
            by_vector = index.search_vector(vector, k=K)
            assert len(by_picture.results) == K and _hits(by_vector) == _hits(by_picture)
            assert [m.rank for m in by_vector.results] == list(range(1, K + 1))
            assert by_vector.query == VECTOR_QUERY and not by_vector.picture
            assert by_vector.model == encoder.name
            # A list, a longer vector, a HalfVector: the same images (cosine); an index that
            # has not loaded the encoder finds it by name, as the SQL functions do.
            assert _hits(index.search_vector(list(map(float, vector)), k=K)) == _hits(by_picture)
            assert [m.image_id for m in index.search_vector(8.0 * vector, k=K).results] == [
                m.image_id for m in by_picture.results
            ]
            assert _hits(cold.search_vector(HalfVector(vector), k=K, model=encoder.name)) == _hits(by_picture)
            one_shot = search_vector(vector, K, model=encoder.name, database=db)
            assert _hits(one_shot) == _hits(by_picture)
            # Filters, a minimum similarity and relevance feedback apply as to `search`.
            options = QueryOptions(where={"shoot": "far"}, positive_ids=[by_picture.results[-1].image_id])
            floor = (by_picture.results[4].similarity + by_picture.results[5].similarity) / 2
            assert _hits(index.search_vector(vector, k=K, options=options)) == _hits(
                index.search(picture, k=K, options=options)
            )
            assert _hits(index.search_vector(vector, k=K, min_similarity=floor)) == _hits(by_picture)[:5]
            folder = QueryOptions(folder="/far")
            found = index.search_vector(vector, k=K, options=folder).results
            assert len(found) == K and all(m.path.startswith("/far/") for m in found)


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.ones(DIM + 1), "has 33 dimensions; pixels-32's vectors have 32"),
        (np.ones(DIM - 1).tolist(), "has 31 dimensions"),
        (np.r_[np.ones(DIM - 1), np.nan], "NaN or infinite"),
        (np.r_[np.ones(DIM - 1), np.inf], "NaN or infinite"),
        (np.zeros(DIM), "all zeros"),
        (np.ones((1, DIM)), "one-dimensional.*vectors\\[0\\]"),
        ([], "empty"),
        (["a"] * DIM, "must be numbers"),
    ],
)
def test_search_vector_refuses_a_vector_it_cannot_search(collection, vector, message) -> None:
    db, _, _ = collection
    with Index(db.url, model=PixelEncoder.name) as index, pytest.raises(ImgsearchError, match=message):
        index.search_vector(vector, k=K)


def test_search_vector_of_a_model_with_no_vectors_says_so(collection) -> None:
    db, _, _ = collection
    with Index(db.url) as index, pytest.raises(NoVectors, match="No images are indexed with nothing-64"):
        index.search_vector(np.ones(64), model="nothing-64")


# --- round trips, prepared statements, settings ------------------------------------------


def _traced(index: Index, run) -> list[tuple[str, str]]:
    """(direction F or B, message type) of what `run()` sent and received on the index's one
    search connection (libpq's trace)."""
    path = tempfile.mktemp(suffix=".trace")
    with open(path, "w") as out:
        with index.searching() as conn:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            run()
        finally:
            with index.searching() as conn:
                conn.pgconn.untrace()
    with open(path) as lines:
        messages = [tuple(line.split("\t")[0:3:2]) for line in lines if line[:2] in ("F\t", "B\t")]
    os.unlink(path)
    return [(direction, kind.split(" ")[0]) for direction, kind in messages]


def _round_trips(messages: list[tuple[str, str]]) -> int:
    """How many times the client sent and then waited for the server."""
    return sum(1 for i, (d, _) in enumerate(messages) if d == "F" and (i == 0 or messages[i - 1][0] == "B"))


def test_a_search_is_one_round_trip_of_prepared_statements(collection) -> None:
    db, _, _ = collection
    encoder = PixelEncoder()
    with Index(db.url, model=encoder.name, encoders=[encoder]) as index:
        picture = _png(1)
        vector = index.encode([picture])[0]
        searches = {  # how many round trips, once the connection has looked the encoder up
            "picture": (lambda: index.search(picture, k=K), 1),
            "vector": (lambda: index.search_vector(vector, k=K), 1),
            "indexed image": (lambda: index.search("id:5", k=K), 2),  # its vector, then the search
            # the lookup, then the filter's few rows counted and searched in one statement
            "filtered": (lambda: index.search_vector(vector, k=K, options=QueryOptions(folder="/far")), 2),
        }
        for run, _ in searches.values():
            run()  # the first search on the connection prepares its statements
        for name, (run, expected) in searches.items():
            messages = _traced(index, run)
            # the lookup, the settings and the query in one pipeline, ended by its sync
            assert _round_trips(messages) == expected, (name, messages)
            sent = [kind for d, kind in messages if d == "F"]
            assert "Query" not in sent, (name, sent)  # no BEGIN, no ROLLBACK
            # prepared, but for the filtered rows' count (planned for its filters each time)
            assert sent.count("Parse") == (name == "filtered"), (name, sent)


def test_a_changed_tuning_is_never_searched_with_the_old_one(collection, monkeypatch) -> None:
    """The search sent with the lookup runs as the connection's last lookup said; when the
    lookup made with it says otherwise (here: `index tune` in another connection), its rows
    are thrown away and the search runs again with the new setting."""
    from imgsearch.db import search_settings

    db, enc_id, _ = collection
    create_index(db, PixelEncoder.name)
    runs: list[int | None] = []
    run = nearest_module._run
    monkeypatch.setattr(nearest_module, "_run", lambda *a: runs.append(a[3].ef_search) or run(*a))
    q = _queries(1)[0]
    try:
        with Index(db.url, model=PixelEncoder.name) as index:
            first = index.search_vector(q, k=K)
            assert runs == [None]  # looked up, then searched: pgvector's default
            again = index.search_vector(q, k=K)
            assert runs == [None] and _hits(again) == _hits(first)  # with the lookup, as it said
            with connect(db) as conn:
                tuned = search_settings.SearchSettings(
                    f"embeddings_hnsw_enc{enc_id}", 333, None, None, K, 0.95, 0.99, 1.0, 10, N
                )
                search_settings.save(conn, enc_id, tuned)
                conn.commit()
            index.search_vector(q, k=K)
            assert runs == [None, 333]  # the lookup said 333: searched again with it
            index.search_vector(q, k=K)
            assert runs == [None, 333]  # and from then on with the lookup
            with Index(db.url, model=PixelEncoder.name) as fresh:
                assert _hits(fresh.search_vector(q, k=K)) == _hits(index.search_vector(q, k=K))
    finally:
        drop_index(db, PixelEncoder.name)


def _settings(conn: psycopg.Connection) -> dict[str, str]:
    names = ("hnsw.ef_search", "enable_indexscan", "plan_cache_mode", "hnsw.iterative_scan")
    row = conn.execute(
        "SELECT " + ", ".join("current_setting(%s, true)" for _ in names), list(names)
    ).fetchone()
    return dict(zip(names, row, strict=True))


def test_a_search_settings_never_outlive_it(collection) -> None:
    db, enc_id, _ = collection
    q = HalfVector(_queries(1)[0])
    create_index(db, PixelEncoder.name)
    try:
        with connect(db) as conn:
            conn.execute("SELECT '[1]'::halfvec")  # pgvector's library loaded: its settings known
            conn.commit()
            before = _settings(conn)
            conn.commit()
            assert before["hnsw.ef_search"] == "40" and before["enable_indexscan"] == "on"
            fresh = nearest(conn, enc_id, DIM, q, K)
            conn.rollback()
            # Two searches in one transaction of the caller's: each sets every setting it needs.
            conn.execute("SELECT 1")
            nearest(conn, enc_id, DIM, q, K, options=QueryOptions(ef_search=77, exact=True))
            assert _settings(conn)["enable_indexscan"] == "off"
            plain = nearest(conn, enc_id, DIM, q, K)
            inside = _settings(conn)
            assert inside["enable_indexscan"] == "on" and inside["hnsw.ef_search"] == "40"
            assert plain == fresh
            conn.rollback()
            assert _settings(conn) == before
            conn.commit()
            # A search on an idle connection runs in implicit transactions: its settings end
            # with it, the connection is handed back as it came (not autocommit, idle).
            search_vector(
                q.to_numpy(), K, model=PixelEncoder.name, conn=conn, options=QueryOptions(ef_search=77)
            )
            assert not conn.autocommit
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert _settings(conn) == before
            conn.commit()
            # In a transaction of the caller's, the search is part of it, and ends it.
            conn.execute("SELECT 1")
            search_vector(
                q.to_numpy(), K, model=PixelEncoder.name, conn=conn, options=QueryOptions(exact=True)
            )
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert _settings(conn) == before
        with Index(db.url, model=PixelEncoder.name) as index:
            index.search_vector(q.to_numpy(), k=K, options=QueryOptions(ef_search=77, exact=True))
            with index.searching() as conn:
                assert _settings(conn) == before
    finally:
        drop_index(db, PixelEncoder.name)


# --- a binary index's candidates re-ranked before the join -------------------------------


def _settings_of(plan, exact: bool) -> list[str]:
    return [
        "relaxed_order",
        "relaxed_order",
        str(plan.ef_search or nearest_module.DEFAULT_EF_SEARCH),
        str(plan.probes or nearest_module.DEFAULT_PROBES),
        "off" if exact else "on",
        "force_custom_plan",
    ]


def _reranked(conn, enc_id, q, k, options, exclude=None, min_similarity=None) -> list[tuple[int, str, float]]:
    """What a search must return: the same candidates as the index gives them (each vector
    table's own nearest, the same statement shape and settings), re-ranked here by exact
    distance then image id, each image once, the k best joined with their paths."""
    tuning = lookup(conn, enc_id=enc_id).tuning
    plan = nearest_module._plan(tuning, options, k)
    params = nearest_module._params(q, k, plan, exclude, min_similarity, options)
    filtered = nearest_module._filtered(params)
    conn.execute(nearest_module._SET, _settings_of(plan, False))
    tables = [("imgsearch.embeddings", "%(rerank)s" if plan.binary else "%(k)s", plan.binary)]
    if plan.variants:
        tables.append(("imgsearch.augmented_embeddings", f"%(k)s * {plan.variants}", False))
    best: dict[int, float] = {}
    for table, limit, binary in tables:
        sql = nearest_sql.candidate_rows(table, enc_id, DIM, limit, filtered, binary)
        for image_id, distance in conn.execute(sql, params).fetchall():
            best[image_id] = min(distance, best.get(image_id, distance))
    conn.rollback()
    kept = sorted(((d, i) for i, d in best.items() if params["max_dist"] is None or d <= params["max_dist"]))[
        :k
    ]
    paths = dict(
        conn.execute("SELECT id, path FROM imgsearch.images WHERE id = ANY(%s)", ([i for _, i in kept],))
    )
    conn.rollback()
    return [(i, paths[i], d) for d, i in kept]


def _found(conn, enc_id, q, k, options, **more) -> list[tuple[int, str, float]]:
    rows = nearest(conn, enc_id, DIM, q, k, options=options, **more)
    conn.rollback()
    return [(r.image_id, r.path, r.distance) for r in rows]


@pytest.mark.parametrize("quantize", ["binary", None])
def test_candidates_are_reranked_before_the_images_are_joined(collection, monkeypatch, quantize) -> None:
    """The same images in the same order as an exact re-rank of the same candidates, with and
    without filters, augmented vectors, an excluded image and a minimum similarity; and the plan
    reads the images k times, not once per candidate."""
    db, enc_id, aug_id = collection
    monkeypatch.setattr(nearest_module, "FILTER_EXACT_ROWS", 20)  # filters through the index
    for name in (PixelEncoder.name, AUGMENTED):
        create_index(db, name, quantize=quantize)
    try:
        with connect(db) as conn:
            for encoder in (enc_id, aug_id):
                tuning = lookup(conn, enc_id=encoder).tuning
                conn.rollback()
                assert tuning.binary == (quantize == "binary") and tuning.variants == (
                    2 if encoder == aug_id else 0
                )
                for q in _queries(6):
                    q = HalfVector(q)
                    for options, more in [
                        (QueryOptions(), {}),
                        (QueryOptions(ef_search=40), {"exclude_id": 7, "min_similarity": 0.2}),
                        (QueryOptions(where={"shoot": "far"}), {}),
                        (QueryOptions(folder="/far", since=10.0), {}),
                        (QueryOptions(augmented=False), {}),
                    ]:
                        expected = _reranked(
                            conn, encoder, q, K, options, more.get("exclude_id"), more.get("min_similarity")
                        )
                        assert _found(conn, encoder, q, K, options, **more) == expected, (options, more)
            if quantize == "binary":
                plan = nearest_module._plan(lookup(conn, enc_id=enc_id).tuning, QueryOptions(), K)
                assert plan.rerank and plan.rerank > K
                conn.execute(nearest_module._SET, _settings_of(plan, False))
                sql = nearest_sql.search_sql(enc_id, DIM, True, 0, False)
                params = {"v": HalfVector(_queries(1)[0]), "exclude": None, "k": K, "rerank": plan.rerank}
                params["max_dist"] = None
                (explained,) = conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params
                ).fetchone()
                conn.rollback()
                nodes = list(_nodes(explained[0]["Plan"]))
                images = [n for n in nodes if n.get("Relation Name") == "images"]
                candidates = [
                    n for n in nodes if str(n.get("Index Name", "")).startswith("embeddings_hnsw_bit")
                ]
                assert len(images) == 1 and images[0]["Actual Loops"] * images[0]["Actual Rows"] == K
                assert candidates and candidates[0]["Actual Rows"] == plan.rerank
    finally:
        for name in (PixelEncoder.name, AUGMENTED):
            drop_index(db, name)


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def test_similar_to_vector_reranks_before_the_join_and_returns_what_it_did(db) -> None:
    """Migration 0015: the function's binary path reads the images k times (its nested plan,
    through auto_explain) and returns what 0013's text returned (downgraded to 0014 and back)."""
    from imgsearch.db.migrations import downgrade, upgrade

    vectors = clustered_vectors(N, DIM, clusters=60, seed=5)
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, EncoderIdentity("function-32", DIM, "none", "none"))
        rows = [store.ImageRow(f"/f/{i}.jpg", f"f{i}", 1, 8, 8, "JPEG", 0.0) for i in range(N)]
        store.write_batch(conn, enc_id, rows, vectors)
        conn.execute("ANALYZE imgsearch.embeddings, imgsearch.images")  # as autovacuum would
    create_index(db, "function-32", quantize="binary")
    queries = [HalfVector(q) for q in _queries(8)]

    def answers() -> list[list[tuple]]:
        with connect(db, autocommit=True) as conn:
            return [
                conn.execute(
                    "SELECT image_id, path, similarity FROM imgsearch.similar_to_vector(%s, %s, %s)",
                    (q, K, "function-32"),
                ).fetchall()
                for q in queries
            ]

    now = answers()
    assert all(len(a) == K for a in now)
    with connect(db, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error:
            pytest.skip("auto_explain is not installed on this server")
        for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_analyze = on"):
            conn.execute(f"SET auto_explain.{setting}")
        conn.execute("SET auto_explain.log_format = json")
        conn.execute("SET client_min_messages = log")
        conn.execute("SELECT * FROM imgsearch.similar_to_vector(%s, %s, 'function-32')", (queries[0], K))
    plans = [json.loads(n[n.index("{") :]) for n in notices if "binary_quantize" in n and "{" in n]
    assert plans, notices
    nodes = list(_nodes(plans[0]["Plan"]))
    images = [n for n in nodes if n.get("Relation Name") == "images"]
    assert len(images) == 1 and images[0]["Actual Loops"] * images[0]["Actual Rows"] == K
    downgrade(db, "0014")
    try:
        assert answers() == now
    finally:
        upgrade(db)
