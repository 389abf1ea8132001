"""Uploaded query images, kept for a while under their sha256, so that a search by upload can be
repeated from a link (the page puts `?upload=<sha256>` in its URL) and its image shown again.

At most MAX_KEPT images are kept, none longer than MAX_AGE_S; each is at most the upload limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from pathlib import Path

from imgsearch import config

MAX_KEPT = 256
MAX_AGE_S = 7 * 24 * 3600
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _folder() -> Path:
    return config.load().home / "queries"


def keep(data: bytes) -> str:
    """Keep an uploaded query image; its sha256 (hex), the key to find it again."""
    digest = hashlib.sha256(data).hexdigest()
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest
    if path.exists():
        os.utime(path)  # recently used: kept longer
    else:
        tmp = folder / f".{digest}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)
        _prune(folder)
    return digest


def kept(digest: str) -> bytes | None:
    """The kept image with this sha256, or None (unknown, expired, or not a sha256)."""
    if not _SHA256.fullmatch(digest):
        return None
    try:
        return (_folder() / digest).read_bytes()
    except OSError:
        return None


def _prune(folder: Path) -> None:
    """Forget the oldest beyond MAX_KEPT and any older than MAX_AGE_S."""
    entries = []
    for entry in os.scandir(folder):
        if _SHA256.fullmatch(entry.name):
            try:
                entries.append((entry.stat().st_mtime, entry.path))
            except OSError:
                continue
    entries.sort(reverse=True)
    cutoff = time.time() - MAX_AGE_S
    for index, (mtime, path) in enumerate(entries):
        if index >= MAX_KEPT or mtime < cutoff:
            with contextlib.suppress(OSError):
                os.unlink(path)
