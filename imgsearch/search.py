"""Search: the k images most similar to a file, a URL, an indexed image (`id:<n>`), words (with
a CLIP-style encoder), or a picture and words together: the query made a vector, the answer made
matches (the SQL that finds the neighbours is `imgsearch.db.nearest`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch import config
from imgsearch.db.connection import Database, connect, implicit_transactions
from imgsearch.db.nearest import (
    Neighbour,
    QueryOptions,
    Stored,
    indexed_vector,
    looked_up_before,
    lookup,
    lookup_and_nearest,
    nearest,
    require_vectors,
    with_feedback,
)
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
        """The `search --json` shape documented in docs/guide/cli.md."""
        return {"query": self.query, "model": self.model, "results": [m.to_json() for m in self.results]}


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
    query: str | bytes | Sequence[float] | np.ndarray | Any | None,
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
    A vector one already has (a list, a numpy array, a pgvector Vector or HalfVector) is
    searched as it is (`search_vector`).
    `text` searches by words with a CLIP-style encoder's text tower: alone (`query` None), or
    mixed with the picture, unit((1 - w) unit(picture) + w unit(words)).
    `conn` reuses an open connection (its transaction is ended afterwards). `settings` (default:
    the environment's, loaded for this one-shot call; an Index passes its own) give the default
    model and the limits on reading the query.
    """
    settings = settings if settings is not None else config.load()
    check_search_options(k, min_similarity)
    if query is not None and not isinstance(query, str | bytes):
        if text is not None:
            raise ImgsearchError("A vector query cannot be mixed with words: add their vectors first.")
        return _on_connection(
            _by_vector(query, k, encoder, model or settings.model, min_similarity, options),
            conn,
            database,
            settings,
        )
    if query is None and text is None:
        raise ImgsearchError("Search by an image, by words (--text), or both.")
    image_id = None if query is None or isinstance(query, bytes) else parse_image_id(query)
    if (image_id is None or text is not None) and encoder is None:
        from imgsearch.encoding.registry import get_encoder

        encoder = get_encoder(model or settings.model, settings=settings)
    name = model or settings.model
    return _on_connection(
        lambda c: _search(c, query, image_id, text, k, encoder, name, min_similarity, options, settings),
        conn,
        database,
        settings,
    )


T = TypeVar("T")


def _on_connection(
    run: Callable[[psycopg.Connection], T],
    conn: psycopg.Connection | None,
    database: Database | str | None,
    settings: config.Settings,
) -> T:
    """`run(conn)` with implicit transactions (`connection.implicit_transactions`: no BEGIN or
    ROLLBACK round trips, the index knobs set for each search alone); on `conn`, whose
    transaction, if it has one, is ended afterwards, else on a connection of its own."""
    if conn is None:
        with connect(as_database(database, settings), autocommit=True) as own:
            return run(own)
    try:
        with implicit_transactions(conn):
            return run(conn)
    finally:
        conn.rollback()  # a caller's transaction: the index knobs are transaction-local


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
    query_path = None
    identity = None  # of the encoder, when the search looks it up with the query
    if image_id is not None:
        name = encoder.name if encoder is not None else model
        stored = indexed_vector(conn, image_id, name)
        vector, query_path = stored.image_vector, stored.image_location
    elif encoder is None:
        raise ImgsearchError("Searching by an image needs an encoder.")
    else:
        name, identity = encoder.name, encoder.identity
        known = looked_up_before(conn, identity=identity)
        if known is None or not known.has_vectors:  # said before the query is read and encoded
            require_vectors(lookup(conn, identity=identity), name)
        if query is not None:
            vector = HalfVector(encode_query(query, encoder, settings))
    if words is not None and text is not None:
        vector = HalfVector(words if vector is None else _mixed(vector, words, text.weight))
    assert vector is not None
    rows = None
    if identity is not None:
        stored, rows = lookup_and_nearest(
            conn, vector, k, identity=identity, min_similarity=min_similarity, options=options
        )
    matches = _matches(conn, stored, name, vector, k, image_id, min_similarity, options, rows)
    shown = "(uploaded image)" if isinstance(query, bytes) else query
    if text is not None:
        shown = f"{shown} + {text.text!r} ({text.weight:g})" if shown else text.text
    said = text.text if text else None
    return SearchResult(shown or "", name, matches, query_path, said, query is not None)


def _matches(
    conn: psycopg.Connection,
    stored: Stored,
    name: str,
    vector: HalfVector,
    k: int,
    exclude_id: int | None,
    min_similarity: float | None,
    options: QueryOptions | None,
    rows: list[Neighbour] | None = None,
) -> list[Match]:
    """The k nearest images to `vector` among the stored vectors of one encoder (`stored`, as
    `lookup` found them), relevance feedback applied first; `rows`: found already (by
    `lookup_and_nearest`)."""
    enc_id, dim = require_vectors(stored, name)
    if rows is None:
        if options is not None and (options.positive_ids or options.negative_ids):
            vector = HalfVector(with_feedback(conn, enc_id, vector, options))
        rows = nearest(
            conn,
            enc_id,
            dim,
            vector,
            k,
            exclude_id=exclude_id,
            min_similarity=min_similarity,
            options=options,
            tuning=stored.tuning,
        )
    return [
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


VECTOR_QUERY = "(vector)"  # SearchResult.query of a search by a vector
NOT_NUMBERS = "The query vector must be numbers: a list or a one-dimensional numpy array of floats."


def search_vector(vector: Sequence[float] | np.ndarray | Any, k: int = 5, **kwargs: Any) -> SearchResult:
    """The `k` indexed images nearest `vector`, a vector one already has, best first: `search`
    after its encoding, with the same filters, relevance feedback, results and keyword
    arguments (but `text`).

    Whose vectors are searched: `encoder`'s (its exact identity) when given, else those of the
    newest encoder called `model` (default: the settings' model) in the database, as the SQL
    functions resolve a name; nothing is loaded. `vector` (a list, a numpy array, a pgvector
    Vector or HalfVector) must have that encoder's dimension, finite values and a length above
    zero, else ImgsearchError says so; a vector not of unit length is scaled to it (cosine
    similarity does not depend on length, and the half precision of the stored vectors would
    lose very long or short ones).
    """
    if isinstance(vector, str | bytes) or vector is None:
        raise ImgsearchError(NOT_NUMBERS)
    return search(vector, k, **kwargs)


def _by_vector(
    vector: Sequence[float] | np.ndarray | Any,
    k: int,
    encoder: Encoder | None,
    model: str,
    min_similarity: float | None,
    options: QueryOptions | None,
) -> Callable[[psycopg.Connection], SearchResult]:
    """The search by a vector, checked here and run on the connection it is given."""
    numbers = query_vector(vector)
    name = encoder.name if encoder is not None else model
    if encoder is not None:
        check_dimension(numbers, encoder.dimension, name)

    def run(c: psycopg.Connection) -> SearchResult:
        vector = HalfVector(numbers)
        by = {"identity": encoder.identity} if encoder is not None else {"name": name}
        stored, rows = lookup_and_nearest(c, vector, k, min_similarity=min_similarity, options=options, **by)
        _, dim = require_vectors(stored, name)
        check_dimension(numbers, dim, name)
        matches = _matches(c, stored, name, vector, k, None, min_similarity, options, rows)
        return SearchResult(VECTOR_QUERY, name, matches, picture=False)

    return run


def query_vector(vector: Sequence[float] | np.ndarray | Any) -> np.ndarray:
    """`vector` as float32 numbers, scaled to unit length unless it nearly is (a vector encoded
    here is left exactly as it is); ImgsearchError unless it is one vector of finite numbers,
    not all zero."""
    if hasattr(vector, "to_numpy"):  # pgvector's Vector and HalfVector
        vector = vector.to_numpy()
    if isinstance(vector, np.ndarray) and vector.dtype == np.float32:
        numbers = vector
    else:
        try:
            numbers = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ImgsearchError(NOT_NUMBERS) from exc
    if numbers.ndim != 1:
        hint = " (one row of a batch? pass vectors[0])" if numbers.ndim == 2 and len(numbers) == 1 else ""
        raise ImgsearchError(f"The query vector must be one-dimensional; it has shape {numbers.shape}{hint}.")
    if numbers.size == 0:
        raise ImgsearchError("The query vector is empty.")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # too long, short: scaled below
        squares = float(np.dot(numbers, numbers))  # NaN or inf with NaN or inf values
    if abs(squares - 1.0) <= 2e-3:  # unit length, within 1e-3 (and so every number finite)
        return numbers.astype(np.float32, copy=False)
    if not np.isfinite(numbers).all():
        raise ImgsearchError("The query vector has NaN or infinite values: every number must be finite.")
    peak = float(np.abs(numbers).max())
    if peak == 0.0:
        raise ImgsearchError("The query vector is all zeros: it has no direction to search in.")
    scaled = numbers.astype(np.float64) / peak  # no overflow or underflow on the way to unit length
    return (scaled / np.linalg.norm(scaled)).astype(np.float32)


def check_dimension(vector: np.ndarray, dim: int, name: str) -> None:
    """Refuse a query vector whose dimension is not the encoder's."""
    if len(vector) != dim:
        raise ImgsearchError(
            f"The query vector has {len(vector):,} dimensions; {name}'s vectors have {dim:,}."
        )


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
