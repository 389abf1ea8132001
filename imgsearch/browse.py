"""Browsing the collection: pages of images (keyset pagination), one image, counts.

A page ends with an opaque cursor; the next page starts strictly after it, so inserting or
deleting images never repeats or skips one that was already there.
"""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import asdict, dataclass

import psycopg

from imgsearch.db.connection import one, scalar
from imgsearch.errors import ImgsearchError, NotFound
from imgsearch.sources import location_of

MAX_PAGE = 500
SORTS = ("path", "date")


@dataclass
class ImageRecord:
    """What other programs see of an indexed image (the HTTP API's `Image`, less thumb_url)."""

    id: int
    path: str
    width: int | None
    height: int | None
    format: str | None
    byte_size: int
    sha256: str
    mtime: float | None
    indexed_at: float
    metadata: dict


@dataclass
class ImageInfo(ImageRecord):
    location: str = ""  # to open the file (see sources); not for display

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "location"}


@dataclass
class ImagePage:
    """One page of the collection; `next_cursor` asks for the next (None: this is the last)."""

    images: list[ImageInfo]
    next_cursor: str | None
    total: int | None = None  # images matching the filters (counted for the first page only)


@dataclass
class EncoderStats:
    name: str
    dimension: int
    vectors: int


@dataclass
class CollectionStats:
    images: int
    encoders: list[EncoderStats]
    ann_indexes: list[str]  # index names
    last_indexed_at: float | None  # epoch seconds

    def to_json(self) -> dict:
        return asdict(self)


_COLUMNS = (
    "id, path, width, height, format, byte_size, sha256, mtime,"
    " extract(epoch FROM indexed_at), metadata, path_bytes"
)


def _info(row: tuple) -> ImageInfo:
    image_id, path, width, height, fmt, size, sha256, mtime, indexed_at, metadata, exact = row
    return ImageInfo(
        image_id,
        path,
        width,
        height,
        fmt,
        size,
        sha256,
        mtime,
        float(indexed_at),
        metadata or {},
        location_of(path, exact),
    )


def _encode_cursor(key: object, image_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, image_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[object, int]:
    try:
        key, image_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # exact types: JSON's true/false are ints to Python, and no bigint either
        if type(image_id) is not int or not -(2**63) <= image_id < 2**63:
            raise ValueError
        if not (key is None or type(key) in (str, float, int)):
            raise ValueError
        if type(key) in (float, int) and not math.isfinite(key):  # JSON's 1e999, NaN, Infinity
            raise ValueError
        return key, image_id
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError, OverflowError):
        raise ImgsearchError("That page cursor is not one this server gave out.") from None


def list_images(
    conn: psycopg.Connection,
    *,
    folder: str | None = None,
    since: float | None = None,
    until: float | None = None,
    sort: str = "path",
    descending: bool = False,
    after: str | None = None,
    limit: int = 100,
) -> ImagePage:
    """A page of images and the cursor of the next page (None at the end)."""
    if sort not in SORTS:
        raise ImgsearchError(f"sort must be one of {', '.join(SORTS)}.")
    if not 1 <= limit <= MAX_PAGE:
        raise ImgsearchError(f"limit must be between 1 and {MAX_PAGE}.")
    key_sql = "path" if sort == "path" else "coalesce(mtime, 0)"
    op, order = ("<", "DESC") if descending else (">", "ASC")
    params: dict = {
        "folder": folder.rstrip("/") + "/" if folder else None,
        "since": since,
        "until": until,
        "limit": limit + 1,
        "key": None,
        "id": None,
    }
    page_filter = ""
    if after:
        params["key"], params["id"] = _decode_cursor(after)
        wanted = str if sort == "path" else (int, float)
        if not isinstance(params["key"], wanted):
            raise ImgsearchError("That page cursor belongs to another sort order.")
        cast = "text" if sort == "path" else "float8"
        page_filter = f"AND ({key_sql}, id) {op} (%(key)s::{cast}, %(id)s::bigint)"
    rows = conn.execute(
        f"""SELECT {_COLUMNS}, {key_sql} {_FILTERED}
              {page_filter}
            ORDER BY {key_sql} {order}, id {order} LIMIT %(limit)s""",
        params,
    ).fetchall()
    page = [_info(row[:-1]) for row in rows[:limit]]
    cursor = _encode_cursor(rows[limit - 1][-1], rows[limit - 1][0]) if len(rows) > limit else None
    total = None
    if not after:
        total = len(page) if cursor is None else scalar(conn.execute(f"SELECT count(*) {_FILTERED}", params))
        if total == 0 and folder and not _folder_known(conn, params["folder"]):
            raise NotFound(f"No indexed image is in the folder {folder}.")
    return ImagePage(page, cursor, total)


_FILTERED = """FROM imgsearch.images
    WHERE (%(folder)s::text IS NULL OR starts_with(path, %(folder)s::text))
      AND (%(since)s::float8 IS NULL OR mtime >= %(since)s::float8)
      AND (%(until)s::float8 IS NULL OR mtime <= %(until)s::float8)"""


def _folder_known(conn: psycopg.Connection, prefix: str) -> bool:
    query = "SELECT EXISTS (SELECT FROM imgsearch.images WHERE starts_with(path, %s))"
    return bool(scalar(conn.execute(query, (prefix,))))


@dataclass
class Folder:
    path: str  # displayed absolute path
    name: str  # relative to the collection's root folder ("" for the root itself)
    images: int  # images in it and below it
    depth: int  # folders between it and the root


def collection_root(conn: psycopg.Connection) -> str | None:
    """The deepest folder that holds every indexed local file (None when there is none): the
    common prefix of the smallest and the largest path holds for every path between them."""
    first, last = one(
        conn.execute(
            "SELECT min(path), max(path) FROM imgsearch.images"
            " WHERE path NOT LIKE 'http://%%' AND path NOT LIKE 'https://%%'"
        )
    )
    if first is None:
        return None
    prefix = os.path.commonprefix([first, last])
    return prefix[: prefix.rfind("/")] or "/"


def resolve_folder(conn: psycopg.Connection, folder: str | None) -> str | None:
    """A folder filter as given (absolute, or a URL prefix), or relative to the collection's
    root folder (`2024/summer`)."""
    if not folder or folder.startswith("/") or "://" in folder:
        return folder
    root = collection_root(conn)
    return f"{root.rstrip('/')}/{folder.strip('/')}" if root else folder


def folders(conn: psycopg.Connection) -> list[Folder]:
    """Every folder that holds indexed files (directly or below), with the number of images in
    and below it, in path order; names are relative to the collection's root folder."""
    direct: dict[str, int] = dict(
        conn.execute(
            r"""SELECT regexp_replace(path, '/[^/]*$', ''), count(*) FROM imgsearch.images
                WHERE path NOT LIKE 'http://%%' AND path NOT LIKE 'https://%%' GROUP BY 1"""
        ).fetchall()
    )
    root = collection_root(conn)
    if root is None:
        return []
    totals: dict[str, int] = {}
    for folder, count in direct.items():
        path = folder or "/"
        while True:
            totals[path] = totals.get(path, 0) + count
            if path == root or len(path) <= len(root):
                break
            path = path[: path.rfind("/")] or "/"
    shown = []
    for path in sorted(totals):
        name = path[len(root) :].strip("/")
        shown.append(Folder(path, name, totals[path], name.count("/") + 1 if name else 0))
    return shown


def get_image(conn: psycopg.Connection, image_id: int) -> ImageInfo | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM imgsearch.images WHERE id = %s", (image_id,)).fetchone()
    return _info(row) if row else None


def delete_image(conn: psycopg.Connection, image_id: int) -> bool:
    """Forget one image (its vectors go with it); False when there was none."""
    return conn.execute("DELETE FROM imgsearch.images WHERE id = %s", (image_id,)).rowcount > 0


def stats(conn: psycopg.Connection) -> CollectionStats:
    """Images, encoders with their vector counts, and when the last image was indexed."""
    images, last = one(
        conn.execute("SELECT count(*), extract(epoch FROM max(indexed_at)) FROM imgsearch.images")
    )
    encoders = [
        EncoderStats(name, dim, n)
        for name, dim, n in conn.execute(
            """SELECT c.name, c.dimension, count(e.image_id) FROM imgsearch.encoders c
           LEFT JOIN imgsearch.embeddings e ON e.encoder_id = c.id
           GROUP BY c.id ORDER BY c.name, c.id"""
        )
    ]
    indexes = [
        name
        for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'imgsearch'"
            " AND (indexname LIKE 'embeddings_hnsw_%' OR indexname LIKE 'embeddings_ivfflat_%')"
        )
    ]
    return CollectionStats(images, encoders, indexes, float(last) if last is not None else None)
