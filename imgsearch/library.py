"""The library object: one database, its encoders kept loaded, one connection for searches.

    index = imgsearch.open()                 # IMGSEARCH_DATABASE_URL, else the embedded server
    index.ingest(["./photos"])
    result = index.search("query.jpg", k=5)  # the encoder is loaded once, then reused

The CLI and the HTTP service are thin layers over this object. It is safe to share between
threads: searches take turns on the connection, ingests open their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from imgsearch import config
from imgsearch.collection.cache import ResultCache
from imgsearch.collection.tools import CollectionTools
from imgsearch.db.connection import Database, connect
from imgsearch.db.schema import open_database
from imgsearch.errors import DatabaseUnavailable, first_line

POOL_TIMEOUT_S = 2.0  # longest wait for a pooled connection
RECONNECT_TIMEOUT_S = 5.0  # a pool's reconnection attempt gives up after this; the next starts anew
DOWN_FOR_S = 1.0  # after a failed wait, reads fail at once for this long
DOWN_MESSAGE = "The database is not answering; try again in a few seconds."

if TYPE_CHECKING:
    import numpy as np

    from imgsearch.browse import ImageInfo
    from imgsearch.encoding.encoder import Encoder
    from imgsearch.evaluation.evaluate import Evaluation
    from imgsearch.evaluation.near_duplicates import NearDuplicateEvaluation
    from imgsearch.evaluation.split import SplitEvaluation
    from imgsearch.ingest.report import IngestReport
    from imgsearch.learning.derive import TrainReport
    from imgsearch.progress import ProgressCallback
    from imgsearch.search import QueryOptions, SearchResult


class Index(CollectionTools):
    """An imgsearch index: a database plus a cache of loaded encoders (the collection tools,
    duplicates, clusters and maps, come from CollectionTools)."""

    def __init__(self, url: str | None = None, *, model: str | None = None,
                 device: str | None = None, backend: str | None = None,
                 pool_size: int | None = None) -> None:
        settings = config.load()
        self.db: Database = open_database(url)
        self.model = model or settings.model
        self.device = device or settings.device
        self.backend = backend or settings.backend  # auto: ONNX Runtime on a CPU, torch on a GPU
        self._encoders: dict[tuple[str, str | None], Encoder] = {}
        self._encoders_lock = threading.RLock()  # a derived encoder loads its base
        self._conn: psycopg.Connection | None = None
        self._conn_lock = threading.Lock()
        self._pool = None
        self._duplicate_groups = ResultCache()
        self._down_until = 0.0  # while the database is known to be down, reads fail at once
        if pool_size:  # concurrent readers (the HTTP service): a connection pool
            from psycopg_pool import ConnectionPool

            # A short wait for a connection and short reconnection attempts: with the database
            # down a request fails within POOL_TIMEOUT_S, and comes back soon after it returns.
            self._pool = ConnectionPool(self.db.url, min_size=1, max_size=pool_size, open=True,
                                        configure=_register_vector, timeout=POOL_TIMEOUT_S,
                                        check=ConnectionPool.check_connection,
                                        reconnect_timeout=RECONNECT_TIMEOUT_S,
                                        kwargs={"connect_timeout": 10})

    def encoder(self, model: str | None = None, weights: str | Path | None = None) -> Encoder:
        """The encoder called `model` (default: this index's), loaded on first use and kept."""
        key = (model or self.model, str(weights) if weights else None)
        with self._encoders_lock:
            if key not in self._encoders:
                self._encoders[key] = self._load_encoder(*key)
            return self._encoders[key]

    def _load_encoder(self, name: str, weights: str | None) -> Encoder:
        """A registered model, or else an encoder trained on this database (`imgsearch train`)."""
        from imgsearch.encoding.registry import get_encoder
        from imgsearch.errors import UnknownEncoder

        try:
            return get_encoder(name, self.device, weights, self.backend)
        except UnknownEncoder as exc:
            from imgsearch.db.derived import by_name
            from imgsearch.encoding.derived import DerivedEncoder

            with self.reading() as conn:
                found = by_name(conn, name)
            if found is None:
                raise UnknownEncoder(f"{exc} No trained encoder of that name in this database "
                                     "either (`imgsearch train`).") from None
            row, projection = found
            return DerivedEncoder(name, self.encoder(row.base_name), projection)

    def ingest(self, paths: Sequence[str | Path] = (), *, model: str | None = None,
               weights: str | Path | None = None, manifest: str | Path | None = None,
               progress: ProgressCallback | None = None, **options: Any) -> IngestReport:
        """Index images (see `imgsearch.ingest.pipeline.ingest` for the options)."""
        from imgsearch.ingest import ingest

        return ingest(paths, encoder=self.encoder(model, weights), manifest=manifest,
                      database=self.db, progress=progress, **options)

    def watch(self, paths: Sequence[str | Path], *, stop: threading.Event,
              on_event: Any = None, model: str | None = None, first_pass: bool = True) -> Any:
        """Index `paths`, then keep the index in step with them until `stop` is set."""
        from imgsearch.ingest.watch import watch

        return watch(paths, encoder=self.encoder(model), database=self.db, stop=stop,
                     on_event=on_event, first_pass=first_pass)

    def search(self, query: str | bytes, k: int = 5, *, model: str | None = None,
               weights: str | Path | None = None, min_similarity: float | None = None,
               options: QueryOptions | None = None, tta: bool = False) -> SearchResult:
        """The k indexed images most similar to a file, an http(s) URL, image bytes or `id:<n>`
        (`tta`: the query is the mean vector of the image, its mirror and its centre crop)."""
        from imgsearch.search import parse_image_id, search

        by_id = isinstance(query, str) and parse_image_id(query) is not None
        encoder = None if by_id else self.encoder(model, weights)
        if tta and encoder is not None:
            from imgsearch.encoding.tta import TestTimeAugmented

            encoder = TestTimeAugmented(encoder)
        def once():
            with self.reading() as conn:
                return search(query, k, encoder=encoder, model=model or self.model,
                              min_similarity=min_similarity, options=options, conn=conn)

        try:
            return once()
        except DatabaseUnavailable:  # the server restarted, say: one fresh connection
            if time.monotonic() < self._down_until:
                raise
            return once()

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection for reads: from the pool, or this object's own (one user at a time).
        A connection that breaks is dropped, so the next call opens a fresh one. A database
        that cannot be reached raises DatabaseUnavailable (at once while it is known down)."""
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable(DOWN_MESSAGE)
        if self._pool is not None:
            from psycopg_pool import PoolTimeout

            try:
                with self._pool.connection() as conn:
                    yield conn
            except PoolTimeout as exc:
                self._down_until = time.monotonic() + DOWN_FOR_S
                raise DatabaseUnavailable(DOWN_MESSAGE) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise DatabaseUnavailable(f"The database connection broke ({first_line(exc)}); "
                                          "try again.") from exc
            return
        with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.db)
            try:
                yield self._conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop_connection()
                raise DatabaseUnavailable(f"The database connection broke ({first_line(exc)}); "
                                          "try again.") from exc
            finally:
                if self._conn is not None and not self._conn.closed:
                    try:
                        self._conn.rollback()
                    except psycopg.Error:
                        self._drop_connection()

    def images(self, **filters: Any) -> tuple[list[ImageInfo], str | None]:
        """A page of the collection and the next page's cursor (see browse.list_images)."""
        from imgsearch.browse import list_images

        with self.reading() as conn:
            return list_images(conn, **filters)

    def image(self, image_id: int) -> ImageInfo | None:
        from imgsearch.browse import get_image

        with self.reading() as conn:
            return get_image(conn, image_id)

    def stats(self) -> dict:
        from imgsearch.browse import stats

        with self.reading() as conn:
            return stats(conn)

    def delete(self, image_id: int) -> bool:
        """Forget one image and its vectors (the file is not touched)."""
        from imgsearch.browse import delete_image

        with connect(self.db, autocommit=True) as conn:
            return delete_image(conn, image_id)

    def encode(self, images: Sequence[Any], model: str | None = None) -> np.ndarray:
        """Vectors (n, dim) for PIL images, file paths or image bytes."""
        from imgsearch.encoding.decode import decode_image

        encoder = self.encoder(model)
        pictures = [image if hasattr(image, "mode") else
                    decode_image(image, encoder.min_decode_size).image for image in images]
        return encoder.encode(pictures)

    def evaluate(self, root: str | Path, *, models: Sequence[str] = (),
                 **options: Any) -> Evaluation:
        """Leave-one-out retrieval quality on labelled images (see evaluation.evaluate)."""
        from imgsearch.evaluation.evaluate import evaluate

        encoders = [self.encoder(m) for m in models or [self.model]]
        return evaluate(root, encoders=encoders, database=self.db, **options)

    def near_duplicates(self, root: str | Path, *, models: Sequence[str] = (),
                        **options: Any) -> NearDuplicateEvaluation:
        """Copy detection: do edited copies find their original (see evaluation)."""
        from imgsearch.evaluation.near_duplicates import near_duplicates

        encoders = [self.encoder(m) for m in models or [self.model]]
        return near_duplicates(root, encoders=encoders, database=self.db, **options)

    def train(self, name: str, folder: str | Path | None = None, *, base: str | None = None,
              **options: Any) -> TrainReport:
        """Fit and register a derived encoder of `base` (see learning.derive.train)."""
        from imgsearch.learning.derive import train

        return train(self.db, self.encoder(base), name, folder=folder, **options)

    def drop_encoder(self, name: str, cascade: bool = False) -> list[str]:
        """Delete an encoder's vectors and registration (refused while others derive from it,
        unless `cascade`); the names dropped."""
        from imgsearch.db.derived import drop_encoder

        with connect(self.db) as conn:
            dropped = drop_encoder(conn, name, cascade)
            conn.commit()
        with self._encoders_lock:
            self._encoders = {k: v for k, v in self._encoders.items() if k[0] not in dropped}
        return dropped

    def evaluate_split(self, root: str | Path, *, model: str | None = None,
                       near_duplicates: bool = False, **options: Any) -> SplitEvaluation:
        """Fit on one half, score on the other (see evaluation.split)."""
        from imgsearch.evaluation.split import split_evaluate, split_near_duplicates

        run = split_near_duplicates if near_duplicates else split_evaluate
        return run(root, encoder=self.encoder(model), database=self.db, **options)

    def prune(self) -> int:
        """Forget indexed files that are gone; how many were removed."""
        from imgsearch.db.prune import prune

        return prune(self.db)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the search connection or pool (loaded encoders are freed with the object)."""
        with self._conn_lock:
            self._drop_connection()
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _register_vector(conn: psycopg.Connection) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


def open(url: str | None = None, *, model: str | None = None, device: str | None = None,
         backend: str | None = None) -> Index:
    """An Index on `url` (default: IMGSEARCH_DATABASE_URL, else the embedded server)."""
    return Index(url, model=model, device=device, backend=backend)
