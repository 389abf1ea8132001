"""Search: the k images most similar to a file, a URL, an indexed image (`id:<n>`), words (with
a CLIP-style encoder), or a picture and words together."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch import config
from imgsearch.db import store
from imgsearch.db.connection import Database, connect, one, scalar
from imgsearch.db.schema import as_database
from imgsearch.encoding.decode import DecodeLimits, decode_image
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImageDecodeError, ImageNotFound, ImgsearchError
from imgsearch.sources import display_path, fetch, location_of

MAX_K = 10_000
MAX_TEXT = 1_000  # characters of a text query (the model reads its first ~75 tokens anyway)
DEFAULT_TEXT_WEIGHT = 0.5  # of words beside a picture: unit((1 - w) picture + w words)


HIT_FIELDS = ("rank", "image_id", "path", "similarity", "distance", "metadata", "width", "height", "mtime")


@dataclass
class Match:
    rank: int
    image_id: int
    path: str
    similarity: float
    distance: float
    metadata: dict = field(default_factory=dict)
    location: str | None = field(default=None, repr=False)  # to open the file (see sources)
    width: int | None = None
    height: int | None = None
    mtime: float | None = None

    @property
    def title(self) -> str | None:
        return self.metadata.get("title") if isinstance(self.metadata, dict) else None

    def to_json(self) -> dict:
        """The hit as `search --json` and the HTTP API show it (`location` is not shown)."""
        return {name: getattr(self, name) for name in HIT_FIELDS}


@dataclass
class SearchResult:
    query: str
    model: str
    results: list[Match]
    query_path: str | None = None  # the indexed image's path for an `id:` query
    text: str | None = None  # the words searched by, if any
    picture: bool = True  # whether a picture was part of the query

    def to_json(self) -> dict:
        """The `search --json` shape documented in the README."""
        return {"query": self.query, "model": self.model, "results": [m.to_json() for m in self.results]}


class NoVectors(ImgsearchError):
    """The encoder has no vectors in the database yet."""


class QueryImageError(ImgsearchError):
    """The query image cannot be fetched or decoded; `kind` says why (see ImageDecodeError)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_image_id(query: str) -> int | None:
    if not query.startswith("id:"):
        return None
    try:
        image_id = int(query[3:])
    except ValueError as exc:
        raise ImgsearchError(f"{query!r}: expected id:<image id>, for example id:42") from exc
    if not 1 <= image_id < 2**63:
        raise ImageNotFound(f"No indexed image has id {image_id}.")
    return image_id


@dataclass(frozen=True)
class TextQuery:
    """Words to search by, alone or beside a picture (`weight`: their share of the query)."""

    text: str
    weight: float = DEFAULT_TEXT_WEIGHT

    def __post_init__(self) -> None:
        check_text(self.text, self.weight)


def check_text(text: str, weight: float = DEFAULT_TEXT_WEIGHT) -> None:
    """Refuse empty or overlong text and a weight outside 0..1."""
    if not isinstance(text, str) or not text.strip():
        raise ImgsearchError('The text query is empty: type a few words, e.g. "a red bicycle".')
    if len(text) > MAX_TEXT:
        raise ImgsearchError(f"The text query is {len(text):,} characters; at most {MAX_TEXT:,} are read.")
    if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise ImgsearchError(f"The text weight must be between 0 and 1 (got {weight}).")


def search(
    query: str | bytes | None,
    k: int = 5,
    *,
    text: TextQuery | None = None,
    encoder: Encoder | None = None,
    model: str | None = None,
    min_similarity: float | None = None,
    options: QueryOptions | None = None,
    database: Database | str | None = None,
    conn: psycopg.Connection | None = None,
    settings: config.Settings | None = None,
) -> SearchResult:
    """The `k` nearest indexed images by cosine similarity, best first.

    `query` is a file path, an http(s) URL, image bytes, or `id:<n>` (an indexed image, not re-encoded;
    the image itself is left out of its results, and `model` or `encoder.name` says whose
    vectors to use). A file or URL is encoded with `encoder` (default: `model` is loaded).
    `text` searches by words with a CLIP-style encoder's text tower: alone (`query` None), or
    mixed with the picture, unit((1 - w) unit(picture) + w unit(words)).
    `conn` reuses an open connection (its transaction is ended afterwards). `settings` (default:
    the environment's, loaded for this one-shot call; an Index passes its own) give the default
    model and the limits on reading the query.
    """
    settings = settings if settings is not None else config.load()
    check_search_options(k, min_similarity)
    if query is None and text is None:
        raise ImgsearchError("Search by an image, by words (--text), or both.")
    image_id = None if query is None or isinstance(query, bytes) else parse_image_id(query)
    if (image_id is None or text is not None) and encoder is None:
        from imgsearch.encoding.registry import get_encoder

        encoder = get_encoder(model or settings.model, settings=settings)
    name = model or settings.model
    if conn is None:
        with connect(as_database(database, settings)) as own:
            return _search(own, query, image_id, text, k, encoder, name, min_similarity, options, settings)
    try:
        return _search(conn, query, image_id, text, k, encoder, name, min_similarity, options, settings)
    finally:
        conn.rollback()  # the index knobs are transaction-local; nothing was written


def _search(
    conn: psycopg.Connection,
    query: str | bytes | None,
    image_id: int | None,
    text: TextQuery | None,
    k: int,
    encoder: Encoder | None,
    model: str,
    min_similarity: float | None,
    options: QueryOptions | None,
    settings: config.Settings,
) -> SearchResult:
    words = None if text is None else encode_text_query(text.text, encoder)
    vector: HalfVector | None = None
    if image_id is not None:
        name = encoder.name if encoder is not None else model
        enc_id, dim, vector = _indexed_vector(conn, image_id, name)
    elif encoder is None:
        raise ImgsearchError("Searching by an image needs an encoder.")
    else:
        name, dim = encoder.name, encoder.dimension
        enc_id = _require_vectors(conn, store.find_encoder_id(conn, encoder.identity), name)
        if query is not None:
            vector = HalfVector(encode_query(query, encoder, settings))
    if words is not None and text is not None:
        vector = HalfVector(words if vector is None else _mixed(vector, words, text.weight))
    assert vector is not None
    if options is not None and (options.positive_ids or options.negative_ids):
        vector = HalfVector(_with_feedback(conn, enc_id, vector, options))
    rows = nearest(
        conn, enc_id, dim, vector, k, exclude_id=image_id, min_similarity=min_similarity, options=options
    )
    matches = [
        Match(
            rank,
            r.image_id,
            r.path,
            1.0 - r.distance,
            r.distance,
            r.metadata or {},
            location_of(r.path, r.path_bytes),
            r.width,
            r.height,
            r.mtime,
        )
        for rank, r in enumerate(rows, start=1)
    ]
    query_path = None
    if image_id is not None:
        query_path = location_of(
            *one(conn.execute("SELECT path, path_bytes FROM imgsearch.images WHERE id = %s", (image_id,)))
        )
    shown = "(uploaded image)" if isinstance(query, bytes) else query
    if text is not None:
        shown = f"{shown} + {text.text!r} ({text.weight:g})" if shown else text.text
    said = text.text if text else None
    return SearchResult(shown or "", name, matches, query_path, said, query is not None)


def _mixed(picture: HalfVector, words: np.ndarray, weight: float) -> np.ndarray:
    """unit((1 - weight) unit(picture) + weight unit(words))."""
    p = picture.to_numpy().astype(np.float32)
    p = p / max(float(np.linalg.norm(p)), 1e-12)
    mixed = (1.0 - weight) * p + weight * words
    norm = float(np.linalg.norm(mixed))
    if norm < 1e-6:
        raise ImgsearchError("The picture and the words cancel each other out: change the text weight.")
    return mixed / norm


def encode_text_query(text: str, encoder: Encoder | None) -> np.ndarray:
    """The vector of words in `encoder`'s space (its CLIP text tower)."""
    check_text(text)
    if encoder is None or encoder.text is None:
        raise reads_pictures_only(encoder.name if encoder is not None else "this encoder")
    return encoder.text.encode_text([text])[0]


def reads_pictures_only(name: str) -> ImgsearchError:
    from imgsearch.encoding.clip_catalog import CLIP_MODELS

    return ImgsearchError(
        f"{name} reads pictures only: searching by words needs a model with a text tower "
        f"({', '.join(CLIP_MODELS)}, a model of your own from `imgsearch models pull NAME --from "
        "FOLDER`, or open-clip with --weights FOLDER)."
    )


def _with_feedback(conn: psycopg.Connection, enc_id: int, vector, options: QueryOptions) -> np.ndarray:
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


def check_search_options(k: int, min_similarity: float | None) -> None:
    """Refuse a k outside 1..MAX_K and a minimum similarity outside -1..1 (or NaN)."""
    if not 1 <= k <= MAX_K:
        raise ImgsearchError(f"k must be between 1 and {MAX_K:,} (got {k}).")
    if min_similarity is not None and not (math.isfinite(min_similarity) and -1.0 <= min_similarity <= 1.0):
        raise ImgsearchError(
            f"The minimum similarity must be a number between -1 and 1 (got {min_similarity})."
        )


def encode_query(query: str | bytes, encoder: Encoder, settings: config.Settings) -> np.ndarray:
    """The vector of a query image: a file, an http(s) URL, or image bytes (read and decoded
    within the settings' limits)."""
    try:
        data = query if isinstance(query, bytes) else fetch(query, settings)
        decoded = decode_image(data, min_size=encoder.min_decode_size, limits=DecodeLimits.of(settings))
    except ImageDecodeError as exc:
        shown = "the uploaded image" if isinstance(query, bytes) else display_path(query)
        raise QueryImageError(f"Query {shown}: {exc}", exc.kind) from exc
    return encoder.encode([decoded.image])[0]


def _require_vectors(conn: psycopg.Connection, enc_id: int | None, name: str) -> int:
    """`enc_id`, if the encoder has vectors stored; else NoVectors."""
    has = enc_id is not None and scalar(
        conn.execute("SELECT EXISTS (SELECT 1 FROM imgsearch.embeddings WHERE encoder_id = %s)", (enc_id,))
    )
    if enc_id is None or not has:
        raise NoVectors(
            f"No images are indexed with {name} yet: run `imgsearch ingest PATH --model {name}` first."
        )
    return enc_id


def _indexed_vector(conn: psycopg.Connection, image_id: int, name: str) -> tuple[int, int, HalfVector]:
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
