"""Ingest: reader -> mapper -> writer, streamed into PostgreSQL.

- reader: `sources()` lists files (and manifest rows); `plan()` drops what is indexed and
  unchanged (size + mtime, confirmed by sha256 when those differ);
- mapper: worker threads read, hash, decode and preprocess (`load()`), while the main thread
  encodes the previous batch; a bounded window of in-flight tasks keeps memory flat;
- writer: `store.write_batch()`, one transaction per batch, so an interrupted run leaves only
  whole batches and a re-run continues where it stopped.
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

from . import store
from .database import Database, connect, open_database
from .decode import decode_image
from .encoders import Encoder, Inputs, collate
from .errors import ImageDecodeError
from .manifest import Source, download, read_manifest

PLAN_CHUNK = 512
CPU_BATCH_SIZE = 8  # benchmarks/encode.py: small batches are fastest on a 2-core CPU
GPU_BATCH_SIZE = 128


@dataclass
class Failure:
    location: str
    kind: str
    message: str


@dataclass
class IngestReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    encoded: int = 0  # images that went through the model (duplicates reuse a vector)
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
            follow_symlinks: bool = False) -> Iterator[Source]:
    from .files import find_images

    if manifest is not None:
        yield from read_manifest(manifest)
    for path in find_images(paths, follow_symlinks):
        yield Source(str(path))


def load(source: Source, known: store.KnownImage | None, encoder: Encoder) -> _Loaded:
    """Read, hash, decode and preprocess one source (runs in a worker thread)."""
    mtime = None
    if source.is_url:
        data = download(source.location)
    else:
        try:
            path = Path(source.location)
            mtime = path.stat().st_mtime
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}", "unreadable") from exc
    sha = hashlib.sha256(data).hexdigest()
    row = store.ImageRow(source.location, sha, len(data), None, None, None, mtime, source.metadata)
    if known is not None and known.has_vector and known.sha256 == sha:
        return _Loaded(source, row, None, existed=True)
    decoded = decode_image(data, min_size=encoder.min_decode_size)
    row.width, row.height, row.format = decoded.width, decoded.height, decoded.format
    return _Loaded(source, row, encoder.preprocess(decoded.image), existed=known is not None)


def _unchanged(source: Source, known: store.KnownImage | None) -> bool:
    if known is None or not known.has_vector:
        return False
    if source.is_url:
        return True
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
           follow_symlinks: bool = False, database: Database | str | None = None,
           progress: ProgressCallback | None = None, stop: threading.Event | None = None
           ) -> IngestReport:
    """Index the images under `paths` (and/or a manifest) for one encoder.

    Ctrl-C (SIGINT) or setting `stop` ends the run after the batch in progress; everything
    written so far stays, and the next run continues from there.
    """
    db = database if isinstance(database, Database) else open_database(database)
    if encoder is None:
        from .models import get_encoder

        encoder = get_encoder(model, device)
    run = _Run(db, encoder, batch_size or default_batch_size(encoder),
               workers or os.cpu_count() or 2, progress, stop or threading.Event())
    with _stop_on_sigint(run.stop):
        run.execute(sources(paths, manifest, follow_symlinks))
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
                 progress: ProgressCallback | None, stop: threading.Event) -> None:
        self.db, self.encoder, self.batch_size, self.workers = db, encoder, batch_size, workers
        self.progress, self.stop = progress, stop
        self.report = IngestReport(model=encoder.name)
        self.found = 0
        self.finding = True
        self.started = time.monotonic()
        self._last_progress = 0.0

    def execute(self, items: Iterator[Source]) -> None:
        with connect(self.db, autocommit=True) as conn, \
                ThreadPoolExecutor(self.workers, "imgsearch-load") as pool:
            self.conn = conn
            self.enc_id = store.encoder_id(conn, self.encoder.identity)
            window = self.batch_size + 2 * self.workers
            pending: deque[tuple[Source, Future]] = deque()
            batch: list[_Loaded] = []
            errors: list[Failure] = []
            for source, known in self._plan(items):
                if self.stop.is_set():
                    break
                pending.append((source, pool.submit(load, source, known, self.encoder)))
                while len(pending) >= window:
                    self._collect(pending.popleft(), batch, errors)
                    if len(batch) >= self.batch_size:
                        self._flush(batch, errors)
                        if self.stop.is_set():
                            break
            self.finding = False
            while pending and not self.stop.is_set():
                self._collect(pending.popleft(), batch, errors)
                if len(batch) >= self.batch_size:
                    self._flush(batch, errors)
            for _, future in pending:
                future.cancel()
            if batch or errors:
                self._flush(batch, errors)
        self.report.interrupted = self.stop.is_set()
        self.report.seconds = time.monotonic() - self.started
        self._tick(force=True)

    def _plan(self, items: Iterator[Source]) -> Iterator[tuple[Source, store.KnownImage | None]]:
        """Yield what needs work; count and refresh what is indexed and unchanged."""
        while chunk := list(itertools.islice(items, PLAN_CHUNK)):
            self.found += len(chunk)
            known = store.known_images(self.conn, self.enc_id, [s.location for s in chunk])
            stale_metadata = []
            for source in chunk:
                entry = known.get(source.location)
                if _unchanged(source, entry):
                    self.report.unchanged += 1
                    if source.metadata and source.metadata != entry.metadata:
                        stale_metadata.append(_metadata_row(source, entry))
                else:
                    yield source, entry
            if stale_metadata:
                store.write_batch(self.conn, self.enc_id, [], [], refreshed=stale_metadata)
            self._tick()

    def _collect(self, item: tuple[Source, Future], batch: list[_Loaded],
                 errors: list[Failure]) -> None:
        source, future = item
        try:
            batch.append(future.result())
        except ImageDecodeError as exc:
            errors.append(Failure(source.location, exc.kind, str(exc)))
        except Exception as exc:  # one bad file never stops an ingest
            errors.append(Failure(source.location, "error", f"{type(exc).__name__}: {exc}"))

    def _flush(self, batch: list[_Loaded], errors: list[Failure]) -> None:
        to_write = [item for item in batch if item.inputs is not None]
        refreshed = [item.row for item in batch if item.inputs is None]
        vectors = self._vectors(to_write)
        store.write_batch(self.conn, self.enc_id, [item.row for item in to_write], vectors,
                          [store.ErrorRow(e.location, e.kind, e.message) for e in errors],
                          refreshed)
        for item in to_write:
            if item.existed:
                self.report.updated += 1
            else:
                self.report.new += 1
        self.report.unchanged += len(refreshed)
        self.report.failures.extend(errors)
        batch.clear()
        errors.clear()
        self._tick()

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
    return store.ImageRow(source.location, known.sha256, known.byte_size, None, None, None,
                          known.mtime, source.metadata)
