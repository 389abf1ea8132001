"""A database ready for imgsearch: pgvector present and recent enough, schema at head."""

from __future__ import annotations

import contextlib
import re

import psycopg

from imgsearch import config
from imgsearch.db.connection import Database, connect, resolve, scalar
from imgsearch.db.migrations import upgrade_if_needed
from imgsearch.errors import PgvectorMissing

MIN_PGVECTOR = (0, 7, 0)
PGVECTOR_INSTALL_HINT = (
    "install it on the server (https://github.com/pgvector/pgvector#installation, "
    "for example the postgresql-17-pgvector package or the pgvector/pgvector Docker image), "
    "or unset IMGSEARCH_DATABASE_URL to use imgsearch's embedded server"
)


def _version_tuple(text: str | None) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; () for none (older than any version)."""
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:3])


def ensure_pgvector(db: Database) -> str:
    """Create the `vector` extension if needed; return its version or raise PgvectorMissing."""
    with connect(db, autocommit=True, vector_types=False) as conn:
        row = conn.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        server = db.describe()
        if row is None:
            raise PgvectorMissing(
                f"The PostgreSQL server at {server} does not have the pgvector extension: "
                f"{PGVECTOR_INSTALL_HINT}."
            )
        available, installed = row
        wanted = ".".join(map(str, MIN_PGVECTOR))
        if _version_tuple(available) < MIN_PGVECTOR:
            raise PgvectorMissing(
                f"The PostgreSQL server at {server} has pgvector {available}, but imgsearch needs "
                f"{wanted} or newer (for halfvec): upgrade pgvector on the server."
            )
        try:
            if installed is None:
                # another process may create it at the same moment (IF NOT EXISTS can race)
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            elif _version_tuple(installed) < MIN_PGVECTOR:
                conn.execute("ALTER EXTENSION vector UPDATE")
        except psycopg.errors.InsufficientPrivilege as exc:
            action = "CREATE EXTENSION vector" if installed is None else "ALTER EXTENSION vector UPDATE"
            raise PgvectorMissing(
                f"The database at {server} needs pgvector {wanted}+ enabled and this user may not "
                f"do it: ask an administrator to run `{action};` in that database."
            ) from exc
        return scalar(conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))


_ready: set[str] = set()


def open_database(
    url: str | None = None, *, migrate: bool = True, settings: config.Settings | None = None
) -> Database:
    """Resolve the database (`url`, else the settings', default the environment's), check
    pgvector and (once per process) upgrade the schema to head."""
    db = resolve(url, settings or config.load())
    if db.url not in _ready:
        ensure_pgvector(db)
        if migrate:
            upgrade_if_needed(db)
        _ready.add(db.url)
    return db


def as_database(database: Database | str | None, settings: config.Settings | None = None) -> Database:
    """`database` itself, or the database a URL (None: the settings') names, made ready."""
    return database if isinstance(database, Database) else open_database(database, settings=settings)
