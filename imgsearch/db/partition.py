"""Hash-partitioning the vectors by image id (`imgsearch db partition --count N`).

`imgsearch.embeddings` becomes a table partitioned BY HASH (image_id) into N partitions
(`embeddings_p0` ...), each with its own copy of every ANN index (PostgreSQL builds one per
partition from the index on the parent). Nothing that reads or writes the table changes: the
SQL contract's functions, the view and imgsearch itself use the same name and columns, and an
ORDER BY distance LIMIT k over the parent merges the partitions' index scans. `--count 1`
turns it back into a plain table. The rebuild runs in one transaction: on any error the
table is left as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from imgsearch.db.connection import Database, connect, scalar
from imgsearch.db.indexes import NAME_PATTERN
from imgsearch.errors import ImgsearchError

MAX_PARTITIONS = 256


@dataclass
class PartitionReport:
    partitions: int  # 1: a plain table
    rows: int
    indexes: list[str]  # ANN indexes rebuilt (each on every partition)
    seconds: float


def partition_count(conn: psycopg.Connection) -> int:
    """How many hash partitions `imgsearch.embeddings` has (1: not partitioned)."""
    return max(
        1,
        int(
            scalar(
                conn.execute(
                    """SELECT count(*) FROM pg_inherits
           WHERE inhparent = 'imgsearch.embeddings'::regclass"""
                )
            )
        ),
    )


def _ann_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the per-encoder ANN indexes on the parent table."""
    return conn.execute(
        """SELECT c.relname, pg_get_indexdef(c.oid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = 'imgsearch.embeddings'::regclass AND c.relname ~ %s""",
        (NAME_PATTERN,),
    ).fetchall()


def partition(db: Database, count: int, maintenance_work_mem: str = "1GB") -> PartitionReport:
    """Rebuild `imgsearch.embeddings` with `count` hash partitions (1: unpartitioned)."""
    if not 1 <= count <= MAX_PARTITIONS:
        raise ImgsearchError(f"--count must be between 1 and {MAX_PARTITIONS}.")
    started = time.monotonic()
    with connect(db) as conn:
        conn.execute(f"SET LOCAL maintenance_work_mem = '{maintenance_work_mem}'")
        conn.execute("LOCK TABLE imgsearch.embeddings IN ACCESS EXCLUSIVE MODE")
        indexes = _ann_indexes(conn)
        parts = range(count) if count > 1 else range(0)  # 1: a plain table
        conn.execute(f"""
            CREATE TABLE imgsearch.embeddings_new (
                image_id   bigint NOT NULL CONSTRAINT embeddings_image_id_fkey
                           REFERENCES imgsearch.images (id) ON DELETE CASCADE,
                encoder_id integer NOT NULL CONSTRAINT embeddings_encoder_id_fkey
                           REFERENCES imgsearch.encoders (id) ON DELETE CASCADE,
                embedding  halfvec NOT NULL,
                CONSTRAINT embeddings_new_pkey PRIMARY KEY (image_id, encoder_id)
            ) {"PARTITION BY HASH (image_id)" if parts else ""}""")
        conn.execute("ALTER TABLE imgsearch.embeddings_new ALTER COLUMN embedding SET STORAGE MAIN")
        for i in parts:
            conn.execute(f"""CREATE TABLE imgsearch.embeddings_p{i}_new
                             PARTITION OF imgsearch.embeddings_new
                             FOR VALUES WITH (MODULUS {count}, REMAINDER {i})""")
            conn.execute(f"ALTER TABLE imgsearch.embeddings_p{i}_new ALTER COLUMN embedding SET STORAGE MAIN")
        rows = conn.execute(
            "INSERT INTO imgsearch.embeddings_new"
            " SELECT image_id, encoder_id, embedding FROM imgsearch.embeddings"
        ).rowcount
        conn.execute("DROP TABLE imgsearch.embeddings")  # its partitions and indexes with it
        conn.execute("ALTER TABLE imgsearch.embeddings_new RENAME TO embeddings")
        for i in parts:
            conn.execute(f"ALTER TABLE imgsearch.embeddings_p{i}_new RENAME TO embeddings_p{i}")
        conn.execute(
            "ALTER TABLE imgsearch.embeddings RENAME CONSTRAINT embeddings_new_pkey TO embeddings_pkey"
        )
        conn.execute("CREATE INDEX embeddings_encoder_idx ON imgsearch.embeddings (encoder_id)")
        for _, definition in indexes:  # on the parent: PostgreSQL builds one per partition
            conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
        conn.commit()
    return PartitionReport(count, rows, [name for name, _ in indexes], time.monotonic() - started)
