"""Ingest: reader -> mapper -> writer, streamed into PostgreSQL.

- reader (`reader.py`): files and manifest rows; what is indexed and unchanged (size + mtime,
  or the sha256 with `rehash`) is counted and skipped;
- mapper (`loading.py`): worker threads read, hash, decode and preprocess while the main
  thread encodes the previous batch; a bounded window of in-flight tasks keeps memory flat
  (`run.py`; with `engine="ray"`, Ray Data tasks and actors do it: `ray_engine.py`);
- writer (`writer.py`): one transaction per batch, so an interrupted run leaves only whole
  batches and a re-run continues where it stopped; a refused batch is retried row by row.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg

from imgsearch import config
from imgsearch.config import Settings
from imgsearch.db.connection import Database
from imgsearch.db.schema import as_database
from imgsearch.encoding.derived import ingest_encoder
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import DatabaseUnavailable, ImgsearchError, first_line
from imgsearch.ingest.options import IngestOptions
from imgsearch.ingest.reader import sources
from imgsearch.ingest.report import IngestReport
from imgsearch.ingest.run import Run, default_batch_size  # noqa: F401  (benchmarks use it)
from imgsearch.progress import ProgressCallback


def ingest(
    paths: Iterable[str | Path] = (),
    *,
    encoder: Encoder,
    options: IngestOptions | None = None,
    database: Database | str | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    settings: Settings | None = None,
) -> IngestReport:
    """Index the images under `paths` (and/or `options.manifest`) with `encoder`.

    `rehash` re-reads files whose size and mtime are unchanged and re-encodes those whose
    content changed. Indexed files under the given folders that are gone are counted
    (`report.gone`) and, with `prune_gone`, removed. Ctrl-C (SIGINT) or setting `stop` ends
    the run after the batch in progress; everything written so far stays, and the next run
    continues from there. A lost database connection raises DatabaseUnavailable. `augment`
    also stores N vectors of random edits (crop, flip, colour...) per image; images indexed
    with fewer are encoded again. `engine="ray"` decodes and encodes on a Ray cluster
    (`address`: "auto", "ray://host:10001", default a local one); planning and writing are the
    same as the local engine's. A second ingest with the same encoder waits for the first to
    finish (`report.waited`), then skips what it indexed. `settings` (default: the environment's,
    loaded for this one-shot call; an Index passes its own) give the limits on each image.
    """
    settings = settings if settings is not None else config.load()
    paths = list(paths)
    options = options or IngestOptions()
    db = as_database(database, settings)
    encoder = ingest_encoder(encoder)  # a derived encoder's vectors follow its base's
    if options.engine == "ray":
        from imgsearch.ingest.ray_engine import RayRun

        run: Run = RayRun(db, encoder, options, progress, stop or threading.Event(), settings)
    elif options.engine == "local":
        run = Run(db, encoder, options, progress, stop or threading.Event(), settings)
    else:
        raise ImgsearchError(f"Unknown engine {options.engine!r}: use local or ray.")
    folders = [Path(p).expanduser().absolute() for p in paths if Path(p).is_dir()]
    try:
        with _stop_on_sigint(run.stop):
            run.execute(sources(paths, options.manifest, options.follow_symlinks))
            if folders and not run.report.interrupted:
                run.count_gone(folders, options.prune_gone)
    except psycopg.OperationalError as exc:
        written = run.report.new + run.report.updated
        if isinstance(exc, psycopg.errors.DiskFull) or "No space left" in str(exc):
            raise DatabaseUnavailable(
                f"The database server's disk is full ({first_line(exc)}); the {written} images "
                "written before are kept: free some space there and run the same command again."
            ) from exc
        raise DatabaseUnavailable(
            f"Lost the connection to the database ({first_line(exc)}); the {written} images written "
            "before are kept: run the same command again to continue."
        ) from exc
    return run.report


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C: finish the current batch and stop. Second Ctrl-C: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
