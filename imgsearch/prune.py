"""Removing images whose files are gone (their vectors go with them, by cascade)."""

from __future__ import annotations

import os

from .database import Database, connect, open_database

DELETE_CHUNK = 1000


def prune(database: Database | str | None = None) -> int:
    """Delete indexed local files that no longer exist; return how many were removed."""
    db = database if isinstance(database, Database) else open_database(database)
    removed = 0
    with connect(db, autocommit=True) as conn:
        with conn.transaction(), conn.cursor(name="prune_scan") as cur:
            cur.itersize = 5000
            cur.execute("SELECT id, path FROM imgsearch.images"
                        " WHERE path NOT LIKE 'http://%' AND path NOT LIKE 'https://%'")
            gone = [image_id for image_id, path in cur if not os.path.exists(path)]
        for start in range(0, len(gone), DELETE_CHUNK):
            with conn.transaction():
                conn.execute("DELETE FROM imgsearch.images WHERE id = ANY(%s)",
                             (gone[start:start + DELETE_CHUNK],))
            removed += len(gone[start:start + DELETE_CHUNK])
    return removed
