"""One rule for files imgsearch writes from data it did not compute (a database row, a `--from`
folder, an upload): their names are digests imgsearch computed or checked itself, a name is one
plain component resolved inside its folder (refused outside it), and a full disk is an error the
caller can tell apart from a bug."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path

from imgsearch.errors import ImgsearchError

_HEX = re.compile(r"[0-9a-f]+")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def is_digest(value: object, length: int = 64) -> bool:
    """Whether `value` is `length` lowercase hex digits (a sha256, or a prefix of one)."""
    return isinstance(value, str) and len(value) == length and _HEX.fullmatch(value) is not None


def checked_digest(value: object, what: str, length: int = 64) -> str:
    """`value` if it is `length` lowercase hex digits, else an error naming `what`."""
    if not is_digest(value, length):
        raise ImgsearchError(f"{what} is not a sha256 ({length} hex digits): refused.")
    return str(value)


def file_name(key: str) -> str:
    """`key` itself where it is one plain file name (letters, digits, `._+=-`, no leading dot),
    else the sha256 of it: a name taken from data can never climb out of its folder."""
    return key if _PLAIN.fullmatch(key) and ".." not in key else hashlib.sha256(key.encode()).hexdigest()


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused unless `name` is one plain component that stays inside `folder`."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ImgsearchError(f"{name!r} cannot name a file in {folder}: refused.")
    path = Path(folder) / name
    if path.resolve().parent != Path(folder).resolve():
        raise ImgsearchError(f"{name!r} leads outside {folder}: refused.")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then move it into place (no reader ever
    sees half a file; on any error, nothing is left behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or quota) is full or read-only."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL
