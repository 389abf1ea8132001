"""SQL reads and writes of the images, their vectors and ingest errors: what ingest writes and
looks up. (The collection tools, derived encoders and partitions keep their own tables in
their own modules.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from pgvector import HalfVector

from imgsearch.db.connection import scalar
from imgsearch.encoding.encoder import EncoderIdentity
from imgsearch.encoding.projection import Projection
from imgsearch.sources import Failure, display_path, path_bytes


@dataclass
class KnownImage:
    id: int
    byte_size: int
    mtime: float | None
    sha256: str
    has_vector: bool
    metadata: dict


@dataclass
class ImageRow:
    location: str
    sha256: str
    byte_size: int
    width: int | None
    height: int | None
    format: str | None
    mtime: float | None
    metadata: dict = field(default_factory=dict)


@dataclass
class Written:
    """What one `write_batch` did: locations inserted (not there before), and (filled by the
    ingest writer) the rows the database refused, with the reason."""

    inserted: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # location -> reason


def storable_text(text: str) -> str:
    """`text` with what PostgreSQL text cannot hold (NUL, lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


_SELECT_ENCODER = "SELECT id FROM imgsearch.encoders WHERE name = %s AND weights = %s AND preprocessing = %s"


def find_encoder_id(conn: psycopg.Connection, identity: EncoderIdentity) -> int | None:
    """The id of this exact encoder identity, if it is registered."""
    row = conn.execute(_SELECT_ENCODER, (identity.name, identity.weights, identity.preprocessing)).fetchone()
    return row[0] if row else None


def encoder_id(conn: psycopg.Connection, identity: EncoderIdentity) -> int:
    """The id of this exact encoder identity, registered if it is not yet."""
    found = find_encoder_id(conn, identity)
    if found is not None:
        return found
    conn.execute(
        "INSERT INTO imgsearch.encoders (name, dimension, weights, preprocessing)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (identity.name, identity.dimension, identity.weights, identity.preprocessing),
    )
    conn.commit()
    return scalar(conn.execute(_SELECT_ENCODER, (identity.name, identity.weights, identity.preprocessing)))


INGEST_LOCK = "imgsearch:ingest"  # with the encoder id, the key of an ingest run's lock


def take_ingest_turn(conn: psycopg.Connection, enc_id: int) -> bool:
    """Take the lock one ingest with this encoder holds for its whole run, unless another
    session holds it; the lock is released when this connection closes."""
    return bool(scalar(conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), %s)", (INGEST_LOCK, enc_id))))


def _by_location(rows, locations: Sequence[str]) -> dict[str, tuple]:
    """Match rows `(path, path_bytes, ...)` to the locations they store exactly."""
    wanted = {(display_path(loc), path_bytes(loc)): loc for loc in locations}
    found = {}
    for path, exact, *rest in rows:
        location = wanted.get((path, bytes(exact) if exact is not None else None))
        if location is not None:
            found[location] = tuple(rest)
    return found


@dataclass
class EncoderRow:
    id: int
    name: str
    dimension: int


def encoder_by_name(conn: psycopg.Connection, name: str) -> EncoderRow | None:
    """The newest registered identity of the encoder called `name` (as the SQL functions
    resolve it)."""
    row = conn.execute(
        "SELECT id, name, dimension FROM imgsearch.encoders WHERE name = %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (name,),
    ).fetchone()
    return EncoderRow(*row) if row else None


def indexed_encoder_names(conn: psycopg.Connection) -> list[str]:
    """Names of the encoders that have at least one stored vector."""
    return [
        name
        for (name,) in conn.execute(
            """SELECT DISTINCT c.name FROM imgsearch.encoders c
               WHERE EXISTS (SELECT 1 FROM imgsearch.embeddings e WHERE e.encoder_id = c.id)
               ORDER BY c.name"""
        )
    ]


def known_images(
    conn: psycopg.Connection, enc_id: int, locations: Sequence[str], augment: int = 0
) -> dict[str, KnownImage]:
    """What is indexed at these locations; `has_vector` also requires `augment` augmented
    vectors when that is above 0."""
    rows = conn.execute(
        """SELECT i.path, i.path_bytes, i.id, i.byte_size, i.mtime, i.sha256,
                  e.image_id IS NOT NULL AND (%s = 0 OR (
                      SELECT count(*) FROM imgsearch.augmented_embeddings a
                      WHERE a.image_id = i.id AND a.encoder_id = %s) >= %s),
                  i.metadata
           FROM imgsearch.images i
           LEFT JOIN imgsearch.embeddings e ON e.image_id = i.id AND e.encoder_id = %s
           WHERE i.path = ANY(%s)""",
        (augment, enc_id, augment, enc_id, [display_path(loc) for loc in locations]),
    ).fetchall()
    return {loc: KnownImage(*rest) for loc, rest in _by_location(rows, locations).items()}


def vectors_by_sha(conn: psycopg.Connection, enc_id: int, shas: Sequence[str]) -> dict[str, HalfVector]:
    """Stored vectors of this encoder for content already indexed under another path."""
    if not shas:
        return {}
    rows = conn.execute(
        """SELECT DISTINCT ON (i.sha256) i.sha256, e.embedding
           FROM imgsearch.images i JOIN imgsearch.embeddings e ON e.image_id = i.id
           WHERE e.encoder_id = %s AND i.sha256 = ANY(%s)""",
        (enc_id, list(shas)),
    ).fetchall()
    return dict(rows)


def write_batch(
    conn: psycopg.Connection,
    enc_id: int,
    rows: Sequence[ImageRow],
    vectors: Sequence[np.ndarray | HalfVector],
    errors: Sequence[Failure] = (),
    refreshed: Sequence[ImageRow] = (),
    derived: Sequence[tuple[int, Projection]] = (),
    augmented: Sequence[Sequence[np.ndarray]] | None = None,
) -> Written:
    """One transaction (`conn` must be in autocommit mode): upsert images, replace their
    vectors (and those of the `derived` encoders computed from them, and their augmented
    vectors: `augmented[i]` for `rows[i]`, none when not given), record errors. A file keeps
    one error row per encoder, its newest, and none once it is written fine.

    `refreshed` rows are unchanged content whose size/mtime/metadata are brought up to date.
    """
    written = Written()
    with conn.transaction():
        if rows:
            ids = _upsert_images(conn, rows)
            written.inserted = {loc for loc, (_, inserted) in ids.items() if inserted}
            extras = augmented if augmented is not None else [()] * len(rows)
            kept = [
                (ids[r.location][0], v, x)
                for r, v, x in zip(rows, vectors, extras, strict=True)
                if r.location in ids
            ]
            image_ids = [image_id for image_id, _, _ in kept]
            vectors = [v for _, v, _ in kept]
            _replace_augmented(conn, enc_id, [(image_id, x) for image_id, _, x in kept])
            base = (
                np.stack([v.to_numpy() if isinstance(v, HalfVector) else v for v in vectors])
                if derived and image_ids
                else None
            )
            for target, projection in [(enc_id, None), *derived]:
                conn.execute(
                    "DELETE FROM imgsearch.embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
                    (target, image_ids),
                )
                if projection is None:
                    copy_vectors(conn, target, image_ids, vectors)
                elif base is not None:
                    copy_vectors(conn, target, image_ids, projection.apply(base))
        if refreshed:
            _upsert_images(conn, refreshed)
        settled = [r.location for r in (*rows, *refreshed)] + [e.location for e in errors]
        if settled:  # a file's older error rows: its new one follows, if any
            conn.execute(
                "DELETE FROM imgsearch.ingest_errors WHERE encoder_id = %s AND path = ANY(%s)",
                (enc_id, [display_path(location) for location in settled]),
            )
        if errors:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO imgsearch.ingest_errors (path, kind, message, encoder_id)"
                    " VALUES (%s, %s, %s, %s)",
                    [
                        (display_path(e.location), storable_text(e.kind), storable_text(e.message), enc_id)
                        for e in errors
                    ],
                )
    return written


def _replace_augmented(
    conn: psycopg.Connection, enc_id: int, items: Sequence[tuple[int, Sequence[np.ndarray]]]
) -> None:
    conn.execute(
        "DELETE FROM imgsearch.augmented_embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
        (enc_id, [i for i, _ in items]),
    )
    if not any(extra for _, extra in items):
        return
    with conn.cursor().copy(
        "COPY imgsearch.augmented_embeddings"
        " (image_id, encoder_id, variant, embedding)"
        " FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int4", "int2", "halfvec"])
        for image_id, extra in items:
            for variant, vector in enumerate(extra, start=1):
                copy.write_row((image_id, enc_id, variant, HalfVector(np.asarray(vector, dtype=np.float32))))


def copy_vectors(
    conn: psycopg.Connection,
    enc_id: int,
    image_ids: Sequence[int],
    vectors: Sequence[np.ndarray | HalfVector] | np.ndarray,
) -> None:
    """COPY one encoder's vectors (the images must have none of this encoder yet)."""
    with conn.cursor().copy(
        "COPY imgsearch.embeddings (image_id, encoder_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int4", "halfvec"])
        for image_id, vector in zip(image_ids, vectors, strict=True):
            if not isinstance(vector, HalfVector):
                vector = HalfVector(np.asarray(vector, dtype=np.float32))
            copy.write_row((image_id, enc_id, vector))


def _upsert_images(conn: psycopg.Connection, rows: Sequence[ImageRow]) -> dict[str, tuple[int, bool]]:
    """Insert or update rows; (image id, inserted) by location. An image is its exact name
    (`path` with `path_bytes`): two names that display alike are two images."""
    result = conn.execute(
        """INSERT INTO imgsearch.images AS i
               (path, path_bytes, sha256, byte_size, width, height, format, mtime, metadata)
           SELECT * FROM unnest(%s::text[], %s::bytea[], %s::text[], %s::bigint[], %s::int[],
                                %s::int[], %s::text[], %s::float8[], %s::jsonb[])
           ON CONFLICT (path, (coalesce(path_bytes, ''::bytea))) DO UPDATE SET
               sha256 = excluded.sha256, byte_size = excluded.byte_size,
               width = coalesce(excluded.width, i.width),
               height = coalesce(excluded.height, i.height),
               format = coalesce(excluded.format, i.format),
               mtime = excluded.mtime, indexed_at = now(),
               metadata = CASE WHEN excluded.metadata = '{}'::jsonb THEN i.metadata
                               ELSE excluded.metadata END
           RETURNING i.path, i.path_bytes, i.id, i.xmax = 0""",
        (
            [display_path(r.location) for r in rows],
            [path_bytes(r.location) for r in rows],
            [r.sha256 for r in rows],
            [r.byte_size for r in rows],
            [r.width for r in rows],
            [r.height for r in rows],
            [r.format for r in rows],
            [r.mtime for r in rows],
            [json.dumps(r.metadata) for r in rows],
        ),
    ).fetchall()
    return _by_location(result, [r.location for r in rows])


def vectors_for_paths(
    conn: psycopg.Connection, enc_id: int, locations: Sequence[str]
) -> dict[str, tuple[int, np.ndarray]]:
    """(image id, float32 vector) of this encoder for each location that has one."""
    rows = conn.execute(
        """SELECT i.path, i.path_bytes, i.id, e.embedding
           FROM imgsearch.images i JOIN imgsearch.embeddings e ON e.image_id = i.id
           WHERE e.encoder_id = %s AND i.path = ANY(%s)""",
        (enc_id, [display_path(loc) for loc in locations]),
    ).fetchall()
    return {
        loc: (image_id, vector.to_numpy().astype(np.float32))
        for loc, (image_id, vector) in _by_location(rows, locations).items()
    }
