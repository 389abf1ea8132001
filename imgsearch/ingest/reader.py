"""The reader: what to ingest (files under folders, manifest rows) and what can be skipped."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgsearch.db.store import KnownImage
from imgsearch.ingest.files import walk
from imgsearch.ingest.manifest import read_manifest
from imgsearch.sources import Failure, Source


def sources(
    paths: Iterable[str | Path] = (), manifest: str | Path | None = None, follow_symlinks: bool = False
) -> Iterator[Source | Failure]:
    """Manifest rows first, then the images under `paths`; bad rows and folders that cannot
    be walked come as `Failure`."""
    if manifest is not None:
        yield from read_manifest(manifest)
    for item in walk(paths, follow_symlinks):
        yield item if isinstance(item, Failure) else Source(str(item))


def unchanged(source: Source, known: KnownImage | None, rehash: bool) -> bool:
    """Indexed with a vector, and (for a file) the same size and mtime, unless `rehash`."""
    if known is None or not known.has_vector:
        return False
    if source.is_url:
        return True
    if rehash:
        return False
    try:
        st = os.stat(source.location)
    except OSError:
        return False
    return st.st_size == known.byte_size and known.mtime is not None and abs(st.st_mtime - known.mtime) < 1e-6
