"""What the library object hands out for looking after things rather than searching them:
`index.database` (the server, its schema, the vectors' layout), `index.ann` (the pgvector
ANN indexes) and `index.models` (the encoders there are, and their checkpoints)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.db.connection import Database, connect, resolve
from imgsearch.errors import ImgsearchError

if TYPE_CHECKING:
    from imgsearch.db.index_tuning import TuningResult
    from imgsearch.db.indexes import IndexStatus
    from imgsearch.db.partition import PartitionReport
    from imgsearch.db.status import DatabaseStatus
    from imgsearch.encoding.registry import ModelInfo
    from imgsearch.library.core import Core
    from imgsearch.progress import ProgressCallback


class DatabaseAdmin:
    """The database an Index uses: its URL, status and schema revision, the embedded server
    (stopped, supervised), the vectors table's partitions, an encoder's vectors dropped. Status
    and migrations work on a schema that is not at head (they do not migrate it first)."""

    def __init__(self, core: Core) -> None:
        self._core = core

    @property
    def embedded(self) -> bool:
        """Whether imgsearch runs this database's server itself (no URL given or configured)."""
        return not (self._core.url or self._core.settings.database_url)

    def _server(self) -> Database:
        """The database, started but neither checked nor migrated."""
        return resolve(self._core.url, self._core.settings)

    def url(self) -> str:
        """A URL that psql or another application can connect with."""
        return self._server().url

    def describe(self) -> str:
        """The server, as shown to people (no password)."""
        return self._server().describe()

    def status(self) -> DatabaseStatus:
        """Server, PostgreSQL and pgvector versions, schema revision, row counts, settings."""
        from imgsearch.db.schema import ensure_pgvector
        from imgsearch.db.status import database_status

        db = self._server()
        ensure_pgvector(db)
        return database_status(db)

    def revision(self) -> str | None:
        """The schema's Alembic revision (None: no imgsearch tables)."""
        from imgsearch.db.migrations import current_revision

        return current_revision(self._server())

    def upgrade(self, revision: str = "head") -> str | None:
        """Apply migrations up to `revision` (they also apply on first use); the revision now."""
        from imgsearch.db.migrations import upgrade
        from imgsearch.db.schema import ensure_pgvector

        db = self._server()
        ensure_pgvector(db)
        upgrade(db, revision)
        return self.revision()

    def downgrade(self, revision: str) -> str | None:
        """Revert migrations down to `revision` (`base` removes every imgsearch table); the
        revision now."""
        from imgsearch.db.migrations import downgrade

        downgrade(self._server(), revision)
        return self.revision()

    def stop(self) -> bool:
        """Stop the embedded server (it restarts on next use); False when it was not running."""
        from imgsearch.db import embedded

        if not self.embedded:
            raise ImgsearchError("IMGSEARCH_DATABASE_URL is set: imgsearch does not manage that server.")
        return embedded.stop(self._core.settings.home)

    def supervise(self, stop: threading.Event) -> None:
        """Until `stop` is set, start the embedded server again whenever it is found stopped or
        dead (returns at once for a server given by URL)."""
        db = self._core.db
        if db.embedded_dir is not None:
            from imgsearch.db import embedded

            embedded.supervise(db.embedded_dir.parent, stop, overrides=self._core.settings.server_settings)

    def server_versions(self) -> tuple[str, str | None]:
        """The server's PostgreSQL and pgvector versions (a cheap liveness check)."""
        from imgsearch.db.status import server_versions

        with self._core.reading() as conn:
            return server_versions(conn)

    def partition(self, count: int) -> PartitionReport:
        """Rebuild the vectors table as `count` hash partitions (1: a plain table), each with its
        own ANN indexes, in one transaction."""
        from imgsearch.db.partition import partition

        return partition(self._core.db, count)

    def drop_encoder(self, name: str, cascade: bool = False) -> list[str]:
        """Delete an encoder's vectors and registration (refused while others derive from it,
        unless `cascade`); the names dropped."""
        from imgsearch.db.derived import drop_encoder

        with connect(self._core.db) as conn:
            dropped = drop_encoder(conn, name, cascade)
            conn.commit()
        self._core._forget_encoders(dropped)
        return dropped


@dataclass
class IndexBuild:
    """How an ANN index is built (`imgsearch index create`)."""

    kind: str = "hnsw"  # or ivfflat
    m: int = 16  # HNSW links per node
    ef_construction: int = 64  # HNSW build candidate list
    lists: int | None = None  # IVFFlat lists (None: from the row count)
    quantize: str | None = None  # binary: 1 bit per dimension, candidates re-ranked exactly


class AnnIndexes:
    """The pgvector ANN indexes, one per encoder (`model` None: the index's own)."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def create(
        self,
        model: str | None = None,
        build: IndexBuild | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[str, list[str]]:
        """Build (or rebuild) the encoder's index; its name and any warnings."""
        from imgsearch.db.indexes import create_index

        chosen = asdict(build or IndexBuild())
        return create_index(self._core.db, model or self._core.model, **chosen, progress=progress)

    def tune(
        self,
        model: str | None = None,
        recall: float = 0.95,
        *,
        k: int = 10,
        queries: int = 300,
        progress: ProgressCallback | None = None,
    ) -> TuningResult:
        """Measure recall@k with held-out-like queries and keep the cheapest setting that reaches
        `recall` (see db.index_tuning)."""
        from imgsearch.db.index_tuning import tune

        name = model or self._core.model
        return tune(self._core.db, name, recall, k=k, queries=queries, progress=progress)

    def drop(self, model: str | None = None) -> list[str]:
        """Drop the encoder's index (searches fall back to an exact scan); the names dropped."""
        from imgsearch.db.indexes import drop_index

        return drop_index(self._core.db, model or self._core.model)

    def status(self) -> list[IndexStatus]:
        """Per encoder: kind, parameters, size, rows, validity, tuning, advice."""
        from imgsearch.db.indexes import index_status

        return index_status(self._core.db)

    def prewarm(self) -> list[str]:
        """Load the indexes into the memory of the server searches go to (pg_prewarm; the
        replica when there is one); the indexes loaded (none without pg_prewarm)."""
        from imgsearch.db.indexes import prewarm

        return prewarm(self._core.search_database)


class Models:
    """The encoders: those there are (and whether their weights are here), CLIP-style
    checkpoints put into the model cache, and those with vectors in this database."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def available(self) -> list[ModelInfo]:
        """Every encoder name imgsearch knows, its dimension, whether it works offline."""
        from imgsearch.encoding.registry import list_models

        return list_models()

    def pull(self, name: str, source: str | Path | None = None) -> Path:
        """Put a CLIP-style model's checkpoint into the model cache: from the Hugging Face hub,
        or from a file or folder on this machine (`source`); the folder it is in."""
        from imgsearch.encoding import clip_catalog

        return clip_catalog.install(name, Path(source)) if source is not None else clip_catalog.pull(name)

    def indexed(self) -> list[str]:
        """The encoders with vectors in this database (what searches can use)."""
        from imgsearch.db.store import indexed_encoder_names

        with self._core.reading() as conn:
            return indexed_encoder_names(conn)
