"""Which PostgreSQL to use, and connecting to it.

`IMGSEARCH_DATABASE_URL` wins when set; otherwise the embedded server below the imgsearch home.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from imgsearch.config import Settings
from imgsearch.db import embedded
from imgsearch.errors import DatabaseUnavailable, first_line
from imgsearch.redaction import redact, remember

SCHEMA = "imgsearch"


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database imgsearch can use."""

    url: str  # a libpq URL (postgresql://...)
    embedded_dir: Path | None = None

    def __post_init__(self) -> None:
        remember(self.url)  # its password is masked in every message from now on

    def describe(self) -> str:
        """Where the server is, for the operator: never a password (`redaction.redact`)."""
        if self.embedded_dir is not None:
            return f"embedded at {self.embedded_dir}"
        return redact(self.url, [self.url])


def one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row a query that always returns one row returned (an aggregate, RETURNING ...)."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.DataError("the query returned no row")
    return row


def scalar(cursor: psycopg.Cursor[Any]) -> Any:
    """The first value of the one row a query returned (see `one`)."""
    return one(cursor)[0]


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as libpq ones."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def resolve(url: str | None, settings: Settings) -> Database:
    """The database to use: `url`, else the settings' (IMGSEARCH_DATABASE_URL), else the embedded
    server below their home."""
    url = url or settings.database_url
    if url:
        return Database(libpq_url(url))
    server = _embedded(settings.home, settings.server_settings)
    return Database(server.url, embedded_dir=server.data_dir)


@cache
def _embedded(home: Path, overrides: str | None) -> embedded.EmbeddedServer:
    return embedded.start(home, overrides)


def connect(
    db: Database, *, autocommit: bool = False, vector_types: bool = True, timeout: int = 10
) -> psycopg.Connection:
    """Open a connection (giving up after `timeout` s); with `vector_types`, pgvector's types
    are registered for numpy arrays."""
    try:
        conn = psycopg.connect(db.url, autocommit=autocommit, connect_timeout=timeout)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(
            f"{db.describe()} is not a valid PostgreSQL URL ({redact(first_line(exc), [db.url])}); expected "
            "postgresql://user:password@host:port/database (check IMGSEARCH_DATABASE_URL)."
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"Cannot connect to PostgreSQL at {db.describe()}: {redact(first_line(exc), [db.url])}. "
            "Check that the server is running and IMGSEARCH_DATABASE_URL is right."
        ) from exc
    if vector_types:
        from pgvector.psycopg import register_vector

        # Without the extension yet, ensure_pgvector() is the place that says so clearly.
        with contextlib.suppress(psycopg.ProgrammingError):
            register_vector(conn)
    return conn


@contextlib.contextmanager
def implicit_transactions(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """`conn` with each statement its own transaction, and each pipeline's statements one
    transaction that its sync ends (PostgreSQL's implicit transactions): what a search runs
    takes no BEGIN and no ROLLBACK round trip, transaction-local settings (set_config(...,
    true)) sent in a pipeline last until the end of that pipeline and no further, and the
    statements psycopg prepared stay prepared (a rollback forgets them all).

    For an idle connection at read committed (autocommit is on for the while, then off again);
    one in a transaction, or at a stricter isolation level, is left as it is (its statements
    then share its transaction, which the caller ends)."""
    switch = (
        not conn.autocommit
        and conn.info.transaction_status == TransactionStatus.IDLE
        and conn.isolation_level in (None, IsolationLevel.READ_COMMITTED)
    )
    if not switch:
        yield conn
        return
    conn.autocommit = True
    try:
        yield conn
    finally:
        if not conn.closed and not conn.broken:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")  # a BEGIN of someone else's, in autocommit mode
            conn.autocommit = False
