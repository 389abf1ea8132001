"""The library object: one database, its encoders kept loaded, connections for reads.

    index = imgsearch.open()                 # IMGSEARCH_DATABASE_URL, else the embedded server
    index.ingest(["./photos"])
    result = index.search("query.jpg", k=5)  # the encoder is loaded once, then reused
    nearby = index.search_vector(index.encode(["query.jpg"])[0], k=5)  # a vector one has

`Index` is the one way in for every client: the CLI and the HTTP service parse, call it and
format what it returns. Searching, browsing and ingesting are its own methods, the collection
tools (library/collection.py) and evaluation and training (library/quality.py) too; it hands
out `index.database`, `index.ann` and `index.models` for looking after the database, its ANN
indexes and the encoders (library/admin.py). The database is opened on first use. It is safe
to share between threads: reads take turns on one connection (or use a pool), writes open
their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgsearch import config
from imgsearch.db.connection import connect, implicit_transactions
from imgsearch.errors import DatabaseUnavailable
from imgsearch.ingest.options import IngestOptions
from imgsearch.library.admin import AnnIndexes, DatabaseAdmin, Models
from imgsearch.library.collection import CollectionTools
from imgsearch.library.quality import Quality

if TYPE_CHECKING:
    import numpy as np
    import psycopg

    from imgsearch.browse import CollectionStats, Folder, ImageInfo, ImagePage
    from imgsearch.db.nearest import QueryOptions
    from imgsearch.encoding.encoder import Encoder
    from imgsearch.ingest.report import IngestReport
    from imgsearch.ingest.watch import WatchEvent
    from imgsearch.progress import ProgressCallback
    from imgsearch.search import SearchResult


class Index(CollectionTools, Quality):
    """An imgsearch index: a database plus a cache of loaded encoders.

    `url`: the database (default IMGSEARCH_DATABASE_URL, else the embedded server), opened on
    first use. `encoders` are already loaded encoders to use for their names (a notebook's or
    a test's own instance), instead of loading them again on first use. `replica` (default
    IMGSEARCH_REPLICA_URL): a read replica of the database that searches are sent to.
    `settings` (default: loaded from the environment now) are kept as `self.settings` and
    handed to everything the index does; the other arguments override theirs.
    """

    @cached_property
    def database(self) -> DatabaseAdmin:
        """The database itself: status, migrations, the embedded server, partitions."""
        return DatabaseAdmin(self)

    @cached_property
    def ann(self) -> AnnIndexes:
        """The pgvector ANN indexes: create, tune, drop, status, prewarm."""
        return AnnIndexes(self)

    @cached_property
    def models(self) -> Models:
        """The encoders: available, pulled, indexed in this database."""
        return Models(self)

    # --- ingest ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path] = (),
        options: IngestOptions | None = None,
        *,
        model: str | None = None,
        weights: str | Path | None = None,
        progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
        **choices: Any,
    ) -> IngestReport:
        """Index images under `paths` and/or `options.manifest` with `model` (see
        `imgsearch.ingest.pipeline`); `choices`: fields of IngestOptions to change, e.g.
        `index.ingest(["photos"], rehash=True)`."""
        from imgsearch.ingest.pipeline import ingest

        chosen = replace(options or IngestOptions(), **choices)
        encoder = self.encoder(model, weights)
        return ingest(
            paths,
            encoder=encoder,
            options=chosen,
            database=self.db,
            progress=progress,
            stop=stop,
            settings=self.settings,
        )

    def watch(
        self,
        paths: Sequence[str | Path],
        *,
        stop: threading.Event,
        on_event: Callable[[WatchEvent], None] | None = None,
        model: str | None = None,
        first_pass: bool = True,
    ) -> IngestReport | None:
        """Index `paths`, then keep the index in step with them until `stop` is set."""
        from imgsearch.ingest.watch import watch

        return watch(
            paths,
            encoder=self.encoder(model),
            database=self.db,
            stop=stop,
            on_event=on_event,
            first_pass=first_pass,
            settings=self.settings,
        )

    def prune(self) -> int:
        """Forget indexed files that are gone; how many were removed."""
        from imgsearch.db.prune import prune

        return prune(self.db)

    def delete(self, image_id: int) -> bool:
        """Forget one image and its vectors (the file is not touched)."""
        from imgsearch.browse import delete_image

        with connect(self.db, autocommit=True) as conn:
            return delete_image(conn, image_id)

    # --- search and browse ----------------------------------------------------------------

    def search(
        self,
        query: str | bytes | None = None,
        k: int = 5,
        *,
        text: str | None = None,
        text_weight: float | None = None,
        model: str | None = None,
        weights: str | Path | None = None,
        min_similarity: float | None = None,
        options: QueryOptions | None = None,
        tta: bool = False,
    ) -> SearchResult:
        """The k indexed images most similar to a file, an http(s) URL, image bytes or `id:<n>`
        (`tta`: the query is the mean vector of the image, its mirror and its centre crop), to
        `text` (a CLIP-style model's words), or to both (`text_weight`: the words' share, 0.5)."""
        from imgsearch.search import DEFAULT_TEXT_WEIGHT, TextQuery, parse_image_id, search

        weight = DEFAULT_TEXT_WEIGHT if text_weight is None else text_weight
        words = None if text is None else TextQuery(text, weight)
        if words is not None and weights is None and not self.reads_words(model):
            from imgsearch.search import reads_pictures_only

            raise reads_pictures_only(model or self.model)  # known before loading the model
        by_id = isinstance(query, str) and parse_image_id(query) is not None
        encoder: Encoder | None = None if by_id and words is None else self.encoder(model, weights)
        if tta and encoder is not None:
            from imgsearch.encoding.tta import TestTimeAugmented

            encoder = TestTimeAugmented(encoder)

        return self._searched(
            lambda conn: search(
                query,
                k,
                text=words,
                encoder=encoder,
                model=model or self.model,
                min_similarity=min_similarity,
                options=_with_folder(conn, options),
                conn=conn,
                settings=self.settings,
            )
        )

    def search_vector(
        self,
        vector: Sequence[float] | np.ndarray | Any,
        k: int = 5,
        *,
        model: str | None = None,
        min_similarity: float | None = None,
        options: QueryOptions | None = None,
    ) -> SearchResult:
        """The k indexed images nearest a vector one already has (from `encode`, `encode_text`,
        or a model of one's own in the same space), best first: `search` after its encoding,
        with the same filters, relevance feedback, results and replica. `model` (default: this
        index's) says whose vectors: the encoder of that name this index has loaded, else the
        newest one of that name in the database (as the SQL functions resolve it; nothing is
        loaded). A vector of another dimension than the model's, with NaN or infinite values,
        or all zeros is refused (ImgsearchError); its length does not matter otherwise."""
        from imgsearch.search import search_vector

        name = model or self.model
        encoder = self._loaded(name)
        return self._searched(
            lambda conn: search_vector(
                vector,
                k,
                encoder=encoder,
                model=name,
                min_similarity=min_similarity,
                options=_with_folder(conn, options),
                conn=conn,
                settings=self.settings,
            )
        )

    def _searched(self, run: Callable[[psycopg.Connection], SearchResult]) -> SearchResult:
        """`run` on a search connection (`searching`: the replica's when there is one) with
        implicit transactions (`connection.implicit_transactions`); once more on a fresh
        connection when the database dropped it."""

        def once() -> SearchResult:
            with self.searching() as conn, implicit_transactions(conn):
                return run(conn)

        try:
            return once()
        except DatabaseUnavailable:  # the server restarted, say: one fresh connection
            if self._known_down:
                raise
            return once()

    def images(self, *, folder: str | None = None, **page: Any) -> ImagePage:
        """A page of the collection, with the cursor of the next page; `folder` absolute or
        relative to the collection's root; `page`: browse.list_images's (since, until, sort,
        descending, after, limit)."""
        from imgsearch.browse import list_images, resolve_folder

        with self.reading() as conn:
            return list_images(conn, folder=resolve_folder(conn, folder), **page)

    def folders(self) -> list[Folder]:
        """Folders holding indexed files, with image counts, relative to the collection's root."""
        from imgsearch.browse import folders

        with self.reading() as conn:
            return folders(conn)

    def image(self, image_id: int) -> ImageInfo | None:
        """One indexed image's record, or None."""
        from imgsearch.browse import get_image

        with self.reading() as conn:
            return get_image(conn, image_id)

    def collection_root(self) -> str | None:
        """The deepest folder holding every indexed local file (None when there is none)."""
        from imgsearch.browse import collection_root

        with self.reading() as conn:
            return collection_root(conn)

    def stats(self) -> CollectionStats:
        """Images, encoders with their vector counts, ANN indexes, the last indexing time."""
        from imgsearch.browse import stats

        with self.reading() as conn:
            return stats(conn)

    def download_query(self, url: str) -> bytes:
        """The bytes of a query image at an http(s) URL (the download rules apply: see
        `imgsearch.download`); QueryImageError says why when it cannot be had."""
        from imgsearch.errors import ImageDecodeError
        from imgsearch.search import QueryImageError
        from imgsearch.sources import fetch

        try:
            return fetch(url, self.settings)
        except ImageDecodeError as exc:
            raise QueryImageError(f"Query {url}: {exc}", exc.kind) from exc

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_folder(conn: psycopg.Connection, options: QueryOptions | None) -> QueryOptions | None:
    """The options with a relative folder filter resolved against the collection's root."""
    if options is None or not options.folder:
        return options
    from imgsearch.browse import resolve_folder

    return replace(options, folder=resolve_folder(conn, options.folder))


def open(
    url: str | None = None,
    *,
    model: str | None = None,
    device: str | None = None,
    backend: str | None = None,
    settings: config.Settings | None = None,
) -> Index:
    """An Index on `url` (default: IMGSEARCH_DATABASE_URL, else the embedded server), with
    `settings` (default: the environment's, loaded now), its database opened now: started,
    checked and migrated, so that plain SQL on it finds imgsearch's tables (`Index(...)` opens
    it on first use instead)."""
    index = Index(url, model=model, device=device, backend=backend, settings=settings)
    try:
        index.prepare()
    except BaseException:
        index.close()
        raise
    return index
