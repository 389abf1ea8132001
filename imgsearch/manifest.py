"""Manifests (CSV: a `path` or `url` column plus metadata columns) and downloading URLs."""

from __future__ import annotations

import csv
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ImageDecodeError, ImgsearchError

DOWNLOAD_TIMEOUT_S = 20.0
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
USER_AGENT = "imgsearch/0.1 (+https://pypi.org/project/imgsearch)"


@dataclass
class Source:
    """One thing to ingest: a local file or an http(s) URL, with metadata."""

    location: str  # absolute path or URL
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return is_url(self.location)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def read_manifest(csv_path: str | Path) -> Iterator[Source]:
    """Rows of a manifest; relative paths are taken relative to the CSV's folder."""
    csv_path = Path(csv_path)
    try:
        handle = csv_path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImgsearchError(f"Cannot read manifest {csv_path}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        key = "path" if "path" in columns else "url" if "url" in columns else None
        if key is None:
            raise ImgsearchError(
                f"Manifest {csv_path} needs a `path` or `url` column; it has: {', '.join(columns)}"
            )
        for row in reader:
            location = (row.pop(key) or "").strip()
            if not location:
                continue
            if not is_url(location):
                location = str((csv_path.parent / location).expanduser().absolute())
            metadata = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            yield Source(location, metadata)


def max_download_bytes() -> int:
    return int(os.environ.get("IMGSEARCH_MAX_DOWNLOAD_BYTES") or DEFAULT_MAX_DOWNLOAD_BYTES)


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """Fetch an image over http(s) with a timeout, a size cap and a content-type check."""
    limit = max_download_bytes()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ctype = response.headers.get_content_type()
            if not ctype.startswith("image/"):
                raise ImageDecodeError(f"not an image (Content-Type {ctype})", "not_an_image")
            length = response.headers.get("Content-Length")
            if length and int(length) > limit:
                raise ImageDecodeError(f"larger than {limit:,} bytes ({int(length):,})", "too_large")
            data = response.read(limit + 1)
    except ImageDecodeError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ImageDecodeError(f"download failed: {reason}", "download") from exc
    if len(data) > limit:
        raise ImageDecodeError(f"larger than {limit:,} bytes", "too_large")
    return data
