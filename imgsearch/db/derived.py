"""Derived encoders in the database: registering one, filling its vectors from the base
encoder's stored vectors, finding those that depend on a base, and dropping encoders."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
import psycopg

from imgsearch.db import store
from imgsearch.db.connection import scalar
from imgsearch.encoding.encoder import EncoderIdentity
from imgsearch.encoding.projection import Projection, from_bytes
from imgsearch.errors import ImgsearchError

FILL_CHUNK = 2000

_cache: dict[str, Projection] = {}  # digest -> projection (their weights are megabytes)
_cache_lock = threading.Lock()


@dataclass
class DerivedRow:
    encoder_id: int
    name: str
    base_id: int
    base_name: str
    kind: str
    digest: str
    details: dict


def _projection(conn: psycopg.Connection, encoder_id: int, digest: str) -> Projection:
    with _cache_lock:
        if digest in _cache:
            return _cache[digest]
    data = scalar(
        conn.execute("SELECT projection FROM imgsearch.derived_encoders WHERE encoder_id = %s", (encoder_id,))
    )
    projection = from_bytes(bytes(data))
    with _cache_lock:
        _cache[digest] = projection
    return projection


_SELECT = """SELECT d.encoder_id, c.name, d.base_encoder_id, b.name, d.kind, d.digest, d.details
             FROM imgsearch.derived_encoders d
             JOIN imgsearch.encoders c ON c.id = d.encoder_id
             JOIN imgsearch.encoders b ON b.id = d.base_encoder_id"""


def by_name(conn: psycopg.Connection, name: str) -> tuple[DerivedRow, Projection] | None:
    """The newest derived encoder called `name`, and its projection."""
    row = conn.execute(_SELECT + " WHERE c.name = %s ORDER BY d.created_at DESC LIMIT 1", (name,)).fetchone()
    if row is None:
        return None
    derived = DerivedRow(*row)
    return derived, _projection(conn, derived.encoder_id, derived.digest)


def dependants(conn: psycopg.Connection, base_id: int) -> list[tuple[int, Projection]]:
    """(encoder id, projection) of every encoder derived from `base_id`."""
    rows = conn.execute(
        "SELECT encoder_id, digest FROM imgsearch.derived_encoders WHERE base_encoder_id = %s", (base_id,)
    ).fetchall()
    return [(enc_id, _projection(conn, enc_id, digest)) for enc_id, digest in rows]


def register(
    conn: psycopg.Connection, identity: EncoderIdentity, base_id: int, projection: Projection, details: dict
) -> int:
    """Record the derived encoder (idempotent for the same identity); its encoder id."""
    enc_id = store.encoder_id(conn, identity)
    conn.execute(
        """INSERT INTO imgsearch.derived_encoders
               (encoder_id, base_encoder_id, kind, digest, projection, details)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (encoder_id) DO NOTHING""",
        (enc_id, base_id, projection.kind, projection.digest(), projection.to_bytes(), json.dumps(details)),
    )
    conn.commit()
    return enc_id


def fill(conn: psycopg.Connection, enc_id: int, base_id: int, projection: Projection) -> int:
    """Compute the derived vectors of every image that has a base vector and no derived one
    (no image is decoded again); how many were written. Commits every chunk."""
    written, last = 0, -1
    while True:
        rows = conn.execute(
            """SELECT e.image_id, e.embedding FROM imgsearch.embeddings e
               WHERE e.encoder_id = %s AND e.image_id > %s AND NOT EXISTS (
                   SELECT 1 FROM imgsearch.embeddings d
                   WHERE d.encoder_id = %s AND d.image_id = e.image_id)
               ORDER BY e.image_id LIMIT %s""",
            (base_id, last, enc_id, FILL_CHUNK),
        ).fetchall()
        if not rows:
            conn.commit()
            return written
        ids = [r[0] for r in rows]
        vectors = projection.apply(np.stack([r[1].to_numpy() for r in rows]))
        store.copy_vectors(conn, enc_id, ids, vectors)
        conn.commit()
        written += len(rows)
        last = ids[-1]


def drop_encoder(conn: psycopg.Connection, name: str, cascade: bool = False) -> list[str]:
    """Delete every identity of the encoder `name` and its vectors; the names dropped.

    Refused while encoders derived from it exist, unless `cascade` (they are dropped too)."""
    ids = [
        r[0] for r in conn.execute("SELECT id FROM imgsearch.encoders WHERE name = %s", (name,)).fetchall()
    ]
    if not ids:
        raise ImgsearchError(f"No encoder named {name!r} in this database.")
    derived = conn.execute(
        "SELECT c.id, c.name FROM imgsearch.derived_encoders d JOIN imgsearch.encoders c"
        " ON c.id = d.encoder_id WHERE d.base_encoder_id = ANY(%s)",
        (ids,),
    ).fetchall()
    if derived and not cascade:
        names = ", ".join(sorted({n for _, n in derived}))
        raise ImgsearchError(
            f"{name} has derived encoders computed from its vectors ({names}): "
            "drop those first, or use --cascade to drop them too."
        )
    dropped = []
    with conn.transaction():
        for enc_id, derived_name in derived:
            dropped += drop_encoder(conn, derived_name, cascade=True) if enc_id not in ids else []
        conn.execute("DELETE FROM imgsearch.embeddings WHERE encoder_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM imgsearch.encoders WHERE id = ANY(%s)", (ids,))
    return [*dropped, name]
