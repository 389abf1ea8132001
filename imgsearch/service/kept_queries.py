"""Uploaded query images, kept for a while under their sha256, so that a search by upload can be
repeated from a link (the page puts `?upload=<sha256>` in its URL) and its image shown again.

Only an upload that was searched (so a decodable image) is kept. At most MAX_KEPT are kept,
none longer than MAX_AGE_S, and together with their thumbnails at most
IMGSEARCH_KEPT_QUERIES_BYTES; the oldest go first, their thumbnails with them. Keeping is best
effort: a full disk costs the link, never the search.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path

from imgsearch import config
from imgsearch.safe_files import disk_full, is_digest, write_atomically
from imgsearch.service.thumbnails import thumbnail_folder, thumbnail_of, thumbnail_path

log = logging.getLogger(__name__)

MAX_KEPT = 256
MAX_AGE_S = 7 * 24 * 3600


def _folder() -> Path:
    return config.load().home / "queries"


def digest_of(data: bytes) -> str:
    """The key a kept upload is found by: its sha256 (hex)."""
    return hashlib.sha256(data).hexdigest()


def keep(data: bytes) -> str:
    """Keep an uploaded query image (best effort: nothing is kept when the disk is full); its
    sha256, the key to find it again."""
    digest = digest_of(data)
    folder = _folder()
    path = folder / digest
    try:
        if path.exists():
            os.utime(path)  # recently used: kept longer
        else:
            write_atomically(path, data)
            _prune(folder)
    except OSError as exc:
        if not disk_full(exc):
            raise
        log.warning("imgsearch: an upload was not kept (%s); its search goes on", exc.strerror)
    return digest


def is_kept(digest: str) -> bool:
    """Whether an upload with this sha256 is kept now."""
    return is_digest(digest) and (_folder() / digest).is_file()


def kept(digest: str) -> bytes | None:
    """The kept image with this sha256, or None (unknown, expired, or not a sha256)."""
    if not is_digest(digest):
        return None
    try:
        return (_folder() / digest).read_bytes()
    except OSError:
        return None


def thumbnail(digest: str, size: int) -> Path | None:
    """A thumbnail of a kept upload (None when it is not kept); the kept uploads stay within
    their byte budget, thumbnails included."""
    if not is_kept(digest):
        return None
    path = thumbnail_path(digest, size)
    if not path.exists():  # made (and the budget held) only the first time it is asked for
        data = kept(digest)
        if data is None:
            return None
        path = thumbnail_of(data, digest, size)
        prune()
    return path if path.exists() else None


def prune() -> None:
    """Hold the kept uploads (and their thumbnails) to their bounds now."""
    folder = _folder()
    if folder.is_dir():
        _prune(folder)


def _thumbnails(digest: str) -> list[Path]:
    return list(thumbnail_folder(digest).glob(f"{digest}-*.jpg"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _prune(folder: Path) -> None:
    """Forget the oldest beyond MAX_KEPT, beyond the byte budget, and any older than MAX_AGE_S,
    with their thumbnails."""
    entries = []
    for entry in os.scandir(folder):
        if is_digest(entry.name):
            try:
                st = entry.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, entry.name, st.st_size))
    entries.sort(reverse=True)
    cutoff = time.time() - MAX_AGE_S
    budget = config.load().kept_queries_bytes
    used = 0
    for index, (mtime, digest, size) in enumerate(entries):
        thumbs = _thumbnails(digest)
        used += size + sum(_size(t) for t in thumbs)
        if index >= MAX_KEPT or mtime < cutoff or used > budget:
            for path in [folder / digest, *thumbs]:
                with contextlib.suppress(OSError):
                    path.unlink()
