"""Thumbnails of indexed images and of kept query images: made once per content and size, cached
on disk under the content's sha256."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imgsearch import config
from imgsearch.encoding.decode import decode_image
from imgsearch.errors import DiskFull
from imgsearch.indexed_files import read_indexed, still_indexed
from imgsearch.safe_files import checked_digest, disk_full, inside, write_atomically

_making = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))
SIZES = (128, 256, 512, 1024)  # a requested size is rounded up to one of these (bounded cache)
QUALITY = 85


def thumbnail_size(requested: int) -> int:
    return next((s for s in SIZES if s >= requested), SIZES[-1])


def thumbnail(
    location: str,
    sha256: str,
    byte_size: int,
    mtime: float | None,
    size: int,
    root: Callable[[], str | None] | None = None,
) -> Path:
    """A JPEG whose longer side is at most `size` (rounded up to one of SIZES) of the indexed
    content (read from the collection's root that `root()` gives, following no link below it;
    asked only when the file has to be read); raises
    ImageDecodeError when the image cannot be read any more or has changed (also when its
    thumbnail is cached: a file that does not look as indexed is read again)."""

    def read() -> bytes:
        return read_indexed(location, sha256, byte_size, root() if root is not None else None)

    path = _cached(sha256, size, read)
    if not still_indexed(location, byte_size, mtime):
        read()  # full check: raises unless the content is still the indexed one
    return path


def thumbnail_of(data: bytes, sha256: str, size: int) -> Path:
    """The same for image bytes at hand (a kept query image)."""
    return _cached(sha256, size, lambda: data)


def thumbnail_folder(digest: str) -> Path:
    """Where the thumbnails of the content with this sha256 are cached (indexed images and kept
    uploads of the same content share them)."""
    return config.load().home / "thumbnails" / digest[:2]


def thumbnail_path(sha256: str, size: int) -> Path:
    """Where the thumbnail of this content at this size (rounded up to one of SIZES) is cached."""
    sha256 = checked_digest(sha256, "The content's recorded digest")
    return inside(thumbnail_folder(sha256), f"{sha256}-{thumbnail_size(size)}.jpg")


def _cached(sha256: str, size: int, read: Callable[[], bytes]) -> Path:
    size = thumbnail_size(size)
    path = thumbnail_path(sha256, size)
    if path.exists():
        return path
    with _making:  # a few at a time: each holds a whole file and its pixels
        if path.exists():
            return path
        image = decode_image(read(), min_size=size).image
        image.thumbnail((size, size), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=QUALITY)
        try:  # each writer its own temporary file: concurrent makers never clash
            write_atomically(path, buffer.getvalue())
        except OSError as exc:
            if disk_full(exc):
                raise DiskFull(f"No room for a thumbnail in {path.parent} ({exc.strerror}).") from exc
            raise
    return path
