"""What can be ingested or searched, and where its bytes come from.

A *location* is a local path (a `str` that may hold surrogate escapes for file-name bytes
that are not valid UTF-8, as `os.fsdecode` makes them) or an http(s) URL. PostgreSQL text
cannot hold such names, so each location has a *display path*: the same text with
undecodable bytes and control characters written as `\\xNN`. When the two differ, the exact
bytes of the name are stored as well (`images.path_bytes`), so nothing is lost.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from imgsearch.config import Settings
from imgsearch.download import URL_SCHEMES, download, url_scheme
from imgsearch.errors import ImageDecodeError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class Source:
    """One thing to ingest: a local file or an http(s) URL, with metadata."""

    location: str  # absolute path or URL
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return is_url(self.location)


@dataclass
class Failure:
    """An input that could not be used, and why: a file that cannot be read or decoded, a
    folder that cannot be listed, a bad manifest row. Reported by ingest and stored as a row
    of `imgsearch.ingest_errors`; never an image."""

    location: str  # display form: a path, a URL, or `manifest.csv:LINE`
    kind: str  # a short word: unreadable, corrupt, too_large, symlink_loop, ...
    message: str


def is_url(text: str) -> bool:
    return url_scheme(text) in URL_SCHEMES


def check_location(text: str) -> None:
    """Refuse URLs of schemes other than http(s) (`file://`, `ftp://`, ...)."""
    scheme = url_scheme(text)
    if scheme is not None and scheme not in URL_SCHEMES:
        raise ImageDecodeError(f"unsupported URL scheme {scheme}:// (only http and https)", "unsupported_url")


def display_path(location: str) -> str:
    """Printable, UTF-8-safe text for a location (see the module docstring)."""
    try:
        location.encode("utf-8")
        text = location
    except UnicodeEncodeError:
        text = os.fsencode(location).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def path_bytes(location: str) -> bytes | None:
    """The exact bytes of a file name whose display path differs from it, else None."""
    if is_url(location) or display_path(location) == location:
        return None
    return os.fsencode(location)


def location_of(path: str, exact: bytes | None) -> str:
    """The location of a stored image, from its `path` and `path_bytes` columns."""
    return os.fsdecode(bytes(exact)) if exact is not None else path


def too_big(size: int, limit: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"the file is {size:,} bytes, over the limit of {limit:,} (IMGSEARCH_MAX_DECODE_BYTES)", "too_large"
    )


def read_file(location: str, max_bytes: int) -> bytes:
    """A file's bytes; one larger than `max_bytes` (IMGSEARCH_MAX_DECODE_BYTES: no image worth
    decoding is bigger than its decoding) is refused before it is read."""
    limit = max_bytes
    try:
        with open(location, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                raise too_big(size, limit)
            data = file.read(limit + 1)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}", "unreadable") from exc
    if len(data) > limit:  # it grew while being read
        raise too_big(len(data), limit)
    return data


def fetch(location: str, settings: Settings, max_bytes: int | None = None) -> bytes:
    """The bytes of a local file (see read_file; `max_bytes` default the settings'
    max_decode_bytes) or an http(s) URL (see download; other schemes are refused)."""
    check_location(location)
    if is_url(location):
        return download(location, settings)
    return read_file(
        os.path.expanduser(location), settings.max_decode_bytes if max_bytes is None else max_bytes
    )
