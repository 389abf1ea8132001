"""The nearest-neighbour SQL: the k nearest stored vectors of one encoder by cosine distance
(pgvector), through the encoder's ANN index with the setting `index tune` chose, filtered by
metadata, folder and time (searched exactly when a filter leaves few rows), a binary-quantised
index's candidates re-ranked at full precision; and the vectors a search starts from: an indexed
image's, and a query moved by relevance feedback."""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch.db.connection import one
from imgsearch.db.nearest_sql import FILTERS, distance_sql, search_sql
from imgsearch.encoding.encoder import EncoderIdentity
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


class Tuning(NamedTuple):
    """What the database says about an encoder's searches: the setting `index tune` chose
    (HNSW ef_search, IVFFlat probes, a binary-quantised index's candidates re-ranked), whether
    its index is binary-quantised, and how many augmented vectors an image has at most."""

    ef_search: int | None = None
    probes: int | None = None
    rerank: int | None = None
    binary: bool = False
    variants: int = 0


@dataclass(frozen=True)
class Stored:
    """An encoder's stored vectors as a search finds them, in one statement (`lookup`): the
    encoder's id and dimension (None: no such encoder), whether it has vectors, its `Tuning`;
    and for a search by an indexed image, whether the image exists, where it is, and its vector."""

    enc_id: int | None
    dim: int | None
    has_vectors: bool
    tuning: Tuning
    image_found: bool = False
    image_location: str | None = None
    image_vector: HalfVector | None = None


_ENCODER_BY = {  # which encoder a lookup is for: the newest registered one that matches
    "identity": "c.name = %(name)s AND c.weights = %(weights)s AND c.preprocessing = %(preprocessing)s",
    "name": "c.name = %(name)s",  # as the SQL functions resolve a name
    "id": "c.id = %(enc)s",
}
# Whether the encoder has vectors is one entry of the encoder_id index (ORDER BY ... LIMIT 1):
# an EXISTS could be planned as a sequential scan that reads every other encoder's rows first.
_LOOKUP = """
    SELECT c.id, c.dimension,
           coalesce(c.id = (
               SELECT e.encoder_id FROM imgsearch.embeddings e
               WHERE e.encoder_id >= c.id ORDER BY e.encoder_id LIMIT 1), false),
           s.ef_search, s.probes, s.rerank,
           c.id IS NOT NULL
             AND to_regclass(format('imgsearch.embeddings_hnsw_bit_enc%%s', c.id)) IS NOT NULL,
           (SELECT max(a.variant) FROM imgsearch.augmented_embeddings a
            WHERE a.encoder_id = c.id){image}{also}
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT c.id, c.dimension FROM imgsearch.encoders c WHERE {where}
        ORDER BY c.created_at DESC, c.id DESC LIMIT 1) c ON true
    LEFT JOIN imgsearch.search_settings s ON s.encoder_id = c.id{image_join}"""
_IMAGE = ", i.id IS NOT NULL, i.path, i.path_bytes, q.embedding"
_IMAGE_JOIN = """
    LEFT JOIN imgsearch.images i ON i.id = %(image)s
    LEFT JOIN imgsearch.embeddings q ON q.image_id = i.id AND q.encoder_id = c.id"""


_LOOKUPS = {  # (which encoder, with an image): the statement, its text made once
    (by, image): _LOOKUP.format(
        where=where, image=_IMAGE if image else "", image_join=_IMAGE_JOIN if image else "", also=""
    )
    for by, where in _ENCODER_BY.items()
    for image in (False, True)
}

# Each connection's last lookup of each encoder (see `lookup_and_nearest`): a guess of what the
# next lookup will say, never used unchecked.
_looked_up: weakref.WeakKeyDictionary[psycopg.Connection, dict[tuple, Stored]] = weakref.WeakKeyDictionary()


def _lookup_statement(
    identity: EncoderIdentity | None, name: str | None, enc_id: int | None, image_id: int | None
) -> tuple[str, dict[str, object], tuple]:
    """The lookup's statement, its parameters, and what it looks up (a key of `_looked_up`)."""
    params: dict[str, object] = {"image": image_id}
    if identity is not None:
        by, params["name"], params["weights"] = "identity", identity.name, identity.weights
        params["preprocessing"] = identity.preprocessing
        key: tuple = (by, identity.name, identity.weights, identity.preprocessing)
    elif name is not None:
        by, params["name"], key = "name", name, ("name", name)
    elif enc_id is not None:
        by, params["enc"], key = "id", enc_id, ("id", enc_id)
    else:
        raise ValueError("lookup needs an encoder identity, name or id")
    return _LOOKUPS[by, image_id is not None], params, key


def _stored(row: tuple, image: bool = False) -> Stored:
    found, dim, has, ef, probes, rerank, binary, variants = row[:8]
    stored = Stored(found, dim, bool(has), Tuning(ef, probes, rerank, bool(binary), int(variants or 0)))
    if image:
        image_found, path, raw_path, vector = row[8:12]
        location = location_of(path, raw_path) if image_found else None
        return replace(stored, image_found=bool(image_found), image_location=location, image_vector=vector)
    return stored


def _searched_as(stored: Stored) -> Stored:
    """What of a lookup a search runs by (not the image's own fields)."""
    return Stored(stored.enc_id, stored.dim, stored.has_vectors, stored.tuning)


def _remember(conn: psycopg.Connection, key: tuple, stored: Stored) -> None:
    _looked_up.setdefault(conn, {})[key] = _searched_as(stored)


def lookup(
    conn: psycopg.Connection,
    *,
    identity: EncoderIdentity | None = None,
    name: str | None = None,
    enc_id: int | None = None,
    image_id: int | None = None,
) -> Stored:
    """Everything a search needs to know before it runs, in one round trip: the encoder of this
    exact `identity`, else the newest one called `name`, else the one of id `enc_id`; with
    `image_id`, that indexed image and its vector too. A prepared statement (no rollback
    between searches forgets it: see `connection.implicit_transactions`)."""
    sql, params, key = _lookup_statement(identity, name, enc_id, image_id)
    stored = _stored(one(conn.execute(sql, params, prepare=True)), image_id is not None)
    _remember(conn, key, stored)
    return stored


def looked_up_before(
    conn: psycopg.Connection, *, identity: EncoderIdentity | None = None, name: str | None = None
) -> Stored | None:
    """What the last lookup of this encoder on `conn` found (None: none yet); a guess, which
    `lookup_and_nearest` checks before it uses any row found with it."""
    return _looked_up.get(conn, {}).get(_lookup_statement(identity, name, None, None)[2])


def lookup_and_nearest(
    conn: psycopg.Connection,
    vector: HalfVector,
    k: int,
    *,
    identity: EncoderIdentity | None = None,
    name: str | None = None,
    exclude_id: int | None = None,
    min_similarity: float | None = None,
    options: QueryOptions | None = None,
) -> tuple[Stored, list[Neighbour] | None]:
    """`lookup`, and with it `nearest` in the same round trip where it can: the rows, or None
    when the caller must still search (`nearest` with the lookup's tuning).

    The search goes with the lookup (one pipeline, one implicit transaction: the lookup, which
    also sets the search's settings, then the query) when this connection looked the encoder
    up before and the search needs nothing else first (no filter: those count their rows
    first; no relevance feedback: it reads vectors first). It runs as the last lookup said
    (encoder, dimension, tuned setting, binary index, augmented vectors), and its rows are
    kept only if the lookup made just before it in the same pipeline says the same: a changed
    tuning (`index tune`, `index create`, `index drop`, by any process) throws them away and
    the caller searches again, so no result ever comes from a stale setting (the search thrown
    away did run: the first one after a binary index is dropped scans without it, once per
    connection)."""
    options = options or QueryOptions()
    sql, params, key = _lookup_statement(identity, name, None, None)
    guess = _looked_up.get(conn, {}).get(key)
    if guess is None or guess.enc_id is None or guess.dim is None or not _alongside(guess, vector, options):
        return lookup(conn, identity=identity, name=name), None
    plan = _plan(guess.tuning, options, k)
    query = _params(vector, k, plan, exclude_id, min_similarity, options)
    settings = dict(zip(_SETTING_PARAMS, _values(plan, exact=False), strict=True))
    with conn.pipeline():
        looked = conn.execute(_LOOKUPS_SETTING[key[0]], params | settings, prepare=True)
        found = conn.execute(
            search_sql(guess.enc_id, guess.dim, plan.binary, plan.variants, False), query, prepare=True
        )
    stored = _stored(one(looked))
    _looked_up[conn][key] = stored
    if stored != guess:
        return stored, None  # the tuning changed since: searched again with the new one
    return stored, [Neighbour(*row) for row in found.fetchall()]


def _alongside(guess: Stored, vector: HalfVector, options: QueryOptions) -> bool:
    """Whether a search can go with the lookup: the encoder had vectors of the query's dimension,
    and the search needs nothing else first (a filter counts its rows, feedback reads vectors,
    an exact search is asked for), and pipelines are there."""
    return (
        guess.has_vectors
        and guess.dim == vector.dimensions()
        and not (options.where or options.folder or options.exact)
        and options.since is None
        and options.until is None
        and not (options.positive_ids or options.negative_ids)
        and psycopg.Pipeline.is_supported()
    )


@dataclass
class _Plan:
    """How one search runs: index settings (tuned by `index tune`, or the query's own), whether
    the encoder's index is binary-quantised, and how many augmented vectors an image has."""

    ef_search: int | None
    probes: int | None
    rerank: int | None
    binary: bool
    variants: int


def _plan(tuning: Tuning, options: QueryOptions, k: int) -> _Plan:
    ef, probes, rerank, binary, variants = tuning
    if binary:
        rerank = max(k, options.ef_search or rerank or 100)
        ef = min(rerank, MAX_EF_SEARCH)  # an iterative scan goes on past ef_search
    if ef and not options.ef_search:
        ef = max(ef, min(k, MAX_EF_SEARCH))  # a tuned ef_search, never below k (pgvector caps at 1000)
    return _Plan(
        options.ef_search or ef,
        options.probes or probes,
        rerank,
        binary,
        variants if options.augmented else 0,
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
    *,
    tuning: Tuning | None = None,
) -> list[Neighbour]:
    """The k nearest vectors of one encoder (cosine distance), filtered by `options`.

    The cast to halfvec(dim) matches the per-encoder expression indexes, so they serve it, with
    the ef_search / probes `index tune` chose (a query's own wins). A filter that matches few
    rows (under FILTER_EXACT_ROWS) is searched exactly over those rows; otherwise pgvector's
    iterative index scans keep going until k rows qualify, and should they still come back
    short, the search is repeated exactly: k rows whenever k exist. `tuning`: the encoder's, as
    `lookup` found it a moment ago (default: looked up here).
    """
    options = options or QueryOptions()
    if tuning is None:
        tuning = lookup(conn, enc_id=enc_id).tuning
    plan = _plan(tuning, options, k)
    params = _params(vector, k, plan, exclude_id, min_similarity, options)
    filtered = _filtered(params)
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


def _params(
    vector: HalfVector,
    k: int,
    plan: _Plan,
    exclude_id: int | None,
    min_similarity: float | None,
    options: QueryOptions,
) -> dict[str, object]:
    """The parameters of a search's statements."""
    return {
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


def _filtered(params: dict) -> bool:
    return any(params[p] is not None for p in ("filter", "folder", "since", "until"))


# Every setting a search relies on, set each time (pgvector's defaults where none is chosen):
# one search's settings, transaction-local, never steer the next in its transaction. Plans are
# made for each search's own values (k, the filters it has), as they were before its
# statements were prepared.
_SETTINGS = (
    "hnsw.iterative_scan",
    "ivfflat.iterative_scan",
    "hnsw.ef_search",
    "ivfflat.probes",
    "enable_indexscan",
    "plan_cache_mode",
)
_SET = "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in _SETTINGS)
_SETTING_PARAMS = [f"setting{i}" for i in range(len(_SETTINGS))]
_LOOKUPS_SETTING = {  # a lookup that also sets a search's settings, for the query after it
    by: _LOOKUP.format(
        where=where,
        image="",
        image_join="",
        also="".join(
            f",\n           set_config('{name}', %({param})s, true)"
            for name, param in zip(_SETTINGS, _SETTING_PARAMS, strict=True)
        ),
    )
    for by, where in _ENCODER_BY.items()
}


def _run(
    conn: psycopg.Connection, enc_id: int, dim: int, plan: _Plan, exact: bool, params: dict
) -> list[Neighbour]:
    """The settings and the search, sent together (one round trip in pipeline mode: with
    `connection.implicit_transactions`, the settings last until the search's end; a libpq too
    old for pipelines sends them one after the other in a transaction of their own)."""
    values = _values(plan, exact)
    sql = search_sql(enc_id, dim, plan.binary and not exact, plan.variants, _filtered(params))
    together = conn.pipeline() if psycopg.Pipeline.is_supported() else conn.transaction()
    with together:
        conn.execute(_SET, values, prepare=True)
        cursor = conn.execute(sql, params, prepare=True)
    return [Neighbour(*row) for row in cursor.fetchall()]


def _values(plan: _Plan, exact: bool) -> list[str]:
    """The values of `_SETTINGS` for a search."""
    return [
        "relaxed_order",
        "relaxed_order",
        str(int(plan.ef_search or DEFAULT_EF_SEARCH)),
        str(int(plan.probes or DEFAULT_PROBES)),
        "off" if exact else "on",
        "force_custom_plan",
    ]


def _exact_if_few(conn: psycopg.Connection, enc_id: int, dim: int, params: dict) -> list[Neighbour] | None:
    """The exact k nearest of the rows that pass the filters, when fewer than FILTER_EXACT_ROWS
    do (one statement: the matching rows are gathered once, counted, and sorted by distance);
    None when more do."""
    rows = conn.execute(
        f"""WITH matching AS MATERIALIZED (
                SELECT e.image_id FROM imgsearch.embeddings e JOIN imgsearch.images i ON i.id = e.image_id
                WHERE e.encoder_id = {int(enc_id)} AND e.image_id IS DISTINCT FROM %(exclude)s{FILTERS}
                LIMIT {FILTER_EXACT_ROWS}),
            few AS (SELECT count(*) < {FILTER_EXACT_ROWS} AS ok FROM matching)
            SELECT few.ok, d.* FROM few LEFT JOIN LATERAL (
                SELECT i.id, i.path, i.path_bytes, i.metadata, x.distance, i.width, i.height, i.mtime
                FROM matching m
                JOIN imgsearch.embeddings e ON e.image_id = m.image_id AND e.encoder_id = {int(enc_id)}
                JOIN imgsearch.images i ON i.id = m.image_id
                CROSS JOIN LATERAL (SELECT {distance_sql(dim)} AS distance) x
                WHERE few.ok AND (%(max_dist)s::float8 IS NULL OR x.distance <= %(max_dist)s::float8)
                ORDER BY x.distance + 0.0, i.id  -- + 0.0: never the ANN index, a sort of the few
                LIMIT %(k)s) d ON true""",
        params,
        prepare=False,  # planned for each search's own filters, never a generic plan
    ).fetchall()
    if not rows[0][0]:
        return None
    return [Neighbour(*row[1:]) for row in rows if row[1] is not None]


# The vectors a search starts from


def require_vectors(stored: Stored, name: str) -> tuple[int, int]:
    """(encoder id, dimension) of a looked-up encoder that has vectors stored; else NoVectors."""
    if stored.enc_id is None or stored.dim is None or not stored.has_vectors:
        raise NoVectors(
            f"No images are indexed with {name} yet: run `imgsearch ingest PATH --model {name}` first."
        )
    return stored.enc_id, stored.dim


def indexed_vector(conn: psycopg.Connection, image_id: int, name: str) -> Stored:
    """The encoder `name`'s stored vectors (`lookup`) with the indexed image's own vector and
    location; ImageNotFound, UnknownEncoder or NoVectors when there is no such image, encoder
    or vector."""
    stored = lookup(conn, name=name, image_id=image_id)
    if not stored.image_found:
        raise ImageNotFound(f"No indexed image has id {image_id}.")
    if stored.enc_id is None:
        from imgsearch.encoding.registry import dimension_of

        dimension_of(name)  # an encoder imgsearch does not know is UnknownEncoder, as for uploads
    if stored.enc_id is None or stored.image_vector is None:
        raise NoVectors(
            f"Image {image_id} has no {name} vector: run `imgsearch ingest` with --model {name} on it first."
        )
    return stored


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
