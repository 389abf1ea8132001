"""Which PostgreSQL to use, connecting to it, and making sure it has pgvector and our schema.

`IMGSEARCH_DATABASE_URL` wins when set; otherwise the embedded server below `config.home()`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from . import config, embedded
from .errors import DatabaseUnavailable, PgvectorMissing

SCHEMA = "imgsearch"
MIN_PGVECTOR = (0, 7, 0)
PGVECTOR_INSTALL_HINT = (
    "install it on the server (https://github.com/pgvector/pgvector#installation, "
    "for example the postgresql-17-pgvector package or the pgvector/pgvector Docker image), "
    "or unset IMGSEARCH_DATABASE_URL to use imgsearch's embedded server"
)


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database imgsearch can use."""

    url: str  # a libpq URL (postgresql://...)
    embedded_dir: Path | None = None

    def describe(self) -> str:
        if self.embedded_dir is not None:
            return f"embedded at {self.embedded_dir}"
        return mask_password(self.url)

    @property
    def sqlalchemy_url(self) -> str:
        return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", self.url)


def mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@?]*:)[^@/]*@", r"\1***@", url)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as libpq ones."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def resolve(url: str | None = None) -> Database:
    """The database to use: `url`, else `IMGSEARCH_DATABASE_URL`, else the embedded server."""
    url = url or config.database_url_from_env()
    if url:
        return Database(libpq_url(url))
    server = _embedded(config.home())
    return Database(server.url, embedded_dir=server.data_dir)


@cache
def _embedded(home: Path) -> embedded.EmbeddedServer:
    return embedded.start(home)


def connect(db: Database, *, autocommit: bool = False, vector_types: bool = True) -> psycopg.Connection:
    """Open a connection; with `vector_types`, pgvector's types are registered for numpy arrays."""
    try:
        conn = psycopg.connect(db.url, autocommit=autocommit, connect_timeout=10)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"{db.describe()} is not a valid PostgreSQL URL ({reason}); expected "
            "postgresql://user:password@host:port/database (check IMGSEARCH_DATABASE_URL)."
        ) from exc
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"Cannot connect to PostgreSQL at {db.describe()}: {reason}. "
            "Check that the server is running and IMGSEARCH_DATABASE_URL is right."
        ) from exc
    if vector_types:
        from pgvector.psycopg import register_vector

        # Without the extension yet, ensure_pgvector() is the place that says so clearly.
        with contextlib.suppress(psycopg.ProgrammingError):
            register_vector(conn)
    return conn


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def ensure_pgvector(db: Database) -> str:
    """Create the `vector` extension if needed; return its version or raise PgvectorMissing."""
    with connect(db, autocommit=True, vector_types=False) as conn:
        row = conn.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions"
            " WHERE name = 'vector'"
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
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            elif _version_tuple(installed) < MIN_PGVECTOR:
                conn.execute("ALTER EXTENSION vector UPDATE")
        except psycopg.errors.InsufficientPrivilege as exc:
            action = "CREATE EXTENSION vector" if installed is None else "ALTER EXTENSION vector UPDATE"
            raise PgvectorMissing(
                f"The database at {server} needs pgvector {wanted}+ enabled and this user may not "
                f"do it: ask an administrator to run `{action};` in that database."
            ) from exc
        return conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]


_ready: set[str] = set()


def open_database(url: str | None = None, *, migrate: bool = True) -> Database:
    """Resolve the database, check pgvector and (once per process) upgrade the schema to head."""
    db = resolve(url)
    if db.url not in _ready:
        ensure_pgvector(db)
        if migrate:
            from .migrate import upgrade_if_needed

            upgrade_if_needed(db)
        _ready.add(db.url)
    return db
