"""Thumbnails of indexed images and of kept query images: made once per content and size, cached
on disk under the content's sha256."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imgsearch import config
from imgsearch.encoding.decode import decode_image
from imgsearch.indexed_files import read_indexed

SIZES = (128, 256, 512, 1024)  # a requested size is rounded up to one of these (bounded cache)
QUALITY = 85


def thumbnail_size(requested: int) -> int:
    return next((s for s in SIZES if s >= requested), SIZES[-1])


def thumbnail(location: str, sha256: str, byte_size: int, size: int) -> Path:
    """A JPEG whose longer side is at most `size` (rounded up to one of SIZES) of the indexed
    content; raises ImageDecodeError when the image cannot be read any more or has changed."""
    return _cached(sha256, size, lambda: read_indexed(location, sha256, byte_size))


def thumbnail_of(data: bytes, sha256: str, size: int) -> Path:
    """The same for image bytes at hand (a kept query image)."""
    return _cached(sha256, size, lambda: data)


def _cached(sha256: str, size: int, read: Callable[[], bytes]) -> Path:
    size = thumbnail_size(size)
    folder = config.load().home / "thumbnails" / sha256[:2]
    path = folder / f"{sha256}-{size}.jpg"
    if path.exists():
        return path
    image = decode_image(read(), min_size=size).image
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path
