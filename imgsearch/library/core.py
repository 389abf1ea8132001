"""What every part of the library object stands on: the database (opened on first use), the
encoders (loaded on first use and kept), and connections for reads and searches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch import config
from imgsearch.collection.cache import LookCache, ResultCache
from imgsearch.db.connection import Database, libpq_url
from imgsearch.db.reading import ReadConnections
from imgsearch.db.schema import open_database
from imgsearch.errors import DatabaseUnavailable, ImgsearchError

if TYPE_CHECKING:
    import numpy as np
    import psycopg
    from PIL import Image

    from imgsearch.collection.duplicates import Group
    from imgsearch.db.store import EncoderRow
    from imgsearch.encoding.encoder import Encoder

EncoderKey = tuple[str, str | None]  # (name, weights file)

log = logging.getLogger("imgsearch.library")


class Core:
    """A database plus a cache of loaded encoders (see `imgsearch.library.Index`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        backend: str | None = None,
        pool_size: int = 0,
        encoders: Iterable[Encoder] = (),
        replica: str | None = None,
        settings: config.Settings | None = None,
    ) -> None:
        self.settings = settings = settings if settings is not None else config.load()
        self.url = url  # None: IMGSEARCH_DATABASE_URL, else the embedded server
        self.model = model or settings.model
        self.device = device or settings.device
        self.backend = backend or settings.backend  # auto: ONNX Runtime on a CPU, torch on a GPU
        self._db: Database | None = None
        self._opened: ReadConnections | None = None
        self._open_lock = threading.Lock()
        self._pool_size = pool_size
        self._encoders: dict[EncoderKey, Encoder] = {(e.name, None): e for e in encoders}
        self._encoders_lock = threading.RLock()  # a derived encoder loads its base
        self._replica = _replica_connections(replica or settings.replica_url, pool_size)
        # the collection tools' state (library/collection.py): duplicate groups with the keepers
        # chosen in them, per state of the collection; how candidates look; models calibrating
        self._duplicate_groups: ResultCache[tuple[list[Group], dict[int, tuple[int, bool]]]] = ResultCache()
        self._looks = LookCache(settings)
        self._calibrating: set[str | None] = set()
        self._calibrating_lock = threading.Lock()

    @property
    def db(self) -> Database:
        """The database, ready for imgsearch (pgvector checked, the schema migrated to head);
        opened on first use, so that the commands that look after the database itself
        (`index.database`) and those that need none (`index.models`) do not open it."""
        if self._db is None:
            with self._open_lock:
                if self._db is None:
                    self._db = open_database(self.url, settings=self.settings)
        return self._db

    @property
    def _known_down(self) -> bool:
        """The database's last wait for a connection failed a moment ago (asked without
        opening it)."""
        return self._opened is not None and self._opened.known_down

    def prepare(self) -> Database:
        """Open the database now rather than on first use: the embedded server started, the
        schema migrated (before a service forks its workers or answers its first request)."""
        return self.db

    @property
    def _reads(self) -> ReadConnections:
        if self._opened is None:
            db = self.db
            with self._open_lock:
                if self._opened is None:
                    self._opened = ReadConnections(db, self._pool_size)
        return self._opened

    # --- encoders -------------------------------------------------------------------------

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
                tuned = self._finetuned(conn, name) if found is None else None
            if tuned is not None:
                return tuned
            if found is None:
                raise UnknownEncoder(
                    f"{exc} No trained encoder of that name in this database either (`imgsearch train`)."
                ) from None
            row, projection = found
            return DerivedEncoder(name, self.encoder(row.base_name), projection)

    def _finetuned(self, conn, name: str) -> Encoder | None:
        """The fine-tuned encoder `name` (`imgsearch train --finetune`), if this database has one."""
        from imgsearch.db import finetuned
        from imgsearch.encoding.onnx_runtime import cache_dir
        from imgsearch.encoding.registry import finetuned_encoder

        row = finetuned.by_name(conn, name)
        if row is None:
            return None
        path = finetuned.weights_file(conn, row, cache_dir(self.settings.home) / "finetuned")
        return finetuned_encoder(name, path, row.size, self.device, self.backend)

    def _loaded(self, name: str) -> Encoder | None:
        """The encoder called `name` (default weights), if it is loaded; None (nothing loads)."""
        with self._encoders_lock:
            return self._encoders.get((name, None))

    def _forget_encoders(self, names: Iterable[str]) -> None:
        """Drop loaded encoders (their vectors were deleted)."""
        gone = set(names)
        with self._encoders_lock:
            self._encoders = {k: v for k, v in self._encoders.items() if k[0] not in gone}

    def reads_words(self, model: str | None = None) -> bool:
        """Whether `model` (default: this index's) can be searched by words: a CLIP-style model,
        or one trained from one (`train --captions`); known without loading it."""
        from imgsearch.db.derived import by_name
        from imgsearch.encoding.clip_catalog import is_clip

        name = model or self.model
        if is_clip(name, self.settings.home):
            return True
        with self.reading() as conn:
            found = by_name(conn, name)
        return (
            found is not None and is_clip(found[0].base_name, self.settings.home) and found[0].kind == "joint"
        )

    def encode_text(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """Vectors (n, dim) of words, in the space of a CLIP-style model's pictures (for SQL
        applications: pass one to imgsearch.similar_to_vector)."""
        from imgsearch.search import check_text, reads_pictures_only

        for text in texts:
            check_text(text)
        encoder = self.encoder(model)
        if encoder.text is None:
            raise reads_pictures_only(encoder.name)
        return encoder.text.encode_text(list(texts))

    def encode(
        self, images: Sequence[Image.Image | bytes | str | Path], model: str | None = None
    ) -> np.ndarray:
        """Vectors (n, dim) for PIL images, file paths or image bytes."""
        from imgsearch.encoding.decode import DecodeLimits, decode_image

        encoder = self.encoder(model)
        pictures = [
            image
            if not isinstance(image, (bytes, str, Path))
            else decode_image(image, encoder.min_decode_size, DecodeLimits.of(self.settings)).image
            for image in images
        ]
        return encoder.encode(pictures)

    def _indexed_encoder(self, conn: psycopg.Connection, model: str | None) -> EncoderRow:
        """The stored row of `model` (default: this index's); NoVectors when nothing is indexed
        with it."""
        from imgsearch.db import store
        from imgsearch.db.nearest import NoVectors

        name = model or self.model
        enc = store.encoder_by_name(conn, name)
        if enc is None:
            raise NoVectors(f"No images are indexed with {name} yet: run `imgsearch ingest` first.")
        return enc

    # --- connections ----------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """A connection for reads (see db.reading): DatabaseUnavailable when the database
        cannot be reached, at once while it is known to be down."""
        with self._reads.connection() as conn:
            yield conn

    @contextmanager
    def searching(self) -> Iterator[psycopg.Connection]:
        """A connection for searches: the read replica when there is one (`replica`,
        IMGSEARCH_REPLICA_URL), the database itself while the replica does not answer."""
        with ExitStack() as stack:
            conn = None
            if self._replica is not None:
                try:
                    conn = stack.enter_context(self._replica.connection())
                except DatabaseUnavailable:
                    conn = None  # the replica is down: the primary answers
            if conn is None:
                conn = stack.enter_context(self._reads.connection())
            yield conn

    @property
    def search_database(self) -> Database:
        """The server searches go to: the replica when there is one, else the database."""
        return self._replica.db if self._replica is not None else self.db

    def close(self) -> None:
        """Close the read connections (loaded encoders are freed with the object)."""
        if self._opened is not None:
            self._opened.close()
        if self._replica is not None:
            self._replica.close()


REPLICA_TIMEOUT_S = 0.5  # a replica that does not answer this fast is skipped ...
REPLICA_DOWN_FOR_S = 30.0  # ... for this long: searches go to the primary meanwhile
REPLICA_CONNECT_TIMEOUT_S = 2  # libpq's smallest useful connect timeout


def _replica_connections(url: str | None, pool_size: int) -> ReadConnections | None:
    """Read connections to a replica (None without one); a malformed URL is refused here."""
    if not url:
        return None
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(libpq_url(url))
    except ProgrammingError as exc:
        raise ImgsearchError(
            "The replica URL (--replica or IMGSEARCH_REPLICA_URL) is not a PostgreSQL URL "
            "(expected postgresql://user@host:port/database)."
        ) from exc
    return ReadConnections(
        Database(libpq_url(url)),
        pool_size,
        timeout=REPLICA_TIMEOUT_S,
        down_for=REPLICA_DOWN_FOR_S,
        connect_timeout=REPLICA_CONNECT_TIMEOUT_S,
        shed_when_busy=False,  # a busy replica is waited for (briefly), not skipped
    )
