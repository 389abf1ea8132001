"""Watching folders: after a first full pass, new, changed, moved and deleted files are
reflected in the index as soon as the changes settle (watchfiles: inotify, FSEvents, ...)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.config import Settings
from imgsearch.db import prune
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.encoder import Encoder
from imgsearch.ingest.files import looks_like_image
from imgsearch.ingest.options import IngestOptions
from imgsearch.ingest.pipeline import ingest
from imgsearch.ingest.report import IngestReport
from imgsearch.sources import display_path

SETTLE_MS = 100  # a batch of changes is handled once nothing changed for this long
MAX_WAIT_MS = 1000  # ... or after this long, if changes keep coming


@dataclass
class WatchEvent:
    """What one settled batch of changes did to the index."""

    report: IngestReport | None  # the ingest of new and changed files, if any
    removed: int = 0  # images forgotten because their files are gone (deleted or moved away)
    paths: list[str] = field(default_factory=list)  # the changed paths, as displayed


def watch(
    paths: Iterable[str | Path],
    *,
    encoder: Encoder,
    database: Database,
    stop: threading.Event,
    on_event: Callable[[WatchEvent], None] | None = None,
    first_pass: bool = True,
    settings: Settings,
) -> IngestReport | None:
    """Keep the index in step with `paths` until `stop` is set; the first pass's report
    (`settings`: as `ingest`'s)."""
    import watchfiles

    def index(targets: list[str], options: IngestOptions | None = None) -> IngestReport:
        return ingest(targets, encoder=encoder, options=options, database=database, settings=settings)

    roots = [str(Path(p).expanduser().absolute()) for p in paths]
    first = index(roots, IngestOptions(prune_gone=True)) if first_pass else None
    for changes in watchfiles.watch(
        *roots,
        stop_event=stop,
        step=SETTLE_MS,
        debounce=MAX_WAIT_MS,
        watch_filter=_not_hidden,
        raise_interrupt=False,
    ):
        # A folder that appears (made, or moved in) is walked: files moved into it before
        # the watch on it began send no events of their own.
        changed = sorted(
            {
                p
                for kind, p in changes
                if kind != watchfiles.Change.deleted
                and (os.path.isdir(p) or os.path.isfile(p) and looks_like_image(Path(p)))
            }
        )
        gone = sorted({p for _, p in changes if not os.path.exists(p)})
        event = WatchEvent(None, paths=[display_path(p) for p in sorted({p for _, p in changes})])
        if changed:
            # An event on a file is evidence that it changed, even when an edit kept its size
            # and mtime: such files are hashed again. New folders are walked as usual.
            files = [p for p in changed if not os.path.isdir(p)]
            folders = [p for p in changed if os.path.isdir(p)]
            event.report = IngestReport(model=encoder.name)
            if files:
                event.report.add(index(files, IngestOptions(rehash=True)))
            if folders:
                event.report.add(index(folders))
        if gone:
            with connect(database, autocommit=True) as conn:
                ids = prune.find_gone(conn, [display_path(p) for p in gone], exact=True)
                event.removed = prune.delete_images(conn, ids)
        if on_event is not None and (changed or gone):
            on_event(event)
    return first


def _not_hidden(change, path: str) -> bool:
    return not any(part.startswith(".") for part in Path(path).parts[1:])
