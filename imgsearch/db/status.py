"""What `imgsearch db status` reports: server, versions, schema revision and row counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from imgsearch.db.connection import SCHEMA, Database, connect, one, scalar
from imgsearch.db.migrations import current_revision, head_revision
from imgsearch.db.sizing import SHOWN

TABLES = ("encoders", "images", "embeddings", "ingest_errors")


@dataclass
class EncoderCount:
    name: str
    dimension: int
    weights: str
    embeddings: int


@dataclass
class DatabaseStatus:
    server: str
    postgres_version: str
    pgvector_version: str | None
    revision: str | None
    head: str
    table_rows: dict[str, int] = field(default_factory=dict)
    encoders: list[EncoderCount] = field(default_factory=list)
    settings: list[tuple[str, str, bool]] = field(default_factory=list)  # name, value, pending restart

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


def server_versions(conn: psycopg.Connection) -> tuple[str, str | None]:
    """The PostgreSQL server's version and pgvector's (None when it is not installed)."""
    version, pgvector = one(
        conn.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        )
    )
    return version, pgvector


def database_status(db: Database) -> DatabaseStatus:
    revision = current_revision(db)
    with connect(db, vector_types=False) as conn:
        pg_version = scalar(conn.execute("SHOW server_version"))
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        status = DatabaseStatus(
            server=db.describe(),
            postgres_version=pg_version,
            pgvector_version=row[0] if row else None,
            revision=revision,
            head=head_revision(db),
        )
        status.settings = [
            (name, value, pending)
            for name, value, pending in conn.execute(
                "SELECT name, current_setting(name), pending_restart FROM pg_settings"
                " WHERE name = ANY(%s) ORDER BY array_position(%s, name)",
                (list(SHOWN), list(SHOWN)),
            )
        ]
        if revision is None:
            return status
        for table in TABLES:
            status.table_rows[table] = scalar(conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}"))
        for name, dim, weights, count in conn.execute(
            f"""SELECT e.name, e.dimension, e.weights, count(v.image_id)
                FROM {SCHEMA}.encoders e LEFT JOIN {SCHEMA}.embeddings v ON v.encoder_id = e.id
                GROUP BY e.id ORDER BY e.name, e.id"""
        ):
            status.encoders.append(EncoderCount(name, dim, weights, count))
    return status
