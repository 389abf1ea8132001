"""SQL reads and writes of imgsearch's tables (the only module that writes rows)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from pgvector import HalfVector

from .encoders import EncoderIdentity


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
class ErrorRow:
    location: str
    kind: str
    message: str


def encoder_id(conn: psycopg.Connection, identity: EncoderIdentity, create: bool = True) -> int | None:
    """The id of this exact encoder identity, registering it when `create`."""
    select = ("SELECT id FROM imgsearch.encoders WHERE name = %s AND weights = %s"
              " AND preprocessing = %s")
    key = (identity.name, identity.weights, identity.preprocessing)
    row = conn.execute(select, key).fetchone()
    if row or not create:
        return row[0] if row else None
    conn.execute(
        "INSERT INTO imgsearch.encoders (name, dimension, weights, preprocessing)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (identity.name, identity.dimension, identity.weights, identity.preprocessing),
    )
    conn.commit()
    return conn.execute(select, key).fetchone()[0]


def known_images(conn: psycopg.Connection, enc_id: int, locations: Sequence[str]) -> dict[str, KnownImage]:
    rows = conn.execute(
        """SELECT i.path, i.id, i.byte_size, i.mtime, i.sha256, e.image_id IS NOT NULL, i.metadata
           FROM imgsearch.images i
           LEFT JOIN imgsearch.embeddings e ON e.image_id = i.id AND e.encoder_id = %s
           WHERE i.path = ANY(%s)""",
        (enc_id, list(locations)),
    ).fetchall()
    return {r[0]: KnownImage(*r[1:]) for r in rows}


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


def write_batch(conn: psycopg.Connection, enc_id: int, rows: Sequence[ImageRow],
                vectors: Sequence[np.ndarray | HalfVector], errors: Sequence[ErrorRow] = (),
                refreshed: Sequence[ImageRow] = ()) -> None:
    """One transaction (`conn` must be in autocommit mode): upsert images, replace their
    vectors, record errors.

    `refreshed` rows are unchanged content whose size/mtime/metadata are brought up to date.
    """
    with conn.transaction():
        if rows:
            ids = _upsert_images(conn, rows)
            image_ids = [ids[r.location] for r in rows]
            conn.execute(
                "DELETE FROM imgsearch.embeddings WHERE encoder_id = %s AND image_id = ANY(%s)",
                (enc_id, image_ids),
            )
            with conn.cursor().copy(
                "COPY imgsearch.embeddings (image_id, encoder_id, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int4", "halfvec"])
                for image_id, vector in zip(image_ids, vectors, strict=True):
                    if not isinstance(vector, HalfVector):
                        vector = HalfVector(np.asarray(vector, dtype=np.float32))
                    copy.write_row((image_id, enc_id, vector))
        if refreshed:
            _upsert_images(conn, refreshed)
        if errors:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO imgsearch.ingest_errors (path, kind, message, encoder_id)"
                    " VALUES (%s, %s, %s, %s)",
                    [(e.location, e.kind, e.message, enc_id) for e in errors],
                )


def _upsert_images(conn: psycopg.Connection, rows: Sequence[ImageRow]) -> dict[str, int]:
    result = conn.execute(
        """INSERT INTO imgsearch.images AS i
               (path, sha256, byte_size, width, height, format, mtime, metadata)
           SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[], %s::int[],
                                %s::text[], %s::float8[], %s::jsonb[])
           ON CONFLICT (path) DO UPDATE SET
               sha256 = excluded.sha256, byte_size = excluded.byte_size,
               width = coalesce(excluded.width, i.width),
               height = coalesce(excluded.height, i.height),
               format = coalesce(excluded.format, i.format),
               mtime = excluded.mtime, indexed_at = now(),
               metadata = CASE WHEN excluded.metadata = '{}'::jsonb THEN i.metadata
                               ELSE excluded.metadata END
           RETURNING i.path, i.id""",
        (
            [r.location for r in rows], [r.sha256 for r in rows], [r.byte_size for r in rows],
            [r.width for r in rows], [r.height for r in rows], [r.format for r in rows],
            [r.mtime for r in rows], [json.dumps(r.metadata) for r in rows],
        ),
    ).fetchall()
    return dict(result)


def vectors_for_paths(conn: psycopg.Connection, enc_id: int,
                      locations: Sequence[str]) -> dict[str, tuple[int, np.ndarray]]:
    """(image id, float32 vector) of this encoder for each location that has one."""
    rows = conn.execute(
        """SELECT i.path, i.id, e.embedding
           FROM imgsearch.images i JOIN imgsearch.embeddings e ON e.image_id = i.id
           WHERE e.encoder_id = %s AND i.path = ANY(%s)""",
        (enc_id, list(locations)),
    ).fetchall()
    return {path: (image_id, vector.to_numpy().astype(np.float32)) for path, image_id, vector in rows}
