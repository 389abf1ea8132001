"""Fine-tuned encoders in the database: their whole network's weights, so that every client
of the database can load them (written once to the model cache, named by their sha256)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import psycopg

from imgsearch.db import store
from imgsearch.db.connection import scalar
from imgsearch.encoding.encoder import EncoderIdentity
from imgsearch.errors import ImgsearchError
from imgsearch.safe_files import checked_digest, inside, write_atomically


@dataclass
class FinetunedRow:
    encoder_id: int
    name: str
    base_name: str
    sha256: str
    details: dict

    @property
    def size(self) -> int:
        return int(self.details.get("size", 224))


def register(
    conn: psycopg.Connection, identity: EncoderIdentity, base_name: str, weights: bytes, details: dict
) -> int:
    """Record the encoder and its weights (idempotent for the same identity); its id."""
    enc_id = store.encoder_id(conn, identity)
    conn.execute(
        """INSERT INTO imgsearch.finetuned_encoders (encoder_id, base_name, sha256, weights, details)
           VALUES (%s, %s, %s, %s, %s) ON CONFLICT (encoder_id) DO NOTHING""",
        (enc_id, base_name, hashlib.sha256(weights).hexdigest(), weights, json.dumps(details)),
    )
    conn.commit()
    return enc_id


def by_name(conn: psycopg.Connection, name: str) -> FinetunedRow | None:
    """The newest fine-tuned encoder called `name` (without its weights)."""
    row = conn.execute(
        """SELECT f.encoder_id, e.name, f.base_name, f.sha256, f.details
           FROM imgsearch.finetuned_encoders f JOIN imgsearch.encoders e ON e.id = f.encoder_id
           WHERE e.name = %s ORDER BY f.created_at DESC LIMIT 1""",
        (name,),
    ).fetchone()
    return FinetunedRow(*row) if row else None


def weights_file(conn: psycopg.Connection, row: FinetunedRow, folder: Path) -> Path:
    """The weights as a file in `folder`, named by their sha256: written from the database the
    first time, and only when the bytes hash to the digest the row records (a row whose digest
    is not a sha256, or whose weights do not match it, is refused: nothing is written)."""
    digest = checked_digest(row.sha256, f"The recorded digest of the fine-tuned encoder {row.name!r}")
    path = inside(folder, f"{digest}.pt")
    if path.is_file() and _sha256(path) == digest:
        return path
    data = bytes(
        scalar(
            conn.execute(
                "SELECT weights FROM imgsearch.finetuned_encoders WHERE encoder_id = %s", (row.encoder_id,)
            )
        )
    )
    if hashlib.sha256(data).hexdigest() != digest:
        raise ImgsearchError(
            f"The weights of the fine-tuned encoder {row.name!r} in the database do not match their "
            "recorded sha256: refused (train it again)."
        )
    write_atomically(path, data)
    return path


def _sha256(path: Path) -> str:
    from imgsearch.encoding.catalog import file_sha256

    return file_sha256(path)
