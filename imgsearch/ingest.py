"""Ingest: reader -> mapper -> writer, streamed into PostgreSQL.

- reader: `sources()` lists files and manifest rows (bad rows arrive as `Rejected`);
  `_Run._plan` drops what is indexed and unchanged (size + mtime, or the sha256 with
  `rehash`);
- mapper: worker threads read, hash, decode and preprocess (`load()`), while the main thread
  encodes the previous batch; a bounded window of in-flight tasks keeps memory flat;
- writer: `store.write_batch()`, one transaction per batch, so an interrupted run leaves only
  whole batches and a re-run continues where it stopped. A batch the database refuses is
  written again row by row, so a bad row costs only itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg

from . import prune, store
from .database import Database, connect, open_database
from .decode import decode_image
from .encoders import Encoder, Inputs, collate
from .errors import DatabaseUnavailable, ImageDecodeError
from .manifest import read_manifest
from .sources import Rejected, Source, display_path, fetch

PLAN_CHUNK = 512
CPU_BATCH_SIZE = 8  # benchmarks/encode.py: small batches are fastest on a 2-core CPU
GPU_BATCH_SIZE = 128


@dataclass
class Failure:
    location: str  # display form
    kind: str
    message: str


@dataclass
class IngestReport:
    new: int = 0  # rows this run inserted (the database's answer, so concurrent runs add up)
    updated: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    encoded: int = 0  # images that went through the model (duplicates reuse a vector)
    gone: int = 0  # indexed files under the given folders that no longer exist
    pruned: int = 0  # of those, removed by this run (`prune=True`)
    interrupted: bool = False
    seconds: float = 0.0
    model: str = ""

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def done(self) -> int:
        return self.new + self.updated + self.unchanged + self.failed

    @property
    def exit_code(self) -> int:
        """1 only when there was something to ingest and none of it could be."""
        return 1 if self.failures and self.new + self.updated + self.unchanged == 0 else 0


@dataclass
class Progress:
    done: int
    found: int
    finding: bool  # still discovering files
    elapsed: float


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Loaded:
    source: Source
    row: store.ImageRow
    inputs: Inputs | None  # None: content unchanged (sha256 matched), nothing to encode
    existed: bool


def sources(paths: Iterable[str | Path] = (), manifest: str | Path | None = None,
            follow_symlinks: bool = False) -> Iterator[Source | Rejected]:
    from .files import find_images

    if manifest is not None:
        yield from read_manifest(manifest)
    for path in find_images(paths, follow_symlinks):
        yield Source(str(path))


def load(source: Source, known: store.KnownImage | None, encoder: Encoder) -> _Loaded:
    """Read, hash, decode and preprocess one source (runs in a worker thread)."""
    mtime = None
    if not source.is_url:
        try:
            mtime = os.stat(source.location).st_mtime
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}", "unreadable") from exc
    data = fetch(source.location)
    row = store.ImageRow(location=source.location, sha256=hashlib.sha256(data).hexdigest(),
                         byte_size=len(data), width=None, height=None, format=None, mtime=mtime,
                         metadata=source.metadata)
    if known is not None and known.has_vector and known.sha256 == row.sha256:
        return _Loaded(source, row, None, existed=True)
    decoded = decode_image(data, min_size=encoder.min_decode_size)
    row.width, row.height, row.format = decoded.width, decoded.height, decoded.format
    return _Loaded(source, row, encoder.preprocess(decoded.image), existed=known is not None)


def _unchanged(source: Source, known: store.KnownImage | None, rehash: bool) -> bool:
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


def default_batch_size(encoder: Encoder) -> int:
    return GPU_BATCH_SIZE if encoder.device.type == "cuda" else CPU_BATCH_SIZE


def ingest(paths: Iterable[str | Path] = (), *, manifest: str | Path | None = None,
           model: str | None = None, encoder: Encoder | None = None, device: str = "auto",
           batch_size: int | None = None, workers: int | None = None,
           follow_symlinks: bool = False, rehash: bool = False, prune_gone: bool = False,
           database: Database | str | None = None,
           progress: ProgressCallback | None = None, stop: threading.Event | None = None
           ) -> IngestReport:
    """Index the images under `paths` (and/or a manifest) for one encoder.

    `rehash` re-reads files whose size and mtime are unchanged and re-encodes those whose
    content changed. Indexed files under the given folders that are gone are counted
    (`report.gone`) and, with `prune_gone`, removed. Ctrl-C (SIGINT) or setting `stop` ends
    the run after the batch in progress; everything written so far stays, and the next run
    continues from there. A lost database connection raises DatabaseUnavailable.
    """
    paths = list(paths)
    db = database if isinstance(database, Database) else open_database(database)
    if encoder is None:
        from .models import get_encoder

        encoder = get_encoder(model, device)
    run = _Run(db, encoder, batch_size or default_batch_size(encoder),
               workers or os.cpu_count() or 2, progress, stop or threading.Event(), rehash)
    folders = [Path(p).expanduser().absolute() for p in paths if Path(p).is_dir()]
    try:
        with _stop_on_sigint(run.stop):
            run.execute(sources(paths, manifest, follow_symlinks))
            if folders and not run.report.interrupted:
                run.count_gone(folders, prune_gone)
    except psycopg.OperationalError as exc:
        written = run.report.new + run.report.updated
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"Lost the connection to the database ({reason}); the {written} images written "
            "before are kept: run the same command again to continue.") from exc
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


class _Run:
    def __init__(self, db: Database, encoder: Encoder, batch_size: int, workers: int,
                 progress: ProgressCallback | None, stop: threading.Event, rehash: bool) -> None:
        self.db, self.encoder, self.batch_size, self.workers = db, encoder, batch_size, workers
        self.progress, self.stop, self.rehash = progress, stop, rehash
        self.report = IngestReport(model=encoder.name)
        self.found = 0
        self.finding = True
        self.started = time.monotonic()
        self._last_progress = 0.0
        self.batch: list[_Loaded] = []
        self.errors: list[Failure] = []

    def execute(self, items: Iterator[Source | Rejected]) -> None:
        with connect(self.db, autocommit=True) as conn, \
                ThreadPoolExecutor(self.workers, "imgsearch-load") as pool:
            self.conn = conn
            self.enc_id = store.encoder_id(conn, self.encoder.identity)
            window = self.batch_size + 2 * self.workers
            pending: deque[tuple[Source, Future]] = deque()
            for source, known in self._plan(items):
                if self.stop.is_set():
                    break
                pending.append((source, pool.submit(load, source, known, self.encoder)))
                self._drain(pending, keep=window - 1)
            self.finding = False
            self._drain(pending, keep=0)
            for _, future in pending:
                future.cancel()
            self._flush()
        self.report.interrupted = self.stop.is_set()
        self.report.seconds = time.monotonic() - self.started
        self._tick(force=True)

    def count_gone(self, folders: list[Path], remove: bool) -> None:
        with connect(self.db, autocommit=True) as conn:
            gone = prune.find_gone(conn, [display_path(str(f)) for f in folders])
            self.report.gone = len(gone)
            if remove:
                self.report.pruned = prune.delete_images(conn, gone)

    def _plan(self, items: Iterator[Source | Rejected]
              ) -> Iterator[tuple[Source, store.KnownImage | None]]:
        """Yield what needs work; count and refresh what is indexed and unchanged."""
        seen: set[int] = set()
        while chunk := list(itertools.islice(items, PLAN_CHUNK)):
            self.found += len(chunk)
            fresh = []
            for item in chunk:
                if isinstance(item, Rejected):
                    self.errors.append(Failure(item.location, item.kind, item.message))
                elif hash(item.location) in seen:  # the same file named twice
                    self.found -= 1
                else:
                    seen.add(hash(item.location))
                    fresh.append(item)
            known = store.known_images(self.conn, self.enc_id, [s.location for s in fresh])
            stale_metadata = []
            for source in fresh:
                entry = known.get(source.location)
                if _unchanged(source, entry, self.rehash):
                    self.report.unchanged += 1
                    if source.metadata and source.metadata != entry.metadata:
                        stale_metadata.append(_metadata_row(source, entry))
                else:
                    yield source, entry
            if stale_metadata:
                self._write([], [], refreshed=stale_metadata)
            self._tick()

    def _drain(self, pending: deque[tuple[Source, Future]], keep: int) -> None:
        """Collect finished work (oldest first) until at most `keep` items are in flight."""
        while len(pending) > keep and not self.stop.is_set():
            source, future = pending.popleft()
            try:
                self.batch.append(future.result())
            except ImageDecodeError as exc:
                self.errors.append(Failure(display_path(source.location), exc.kind, str(exc)))
            except Exception as exc:  # one bad file never stops an ingest
                self.errors.append(Failure(display_path(source.location), "error",
                                           f"{type(exc).__name__}: {exc}"))
            if len(self.batch) >= self.batch_size:
                self._flush()

    def _flush(self) -> None:
        if not self.batch and not self.errors:
            return
        to_write = [item for item in self.batch if item.inputs is not None]
        refreshed = [item.row for item in self.batch if item.inputs is None]
        rows = [item.row for item in to_write]
        written = self._write(rows, self._vectors(to_write), refreshed)
        for item in to_write:
            location = item.row.location
            if location in written.failed:
                continue
            if location in written.collided:
                self.errors.append(Failure(display_path(location), "name_collision",
                                           "another file is indexed under the same displayed path"))
            elif location in written.inserted:
                self.report.new += 1
            else:
                self.report.updated += 1
        self.report.unchanged += len(refreshed)
        self._write([], [], errors=self.errors)
        self.report.failures.extend(self.errors)
        self.batch.clear()
        self.errors = []
        self._tick()

    def _write(self, rows: list[store.ImageRow], vectors: list, refreshed=(),
               errors=()) -> store.Written:
        """Write one batch; if the database refuses it, each row alone (bad rows fail)."""
        error_rows = [store.ErrorRow(e.location, e.kind, e.message) for e in errors]
        try:
            return store.write_batch(self.conn, self.enc_id, rows, vectors, error_rows, refreshed)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            pass
        result = store.Written()
        singles = [([r], [v], [], []) for r, v in zip(rows, vectors, strict=True)]
        singles += [([], [], [r], []) for r in refreshed] + [([], [], [], [e]) for e in error_rows]
        for one_row, one_vector, one_refreshed, one_error in singles:
            try:
                part = store.write_batch(self.conn, self.enc_id, one_row, one_vector, one_error,
                                         one_refreshed)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                bad = (one_row or one_refreshed or one_error)[0].location
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
                result.failed.add(bad)
                self.errors.append(Failure(display_path(bad), "database",
                                           f"the database refused this row: {message}"))
                continue
            result.inserted |= part.inserted
            result.collided += part.collided
        return result

    def _vectors(self, items: list[_Loaded]) -> list:
        """Encode each distinct content once; reuse stored vectors of identical content."""
        shas = list(dict.fromkeys(item.row.sha256 for item in items))
        vectors: dict = store.vectors_by_sha(self.conn, self.enc_id, shas)
        first_of: dict[str, _Loaded] = {}
        for item in items:
            if item.row.sha256 not in vectors:
                first_of.setdefault(item.row.sha256, item)
        if first_of:
            encoded = self.encoder.encode_batch(collate([i.inputs for i in first_of.values()]))
            vectors.update(zip(first_of, np.asarray(encoded), strict=True))
            self.report.encoded += len(first_of)
        return [vectors[item.row.sha256] for item in items]

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last_progress < 0.2):
            return
        self._last_progress = now
        self.progress(Progress(self.report.done, self.found, self.finding, now - self.started))


def _metadata_row(source: Source, known: store.KnownImage) -> store.ImageRow:
    return store.ImageRow(location=source.location, sha256=known.sha256,
                          byte_size=known.byte_size, width=None, height=None, format=None,
                          mtime=known.mtime, metadata=source.metadata)
