"""Reading an indexed image back, only while it is still the file that was indexed.

A file served by the HTTP service, or turned into a thumbnail, is opened by a walk from the
collection's root folder that follows no symbolic link at any component below it (each folder
opened relative to the one before with O_NOFOLLOW), must be a regular file, and must have the
size and the sha256 recorded at ingest. A file swapped for a link (to `/etc/passwd`, or to a copy
of itself), a folder on the way swapped for a link, or an edit since the last ingest: all are
refused, so the service hands out the indexed bytes or nothing. The root itself is opened as
the operator named it (it may be a link they made).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO

from imgsearch.config import Settings
from imgsearch.errors import ImageDecodeError
from imgsearch.sources import fetch, is_url, too_big

CHUNK = 1 << 20
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _changed(what: str) -> ImageDecodeError:
    return ImageDecodeError(f"the file is not the one indexed any more ({what}); ingest again", "changed")


def _walk(location: str, root: str | None) -> int:
    """A descriptor of the file at `location`, reached from `root` (else from the folder that
    holds it) without following a link at any component after it."""
    base = root.rstrip("/") or "/" if root else os.path.dirname(location) or "/"
    if location != base and not location.startswith(base.rstrip("/") + "/"):
        base = "/"  # not under the root: every component is checked
    parts = [p for p in location[len(base) :].split("/") if p]
    if not parts:
        raise OSError(21, "Is a directory")
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=folder)
    finally:
        os.close(folder)


def _open_regular(location: str, byte_size: int, root: str | None = None) -> BinaryIO:
    """The file at `location` (no link followed below `root`, or at its last component when no
    root is given), if it is a regular file of `byte_size` bytes."""
    try:
        fd = _walk(location, root)
    except OSError as exc:
        raise ImageDecodeError(f"cannot open the file: {exc.strerror or exc}", "unreadable") from exc
    file = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != byte_size:
        file.close()
        raise _changed(
            "not a regular file"
            if not stat.S_ISREG(st.st_mode)
            else f"{st.st_size:,} bytes, indexed with {byte_size:,}"
        )
    return file


def open_indexed(location: str, sha256: str, byte_size: int, root: str | None = None) -> BinaryIO:
    """The indexed file at `location` (reached from `root`, the collection's root folder),
    verified and positioned at its start (the caller closes it). Raises ImageDecodeError (kind
    `unreadable` or `changed`)."""
    file = _open_regular(location, byte_size, root)
    try:
        digest = hashlib.sha256()
        while chunk := file.read(CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise _changed("other content")
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file


def still_indexed(location: str, byte_size: int, mtime: float | None) -> bool:
    """Cheap check (one lstat) that the file at `location` looks as it did at ingest: a regular
    file, not a link, with the same size and modification time."""
    if is_url(location):
        return True
    try:
        st = os.lstat(location)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == byte_size
        and mtime is not None
        and abs(st.st_mtime - mtime) < 1e-6
    )


def read_indexed(
    location: str, sha256: str, byte_size: int, root: str | None = None, *, settings: Settings
) -> bytes:
    """The bytes of an indexed file (reached from `root` as `open_indexed` does) or URL, if they
    are still the indexed ones (a file bigger than the settings' max_decode_bytes is refused
    unread; a URL is downloaded within their limits)."""
    limit = settings.max_decode_bytes
    if byte_size > limit:
        raise too_big(byte_size, limit)
    if is_url(location):
        data = fetch(location, settings)
    else:
        with _open_regular(location, byte_size, root) as file:
            data = file.read(byte_size + 1)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise _changed("other content")
    return data
