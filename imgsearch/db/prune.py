"""Removing images whose files are gone (their vectors go with them, by cascade)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import psycopg

from imgsearch.db.connection import Database, connect
from imgsearch.db.schema import as_database
from imgsearch.sources import location_of

DELETE_CHUNK = 1000


def find_gone(
    conn: psycopg.Connection, prefixes: Sequence[str] | None = None, exact: bool = False
) -> list[int]:
    """Ids of indexed local files that no longer exist, optionally only under folders given
    as display paths (with `exact`, also the files at exactly those paths)."""
    folders = None if prefixes is None else [p.rstrip("/") + "/" for p in prefixes]
    if exact and prefixes is not None and folders is not None:
        folders += list(prefixes)
    with conn.transaction(), conn.cursor(name="gone_scan") as cur:
        cur.itersize = 5000
        cur.execute(
            """SELECT id, path, path_bytes FROM imgsearch.images i
               WHERE path NOT LIKE 'http://%%' AND path NOT LIKE 'https://%%'
                 AND (%(folders)s::text[] IS NULL OR EXISTS (
                      SELECT 1 FROM unnest(%(folders)s::text[]) f
                      WHERE starts_with(i.path, f) AND (right(f, 1) = '/' OR i.path = f)))""",
            {"folders": folders},
        )
        return [image_id for image_id, path, exact in cur if not os.path.exists(location_of(path, exact))]


def delete_images(conn: psycopg.Connection, ids: Sequence[int]) -> int:
    """Delete images by id (with their vectors), a chunk per transaction."""
    for start in range(0, len(ids), DELETE_CHUNK):
        with conn.transaction():
            conn.execute(
                "DELETE FROM imgsearch.images WHERE id = ANY(%s)", (list(ids[start : start + DELETE_CHUNK]),)
            )
    return len(ids)


def prune(database: Database | str | None = None) -> int:
    """Delete indexed local files that no longer exist; return how many were removed."""
    db = as_database(database)
    with connect(db, autocommit=True) as conn:
        return delete_images(conn, find_gone(conn))
