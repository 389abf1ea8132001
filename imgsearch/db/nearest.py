"""The nearest-neighbour SQL: the k nearest stored vectors of one encoder by cosine distance
(pgvector), through the encoder's ANN index with the setting `index tune` chose, filtered by
metadata, folder and time (searched exactly when a filter leaves few rows), a binary-quantised
index's candidates re-ranked at full precision; and the vectors a search starts from: an indexed
image's, and a query moved by relevance feedback."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch.db import store
from imgsearch.db.connection import one, scalar
from imgsearch.errors import ImageNotFound, ImgsearchError
from imgsearch.sources import location_of


class NoVectors(ImgsearchError):
    """The encoder has no vectors in the database yet."""


class Neighbour(NamedTuple):
    image_id: int
    path: str
    path_bytes: bytes | None
    metadata: dict | None
    distance: float
    width: int | None
    height: int | None
    mtime: float | None


@dataclass
class QueryOptions:
    """Index knobs (HNSW ef_search, which for a binary-quantised index is the number of candidates
    re-ranked; IVFFlat probes; an exact scan), filters (metadata, folder,
    modification time) and relevance feedback (images the results should be more, or less,
    like: the query becomes unit(q) + mean(positives) - mean(negatives))."""

    ef_search: int | None = None
    probes: int | None = None
    exact: bool = False
    where: dict[str, str] | None = None  # metadata key = value (jsonb containment)
    folder: str | None = None  # a displayed path prefix, e.g. /photos/2024
    since: float | None = None  # file mtime, seconds since the epoch
    until: float | None = None
    positive_ids: list[int] = field(default_factory=list)
    negative_ids: list[int] = field(default_factory=list)
    augmented: bool = True  # an image's augmented vectors (ingest --augment) count too


MAX_EF_SEARCH = 1000  # pgvector's limit
DEFAULT_EF_SEARCH, DEFAULT_PROBES = 40, 1  # pgvector's defaults
FILTER_EXACT_ROWS = 20_000  # a filter matching fewer rows than this is searched exactly


@dataclass
class _Plan:
    """How one search runs: index settings (tuned by `index tune`, or the query's own), whether
    the encoder's index is binary-quantised, and how many augmented vectors an image has."""

    ef_search: int | None
    probes: int | None
    rerank: int | None
    binary: bool
    variants: int


def _plan(conn: psycopg.Connection, enc_id: int, options: QueryOptions, k: int) -> _Plan:
    ef, probes, rerank, binary, variants = one(
        conn.execute(
            """SELECT s.ef_search, s.probes, s.rerank,
                      to_regclass(format('imgsearch.embeddings_hnsw_bit_enc%%s', %(enc)s::int)) IS NOT NULL,
                      (SELECT max(variant) FROM imgsearch.augmented_embeddings WHERE encoder_id = %(enc)s)
               FROM (SELECT 1) one LEFT JOIN imgsearch.search_settings s ON s.encoder_id = %(enc)s""",
            {"enc": enc_id},
        )
    )
    if binary:
        rerank = max(k, options.ef_search or rerank or 100)
        ef = min(rerank, MAX_EF_SEARCH)  # an iterative scan goes on past ef_search
    if ef and not options.ef_search:
        ef = max(ef, min(k, MAX_EF_SEARCH))  # a tuned ef_search, never below k (pgvector caps at 1000)
    return _Plan(
        options.ef_search or ef,
        options.probes or probes,
        rerank,
        bool(binary),
        int(variants or 0) if options.augmented else 0,
    )


def nearest(
    conn: psycopg.Connection,
    enc_id: int,
    dim: int,
    vector: HalfVector,
    k: int,
    exclude_id: int | None = None,
    min_similarity: float | None = None,
    options: QueryOptions | None = None,
) -> list[Neighbour]:
    """The k nearest vectors of one encoder (cosine distance), filtered by `options`.

    The cast to halfvec(dim) matches the per-encoder expression indexes, so they serve it, with
    the ef_search / probes `index tune` chose (a query's own wins). A filter that matches few
    rows (under FILTER_EXACT_ROWS) is searched exactly over those rows; otherwise pgvector's
    iterative index scans keep going until k rows qualify, and should they still come back
    short, the search is repeated exactly: k rows whenever k exist.
    """
    options = options or QueryOptions()
    plan = _plan(conn, enc_id, options, k)
    params = {
        "v": vector,
        "exclude": exclude_id,
        "k": k,
        "rerank": plan.rerank or k,
        "max_dist": None if min_similarity is None else 1.0 - min_similarity,
        "filter": json.dumps(options.where) if options.where else None,
        "folder": options.folder.rstrip("/") + "/" if options.folder else None,
        "since": options.since,
        "until": options.until,
    }
    filtered = any(params[p] is not None for p in ("filter", "folder", "since", "until"))
    exact = options.exact
    if filtered and not exact:
        few = _exact_if_few(conn, enc_id, dim, params)
        if few is not None and not plan.variants:
            return few
        exact = few is not None  # augmented vectors count too: the exact search below has them
    rows = _run(conn, enc_id, dim, plan, exact, params)
    if filtered and not exact and len(rows) < k and min_similarity is None:
        rows = _run(conn, enc_id, dim, plan, True, params)  # the index scan gave up early
    return rows


def _run(
    conn: psycopg.Connection, enc_id: int, dim: int, plan: _Plan, exact: bool, params: dict
) -> list[Neighbour]:
    # Every setting a search relies on is set each time (pgvector's defaults where none is
    # chosen): one search's settings, transaction-local, never steer the next in its transaction.
    settings = {
        "hnsw.iterative_scan": "relaxed_order",
        "ivfflat.iterative_scan": "relaxed_order",
        "hnsw.ef_search": str(int(plan.ef_search or DEFAULT_EF_SEARCH)),
        "ivfflat.probes": str(int(plan.probes or DEFAULT_PROBES)),
        "enable_indexscan": "off" if exact else "on",
    }
    conn.execute(
        "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
        [item for pair in settings.items() for item in pair],
    )
    binary = plan.binary and not exact
    candidates = _candidates("imgsearch.embeddings", enc_id, dim, "%(rerank)s" if binary else "%(k)s", binary)
    if plan.variants:  # each image once, at the distance of its closest vector
        augmented = _candidates(
            "imgsearch.augmented_embeddings", enc_id, dim, f"%(k)s * {int(plan.variants)}"
        )
        candidates = f"""
            SELECT DISTINCT ON (u.id) u.* FROM (({candidates}) UNION ALL ({augmented})) u
            ORDER BY u.id, u.distance"""
    sql = f"""
        SELECT d.id, d.path, d.path_bytes, d.metadata, d.distance, d.width, d.height, d.mtime
        FROM ({candidates}) d
        WHERE %(max_dist)s::float8 IS NULL OR d.distance <= %(max_dist)s::float8
        ORDER BY d.distance, d.id
        LIMIT %(k)s"""
    return [Neighbour(*row) for row in conn.execute(sql, params).fetchall()]


_FILTERS = """
          AND (%(filter)s::jsonb IS NULL OR i.metadata @> %(filter)s::jsonb)
          AND (%(folder)s::text IS NULL OR starts_with(i.path, %(folder)s::text))
          AND (%(since)s::float8 IS NULL OR i.mtime >= %(since)s::float8)
          AND (%(until)s::float8 IS NULL OR i.mtime <= %(until)s::float8)"""


def _distance(dim: int) -> str:
    """Cosine distance of embedding `e` to the query, in the form the ANN indexes serve."""
    return f"(e.embedding::halfvec({dim})) <=> %(v)b::halfvec({dim})"


def _exact_if_few(conn: psycopg.Connection, enc_id: int, dim: int, params: dict) -> list[Neighbour] | None:
    """The exact k nearest of the rows that pass the filters, when fewer than FILTER_EXACT_ROWS
    do (one statement: the matching rows are gathered once, counted, and sorted by distance);
    None when more do."""
    rows = conn.execute(
        f"""WITH matching AS MATERIALIZED (
                SELECT e.image_id FROM imgsearch.embeddings e JOIN imgsearch.images i ON i.id = e.image_id
                WHERE e.encoder_id = {int(enc_id)} AND e.image_id IS DISTINCT FROM %(exclude)s{_FILTERS}
                LIMIT {FILTER_EXACT_ROWS}),
            few AS (SELECT count(*) < {FILTER_EXACT_ROWS} AS ok FROM matching)
            SELECT few.ok, d.* FROM few LEFT JOIN LATERAL (
                SELECT i.id, i.path, i.path_bytes, i.metadata, x.distance, i.width, i.height, i.mtime
                FROM matching m
                JOIN imgsearch.embeddings e ON e.image_id = m.image_id AND e.encoder_id = {int(enc_id)}
                JOIN imgsearch.images i ON i.id = m.image_id
                CROSS JOIN LATERAL (SELECT {_distance(dim)} AS distance) x
                WHERE few.ok AND (%(max_dist)s::float8 IS NULL OR x.distance <= %(max_dist)s::float8)
                ORDER BY x.distance + 0.0, i.id  -- + 0.0: never the ANN index, a sort of the few
                LIMIT %(k)s) d ON true""",
        params,
    ).fetchall()
    if not rows[0][0]:
        return None
    return [Neighbour(*row[1:]) for row in rows if row[1] is not None]


def _candidates(table: str, enc_id: int, dim: int, limit: str, binary: bool = False) -> str:
    """The nearest rows of one vector table, filtered (the cast lets per-encoder indexes serve
    it). An image with N vectors in `table` can fill N places, hence the caller's limit. With
    `binary`, the rows come in Hamming order of their binary-quantised vectors (the binary index
    serves it); the caller re-ranks them by `distance`."""
    distance = _distance(dim)
    order = distance
    if binary:
        order = (
            f"binary_quantize(e.embedding::halfvec({dim}))::bit({dim})"
            f" <~> binary_quantize(%(v)b::halfvec({dim}))"
        )
    return f"""
        SELECT i.id, i.path, i.path_bytes, i.metadata, i.width, i.height, i.mtime, {distance} AS distance
        FROM {table} e JOIN imgsearch.images i ON i.id = e.image_id
        WHERE e.encoder_id = {int(enc_id)} AND e.image_id IS DISTINCT FROM %(exclude)s{_FILTERS}
        ORDER BY {order}
        LIMIT {limit}"""


# The vectors a search starts from


def require_vectors(conn: psycopg.Connection, enc_id: int | None, name: str) -> int:
    """`enc_id`, if the encoder has vectors stored; else NoVectors."""
    has = enc_id is not None and scalar(
        conn.execute("SELECT EXISTS (SELECT 1 FROM imgsearch.embeddings WHERE encoder_id = %s)", (enc_id,))
    )
    if enc_id is None or not has:
        raise NoVectors(
            f"No images are indexed with {name} yet: run `imgsearch ingest PATH --model {name}` first."
        )
    return enc_id


def indexed_vector(conn: psycopg.Connection, image_id: int, name: str) -> tuple[int, int, HalfVector]:
    """(encoder id, dimension, stored vector) of an indexed image for the encoder `name`."""
    if conn.execute("SELECT 1 FROM imgsearch.images WHERE id = %s", (image_id,)).fetchone() is None:
        raise ImageNotFound(f"No indexed image has id {image_id}.")
    enc = store.encoder_by_name(conn, name)
    if enc is None:
        from imgsearch.encoding.registry import dimension_of

        dimension_of(name)  # an encoder imgsearch does not know is UnknownEncoder, as for uploads
    row = (
        enc
        and conn.execute(
            "SELECT embedding FROM imgsearch.embeddings WHERE image_id = %s AND encoder_id = %s",
            (image_id, enc.id),
        ).fetchone()
    )
    if enc is None or not row:
        raise NoVectors(
            f"Image {image_id} has no {name} vector: run `imgsearch ingest` with --model {name} on it first."
        )
    return enc.id, enc.dimension, row[0]


def with_feedback(conn: psycopg.Connection, enc_id: int, vector, options: QueryOptions) -> np.ndarray:
    """unit(q) + mean(positive vectors) - mean(negative vectors), made unit length."""
    q = np.asarray(vector.to_numpy() if isinstance(vector, HalfVector) else vector, np.float32)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    for ids, sign in ((options.positive_ids, 1.0), (options.negative_ids, -1.0)):
        if not ids:
            continue
        rows = conn.execute(
            "SELECT embedding FROM imgsearch.embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
            (enc_id, list(ids)),
        ).fetchall()
        if len(rows) != len(set(ids)):
            raise ImgsearchError("Feedback names images that have no vector for this model.")
        q = q + sign * np.mean([r[0].to_numpy().astype(np.float32) for r in rows], axis=0)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise ImgsearchError("The positive and negative examples cancel the query out.")
    return q / norm


def image_location(conn: psycopg.Connection, image_id: int) -> str:
    """Where an indexed image is (see sources.location_of)."""
    return location_of(
        *one(conn.execute("SELECT path, path_bytes FROM imgsearch.images WHERE id = %s", (image_id,)))
    )
