"""The library object: one database, its encoders kept loaded, one connection for searches.

    index = imgsearch.open()                 # IMGSEARCH_DATABASE_URL, else the embedded server
    index.ingest(["./photos"])
    result = index.search("query.jpg", k=5)  # the encoder is loaded once, then reused

The CLI and the HTTP service are thin layers over this object. It is safe to share between
threads: searches take turns on the connection, ingests open their own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from imgsearch import config
from imgsearch.db.connection import Database, connect
from imgsearch.db.schema import open_database

if TYPE_CHECKING:
    import numpy as np

    from imgsearch.encoding.encoder import Encoder
    from imgsearch.evaluation.evaluate import Evaluation
    from imgsearch.evaluation.near_duplicates import NearDuplicateEvaluation
    from imgsearch.ingest.report import IngestReport
    from imgsearch.progress import ProgressCallback
    from imgsearch.search import QueryOptions, SearchResult


class Index:
    """An imgsearch index: a database plus a cache of loaded encoders."""

    def __init__(self, url: str | None = None, *, model: str | None = None,
                 device: str | None = None, backend: str | None = None) -> None:
        settings = config.load()
        self.db: Database = open_database(url)
        self.model = model or settings.model
        self.device = device or settings.device
        self.backend = backend or settings.backend  # auto: ONNX Runtime on a CPU, torch on a GPU
        self._encoders: dict[tuple[str, str | None], Encoder] = {}
        self._encoders_lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._conn_lock = threading.Lock()

    def encoder(self, model: str | None = None, weights: str | Path | None = None) -> Encoder:
        """The encoder called `model` (default: this index's), loaded on first use and kept."""
        key = (model or self.model, str(weights) if weights else None)
        with self._encoders_lock:
            if key not in self._encoders:
                from imgsearch.encoding.registry import get_encoder

                self._encoders[key] = get_encoder(key[0], self.device, weights, self.backend)
            return self._encoders[key]

    def ingest(self, paths: Sequence[str | Path] = (), *, model: str | None = None,
               weights: str | Path | None = None, manifest: str | Path | None = None,
               progress: ProgressCallback | None = None, **options: Any) -> IngestReport:
        """Index images (see `imgsearch.ingest.pipeline.ingest` for the options)."""
        from imgsearch.ingest import ingest

        return ingest(paths, encoder=self.encoder(model, weights), manifest=manifest,
                      database=self.db, progress=progress, **options)

    def search(self, query: str, k: int = 5, *, model: str | None = None,
               weights: str | Path | None = None, min_similarity: float | None = None,
               options: QueryOptions | None = None) -> SearchResult:
        """The k indexed images most similar to a file, an http(s) URL or `id:<n>`."""
        from imgsearch.search import parse_image_id, search

        encoder = None if parse_image_id(query) is not None else self.encoder(model, weights)
        with self._conn_lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return search(query, k, encoder=encoder, model=model or self.model,
                                  min_similarity=min_similarity, options=options, conn=conn)
                except psycopg.OperationalError:
                    self._drop_connection()  # the server restarted, say: one fresh try
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

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

    def prune(self) -> int:
        """Forget indexed files that are gone; how many were removed."""
        from imgsearch.db.prune import prune

        return prune(self.db)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.db)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the search connection (loaded encoders are freed with the object)."""
        with self._conn_lock:
            self._drop_connection()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(url: str | None = None, *, model: str | None = None, device: str | None = None,
         backend: str | None = None) -> Index:
    """An Index on `url` (default: IMGSEARCH_DATABASE_URL, else the embedded server)."""
    return Index(url, model=model, device=device, backend=backend)
