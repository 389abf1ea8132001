"""Helpers for the hostile-input tests: small real photos, a local HTTP server, SQL checks."""

from __future__ import annotations

import functools
import http.server
import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from PIL import Image

from imgsearch.db.connection import Database

from .photos import PHOTO_NAMES, sample_photos


def small_photo(i: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """The i-th real photo (turned by i // n quarter turns, so each i differs), made small."""
    names = sorted(PHOTO_NAMES)
    img = sample_photos()[names[i % len(names)]].resize(size)
    return img.rotate(90 * (i // len(names) % 4))


@functools.lru_cache(maxsize=256)
def jpeg_bytes(i: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """`small_photo(i, size)` as a JPEG (the same bytes each time: made once)."""
    buf = io.BytesIO()
    small_photo(i, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_photos(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"photo{i:04d}.jpg"
        path.write_bytes(jpeg_bytes(i))
        paths.append(path)
    return paths


def rows(db: Database, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(sql, params).fetchall()


def stored_files(db: Database) -> dict[bytes, dict]:
    """Exact path bytes -> metadata of every image that has a vector."""
    return {
        bytes(b): meta
        for b, meta in rows(
            db,
            """
        SELECT c.file_path_bytes, c.metadata FROM imgsearch.image_catalog c
        WHERE EXISTS (SELECT 1 FROM imgsearch.embeddings e WHERE e.image_id = c.image_id)
          AND c.file_path_bytes IS NOT NULL""",
        )
    }


def error_paths(db: Database) -> dict[str, str]:
    return dict(rows(db, "SELECT path, kind FROM imgsearch.ingest_errors"))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/drip.jpg":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "3000")
            self.end_headers()
            for _ in range(60):
                try:
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
            return
        status, headers, body = self.routes.get(
            self.path, (404, {"Content-Type": "text/plain"}, b"not found")
        )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def image_server(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 answering `routes` (and /drip.jpg, one byte a second)."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fs_name(folder: Path, name: bytes) -> str:
    """The location (a str with surrogate escapes) of a file name given as raw bytes."""
    return os.fsdecode(os.path.join(os.fsencode(folder), name))
