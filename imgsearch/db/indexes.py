"""pgvector ANN indexes, one per encoder: an expression + partial index on that encoder's rows.

`embedding::halfvec(dim)` with `WHERE encoder_id = n` lets encoders of different dimensions
share one table; queries that use the same expression (imgsearch.search, the SQL functions)
are served by the index. A binary-quantised HNSW index (`quantize="binary"`) indexes
`binary_quantize(embedding::halfvec(dim))::bit(dim)` (1 bit a dimension: a 16th of halfvec's
size); searches re-rank its candidates by exact distance.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from imgsearch.db import search_settings, store
from imgsearch.db.connection import Database, connect, scalar
from imgsearch.db.sizing import machine_memory
from imgsearch.errors import ImgsearchError
from imgsearch.progress import Progress, ProgressCallback

IVFFLAT_MIN_ROWS_PER_LIST = 39  # pgvector warns below this many rows per list
NAME_KINDS = ("hnsw", "ivfflat", "hnsw_bit")  # index_name's middle part; hnsw_bit: binary-quantised
NAME_PATTERN = rf"^embeddings_({'|'.join(NAME_KINDS)})_enc\d+$"  # every per-encoder ANN index
MIN_MAINTENANCE_MEMORY = 2**30  # an HNSW build whose graph does not fit is several times slower
GRAPH_HEADROOM = 1.15  # over graph_bytes: pgvector's allocations besides the elements themselves
REBUILD_GROWTH = 2.0  # advise an IVFFlat rebuild when the table has doubled since the build


@dataclass
class IndexStatus:
    encoder: str
    name: str
    kind: str
    parameters: str
    size_bytes: int
    rows: int
    rows_at_build: int | None
    valid: bool
    tuning: search_settings.SearchSettings | None = None  # what `index tune` chose and measured

    @property
    def retune_advised(self) -> bool:
        """The collection has doubled since `index tune` measured its recall."""
        return self.tuning is not None and self.rows > REBUILD_GROWTH * max(self.tuning.rows_at_tuning, 1)

    @property
    def rebuild_advised(self) -> bool:
        return (
            self.kind == "ivfflat"
            and self.rows_at_build is not None
            and self.rows > REBUILD_GROWTH * max(self.rows_at_build, 1)
        )


def index_name(kind: str, encoder_id: int, quantize: str | None = None) -> str:
    return f"embeddings_{kind}{'_bit' if quantize == 'binary' else ''}_enc{encoder_id}"


def existing_index(conn, enc_id: int) -> str | None:
    """The name of the encoder's ANN index, if it has one."""
    names = [f"embeddings_{part}_enc{enc_id}" for part in NAME_KINDS]
    return scalar(
        conn.execute(
            "SELECT min(relname) FROM pg_class WHERE relnamespace = 'imgsearch'::regnamespace"
            " AND relkind IN ('i', 'I') AND relname = ANY(%s)",
            (names,),
        )
    )


def default_lists(rows: int) -> int:
    """pgvector's advice: rows/1000 up to 1M rows, sqrt(rows) beyond."""
    return max(1, rows // 1000) if rows <= 1_000_000 else int(math.sqrt(rows))


def _encoder(conn, name: str) -> tuple[int, int]:
    enc = store.encoder_by_name(conn, name)
    if enc is None:
        raise ImgsearchError(f"No encoder named {name!r} in the database: ingest with it first.")
    return enc.id, enc.dimension


def create_index(
    db: Database,
    encoder: str,
    kind: str = "hnsw",
    *,
    m: int = 16,
    ef_construction: int = 64,
    lists: int | None = None,
    quantize: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[str, list[str]]:
    """Build (or rebuild) the encoder's index; returns its name and any warnings.

    Maintenance memory is raised for the build to what the HNSW graph needs (`build_memory`:
    at least 1 GB, at most a quarter of this machine's memory), or kept at the server's own
    setting when that is larger; parallel workers are the server's."""
    if kind not in ("hnsw", "ivfflat"):
        raise ImgsearchError("--kind must be hnsw or ivfflat.")
    if quantize not in (None, "binary"):
        raise ImgsearchError("--quantize must be binary (or left out: halfvec).")
    if quantize and kind != "hnsw":
        raise ImgsearchError("--quantize binary needs --kind hnsw.")
    warnings: list[str] = []
    with connect(db, autocommit=True) as conn:
        enc_id, dim = _encoder(conn, encoder)
        rows = scalar(
            conn.execute("SELECT count(*) FROM imgsearch.embeddings WHERE encoder_id = %s", (enc_id,))
        )
        if kind == "hnsw":
            options = f"m = {int(m)}, ef_construction = {int(ef_construction)}"
        else:
            lists = lists or default_lists(rows)
            options = f"lists = {int(lists)}"
            if rows < lists * IVFFLAT_MIN_ROWS_PER_LIST:
                warnings.append(
                    f"only {rows} rows for {lists} lists: IVFFlat trains its clusters on the rows "
                    "present at build time; recall will be poor until you rebuild with more data "
                    "(HNSW has no such need)."
                )
        name = index_name(kind, enc_id, quantize)
        expression, opclass = f"embedding::halfvec({dim})", "halfvec_cosine_ops"
        if quantize:
            expression, opclass = f"binary_quantize(embedding::halfvec({dim}))::bit({dim})", "bit_hamming_ops"
        memory = build_maintenance_memory(conn, kind, rows, dim, m, quantize)
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (f"{memory // 1024}kB",))
        for other in NAME_KINDS:
            conn.execute(f"DROP INDEX IF EXISTS imgsearch.embeddings_{other}_enc{enc_id}")
        search_settings.forget(conn, enc_id)
        stop = threading.Event()
        watcher = None
        if progress is not None:
            watcher = threading.Thread(target=_watch_progress, args=(db, stop, progress), daemon=True)
            watcher.start()
        try:
            conn.execute(
                f"CREATE INDEX {name} ON imgsearch.embeddings USING {kind}"
                f" (({expression}) {opclass}) WITH ({options})"
                f" WHERE encoder_id = {enc_id}"
            )
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
        conn.execute(f"COMMENT ON INDEX imgsearch.{name} IS 'rows_at_build={rows}'")
    return name, warnings


def graph_bytes(rows: int, dim: int, m: int = 16, quantize: str | None = None) -> int:
    """Memory pgvector's HNSW build holds for `rows` vectors of `dim` (its graph, built in
    maintenance_work_mem; once it no longer fits, the rest is inserted on disk, several times
    slower): each element's value (halfvec: 2 bytes a dimension; binary: 1 bit) and header, and
    its neighbour lists, 2m on layer 0 and m on each upper layer (1 / ln m of them on average),
    16 bytes a neighbour. Measured: a 1,000,000 x 1,280 halfvec build (m 16) outgrew 3,013 MiB
    after 973,171 elements, 3,246 bytes each; this gives 3,268."""
    value = 8 + (2 * dim if quantize is None else (dim + 7) // 8)
    neighbours = 2 * m + m / math.log(max(m, 2))
    return int(rows * (value + 16 * neighbours + 96))


def build_memory(rows: int, dim: int, m: int = 16, quantize: str | None = None) -> int:
    """The maintenance_work_mem an HNSW build is given: its graph with some headroom, at least 1 GB,
    and at most a quarter of this machine's memory (the embedded server runs here; an external
    server whose setting is larger keeps its own)."""
    wanted = int(graph_bytes(rows, dim, m, quantize) * GRAPH_HEADROOM)
    return max(MIN_MAINTENANCE_MEMORY, min(wanted, machine_memory() // 4))


def build_maintenance_memory(
    conn, kind: str, rows: int, dim: int, m: int = 16, quantize: str | None = None
) -> int:
    """The maintenance_work_mem `create_index` builds with: `build_memory` for an HNSW graph (the
    minimum for IVFFlat), or the server's own setting when that is larger."""
    server = scalar(conn.execute("SELECT pg_size_bytes(current_setting('maintenance_work_mem'))"))
    wanted = build_memory(rows, dim, m, quantize) if kind == "hnsw" else MIN_MAINTENANCE_MEMORY
    return max(int(server), wanted)


def _watch_progress(db: Database, stop: threading.Event, report: ProgressCallback) -> None:
    started = time.monotonic()
    with connect(db, autocommit=True, vector_types=False) as conn:
        while not stop.wait(1.0):
            row = conn.execute(
                "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total"
                " FROM pg_stat_progress_create_index"
                " WHERE datname = current_database() LIMIT 1"
            ).fetchone()
            if row:
                phase, bd, bt, td, tt = row
                done, total = (td, tt) if tt else (bd, bt or None)
                report(Progress("index", done or 0, total, time.monotonic() - started, phase))


def drop_index(db: Database, encoder: str) -> list[str]:
    with connect(db, autocommit=True) as conn:
        enc_id, _ = _encoder(conn, encoder)
        dropped = []
        while name := existing_index(conn, enc_id):
            conn.execute(f"DROP INDEX imgsearch.{name}")
            dropped.append(name)
        search_settings.forget(conn, enc_id)
    return dropped


def prewarm(db: Database) -> list[str]:
    """Load every ANN index into shared buffers (pg_prewarm), so that the first searches do not
    read it from disk; the indexes loaded (none where pg_prewarm is missing)."""
    with connect(db, autocommit=True, vector_types=False) as conn:
        installed = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm')"
        if not scalar(conn.execute(installed)):
            return []
        names = [  # the indexes themselves, or on a partitioned table each partition's
            r[0]
            for r in conn.execute(
                """SELECT c.oid::regclass::text
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'imgsearch' AND c.relkind = 'i'
                     AND (c.relname ~ %(p)s OR EXISTS (
                          SELECT 1 FROM pg_partition_ancestors(c.oid) a JOIN pg_class up ON up.oid = a.relid
                          WHERE up.relname ~ %(p)s))""",
                {"p": NAME_PATTERN},
            )
        ]
        for name in names:
            conn.execute("SELECT pg_prewarm(%s::regclass)", (name,))
    return names


def index_status(db: Database) -> list[IndexStatus]:
    with connect(db) as conn:
        rows = conn.execute(
            r"""SELECT c.name, ix.relname, am.amname, coalesce(array_to_string(ix.reloptions, ', '), ''),
                      coalesce((SELECT sum(pg_relation_size(t.relid))::bigint
                                FROM pg_partition_tree(ix.oid) t),  -- partitioned: all parts
                               pg_relation_size(ix.oid)),
                      i.indisvalid, obj_description(ix.oid, 'pg_class'),
                      (SELECT count(*) FROM imgsearch.embeddings e WHERE e.encoder_id = c.id), c.id
               FROM pg_index i
               JOIN pg_class ix ON ix.oid = i.indexrelid
               JOIN pg_am am ON am.oid = ix.relam
               JOIN pg_namespace n ON n.oid = ix.relnamespace AND n.nspname = 'imgsearch'
               JOIN imgsearch.encoders c
                 ON ix.relname ~ %(pattern)s
                AND c.id = substring(ix.relname from 'enc(\d+)$')::int
               ORDER BY c.name, ix.relname""",
            {"pattern": NAME_PATTERN},
        ).fetchall()
        result = []
        for enc, name, kind, params, size, valid, comment, count, enc_id in rows:
            at_build = int(comment.split("=", 1)[1]) if comment and "=" in comment else None
            if "_bit_" in name:
                kind += " (binary)"
            tuning = search_settings.load(conn, enc_id)
            result.append(IndexStatus(enc, name, kind, params, size, count, at_build, valid, tuning))
    return result
