"""One ingest run: plan (only new or changed sources), load and encode (the engine's part),
write each batch in one transaction, count everything in the report.

Runs with the same encoder (a derived encoder's: its base's) take turns, by a PostgreSQL
advisory lock held for the whole run (a crashed run's turn ends with its connection): a second
run waits, then plans against what the first one wrote, so no file is encoded twice and the
files the first run indexed are counted unchanged. Runs with other encoders go on at once.

The local engine's loading (decode in worker threads, encode each batch here) is `Run`'s own;
another engine (ingest/ray_engine.py) overrides `load_and_encode` and hands `add` items it
has encoded already.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgsearch.config import Settings
from imgsearch.db import derived, prune, store
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.encoder import Encoder, collate
from imgsearch.errors import ImageDecodeError
from imgsearch.ingest.loading import Loaded, load
from imgsearch.ingest.options import IngestOptions
from imgsearch.ingest.reader import unchanged
from imgsearch.ingest.report import IngestReport
from imgsearch.ingest.writer import write
from imgsearch.progress import Progress, ProgressCallback
from imgsearch.sources import Failure, Source, display_path

PLAN_CHUNK = 512
WAIT_POLL_S = 0.5  # how often a run waiting for its turn looks again (and at `stop`)


CPU_BATCH_SIZE = 8  # benchmarks/encode.py: small batches are fastest on a 2-core CPU
GPU_BATCH_SIZE = 128


def default_batch_size(encoder: Encoder) -> int:
    return GPU_BATCH_SIZE if encoder.device_type == "cuda" else CPU_BATCH_SIZE


class Run:
    def __init__(
        self,
        db: Database,
        encoder: Encoder,
        options: IngestOptions,
        progress: ProgressCallback | None,
        stop: threading.Event,
        settings: Settings,
    ) -> None:
        self.db, self.encoder, self.options, self.progress, self.stop = db, encoder, options, progress, stop
        self.batch_size = options.batch_size or default_batch_size(encoder)
        self.workers = options.workers or os.cpu_count() or 2
        self.rehash, self.augment = options.rehash, options.augment
        self.report = IngestReport(model=encoder.name)
        self.found = 0
        self.finding = True
        self.started = time.monotonic()
        self._last_progress = 0.0
        self.batch: list[Loaded] = []
        self.errors: list[Failure] = []
        self.settings = settings  # the limits on reading and decoding each image

    def execute(self, items: Iterator[Source | Failure]) -> None:
        with connect(self.db, autocommit=True) as conn:
            self.conn = conn
            self.enc_id = store.encoder_id(conn, self.encoder.identity)
            if self._wait_for_turn():
                self.derived = derived.dependants(conn, self.enc_id)
                self.load_and_encode(self._plan(items))
                self.finding = False
                self._flush()
                self._fill_new_derived()
        self.report.interrupted = self.stop.is_set()
        self.report.seconds = time.monotonic() - self.started
        self._tick(force=True)

    def _wait_for_turn(self) -> bool:
        """Take this encoder's ingest lock, waiting while another run holds it (False: stopped
        while waiting); the wait is shown as progress and counted in `report.waited`."""
        began, waiting = time.monotonic(), False
        while not store.take_ingest_turn(self.conn, self.enc_id):
            waiting = True
            if self.progress is not None:
                note = f"another ingest with {self.encoder.name} is running: waiting for it to finish"
                self.progress(Progress("waiting", 0, None, time.monotonic() - began, note))
            if self.stop.wait(WAIT_POLL_S):
                break
        if waiting:
            self.report.waited = time.monotonic() - began
            if self.progress is not None:
                self.progress(Progress("waiting", 1, 1, self.report.waited))
        return not self.stop.is_set()

    def load_and_encode(self, planned: Iterator[tuple[Source, store.KnownImage | None]]) -> None:
        """The local engine: decode in worker threads; `_flush` encodes and writes each batch.
        Other engines override this and hand `add` items whose vectors they computed."""
        with ThreadPoolExecutor(self.workers, "imgsearch-load") as pool:
            window = self.batch_size + 2 * self.workers
            pending: deque[tuple[Source, Future]] = deque()
            for source, known in planned:
                if self.stop.is_set():
                    break
                pending.append(
                    (
                        source,
                        pool.submit(
                            load,
                            source,
                            known,
                            self.encoder.preprocess,
                            self.encoder.min_decode_size,
                            self.settings,
                            self.augment,
                        ),
                    )
                )
                self._drain(pending, keep=window - 1)
            self.finding = False
            self._drain(pending, keep=0)
            for _, future in pending:
                future.cancel()

    def add(self, item: Loaded | Failure) -> None:
        """One decoded (or failed) item; a full batch is written."""
        if isinstance(item, Failure):
            self.errors.append(item)
        else:
            self.batch.append(item)
            if item.warning:
                self.report.warnings.append((display_path(item.source.location), item.warning))
        if len(self.batch) >= self.batch_size:
            self._flush()

    def _fill_new_derived(self) -> None:
        """Encoders derived from this one while the run went on get the vectors they lack."""
        known = {enc_id for enc_id, _ in self.derived}
        for enc_id, projection in derived.dependants(self.conn, self.enc_id):
            if enc_id not in known:
                derived.fill(self.conn, enc_id, self.enc_id, projection)

    def count_gone(self, folders: list[Path], remove: bool) -> None:
        with connect(self.db, autocommit=True) as conn:
            gone = prune.find_gone(conn, [display_path(str(f)) for f in folders])
            self.report.gone = len(gone)
            if remove:
                self.report.pruned = prune.delete_images(conn, gone)

    def _plan(self, items: Iterator[Source | Failure]) -> Iterator[tuple[Source, store.KnownImage | None]]:
        """Yield what needs work; count and refresh what is indexed and unchanged."""
        seen: set[int] = set()
        while chunk := list(itertools.islice(items, PLAN_CHUNK)):
            self.found += len(chunk)
            fresh = []
            for item in chunk:
                if isinstance(item, Failure):
                    self.errors.append(item)
                elif hash(item.location) in seen:  # the same file named twice
                    self.found -= 1
                else:
                    seen.add(hash(item.location))
                    fresh.append(item)
            known = store.known_images(self.conn, self.enc_id, [s.location for s in fresh], self.augment)
            stale_metadata = []
            for source in fresh:
                entry = known.get(source.location)
                if entry is not None and unchanged(source, entry, self.rehash):
                    self.report.unchanged += 1
                    if source.metadata and source.metadata != entry.metadata:
                        stale_metadata.append(_metadata_row(source, entry))
                else:
                    yield source, entry
            if stale_metadata:
                write(self.conn, self.enc_id, [], [], refreshed=stale_metadata)
            self._tick()

    def _drain(self, pending: deque[tuple[Source, Future]], keep: int) -> None:
        """Collect finished work (oldest first) until at most `keep` items are in flight."""
        while len(pending) > keep and not self.stop.is_set():
            source, future = pending.popleft()
            try:
                self.add(future.result())
            except Exception as exc:  # one bad file never stops an ingest
                self.add(failure(source, exc))

    def _flush(self) -> None:
        if not self.batch and not self.errors:
            return
        to_write = [item for item in self.batch if item.inputs is not None]
        refreshed = [item.row for item in self.batch if item.inputs is None]
        written = write(
            self.conn,
            self.enc_id,
            [item.row for item in to_write],
            self._vectors(to_write),
            refreshed,
            derived=self.derived,
            augmented=self._augmented(to_write),
        )
        for location, reason in written.failed.items():
            self.errors.append(Failure(display_path(location), "database", reason))
        for item in to_write:
            location = item.row.location
            if location in written.failed:
                continue
            if location in written.inserted:
                self.report.new += 1
            else:
                self.report.updated += 1
        self.report.unchanged += len(refreshed) - sum(r.location in written.failed for r in refreshed)
        write(self.conn, self.enc_id, [], [], errors=self.errors)
        self.report.failures.extend(self.errors)
        self.batch.clear()
        self.errors = []
        self._tick()

    def _augmented(self, items: list[Loaded]) -> list[list[np.ndarray]] | None:
        """Each item's augmented vectors (None when this run augments nothing)."""
        if any(item.extra_vectors for item in items):  # encoded by another stage already
            return [list(item.extra_vectors) for item in items]
        extras = [x for item in items for x in item.extras]
        if not extras:
            return None
        encoded = iter(self.encoder.encode_batch(collate(extras)))
        return [[next(encoded) for _ in item.extras] for item in items]

    def _vectors(self, items: list[Loaded]) -> list:
        """Encode each distinct content once; reuse stored vectors of identical content."""
        shas = list(dict.fromkeys(item.row.sha256 for item in items))
        vectors: dict = store.vectors_by_sha(self.conn, self.enc_id, shas)
        first_of: dict[str, Loaded] = {}
        for item in items:
            if item.vector is not None:  # encoded by another stage already
                vectors.setdefault(item.row.sha256, item.vector)
            elif item.row.sha256 not in vectors:
                first_of.setdefault(item.row.sha256, item)
        if first_of:
            inputs = [i.inputs for i in first_of.values() if i.inputs is not None]  # all of them
            encoded = self.encoder.encode_batch(collate(inputs))
            vectors.update(zip(first_of, np.asarray(encoded), strict=True))
            self.report.encoded += len(first_of)
        return [vectors[item.row.sha256] for item in items]

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last_progress < 0.2):
            return
        self._last_progress = now
        self.progress(
            Progress("ingest", self.report.done, None if self.finding else self.found, now - self.started)
        )


def failure(source: Source, exc: Exception) -> Failure:
    """The error row of a source that could not be read or decoded."""
    if isinstance(exc, ImageDecodeError):
        return Failure(display_path(source.location), exc.kind, str(exc))
    return Failure(display_path(source.location), "error", f"{type(exc).__name__}: {exc}")


def _metadata_row(source: Source, known: store.KnownImage) -> store.ImageRow:
    return store.ImageRow(
        location=source.location,
        sha256=known.sha256,
        byte_size=known.byte_size,
        width=None,
        height=None,
        format=None,
        mtime=known.mtime,
        metadata=source.metadata,
    )
