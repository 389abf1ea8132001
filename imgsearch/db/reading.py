"""Connections for reads: one connection used in turn (the CLI, notebooks), or a pool for
concurrent readers (the HTTP service); either way a database that cannot be reached is a
`DatabaseUnavailable` quickly, and reads resume by themselves once it is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from imgsearch.db.connection import Database, connect
from imgsearch.errors import DatabaseUnavailable, first_line

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

POOL_TIMEOUT_S = 2.0  # longest wait for a pooled connection
RECONNECT_TIMEOUT_S = 5.0  # a pool's reconnection attempt gives up after this; the next starts anew
DOWN_FOR_S = 1.0  # after a failed wait, reads fail at once for this long
DOWN_MESSAGE = "The database is not answering; try again in a few seconds."


def _register_vector(conn: psycopg.Connection) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


class ReadConnections:
    """Read connections to `db`: a pool of `pool_size`, or (0) one connection used in turn.
    A wait for a pooled connection gives up after `timeout` s, a connection attempt after
    `connect_timeout` s; reads then fail at once for `down_for` s (after a wait that timed out
    while the pool was merely busy, too, unless `shed_when_busy` is False)."""

    def __init__(
        self,
        db: Database,
        pool_size: int = 0,
        *,
        timeout: float = POOL_TIMEOUT_S,
        down_for: float = DOWN_FOR_S,
        connect_timeout: int = 10,
        shed_when_busy: bool = True,
    ) -> None:
        self.db = db
        self._connect_timeout = connect_timeout
        self._shed_when_busy = shed_when_busy
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_for = down_for
        self._in_use = 0  # pooled connections handed out now
        self._pool: ConnectionPool | None = None
        if pool_size:
            from psycopg_pool import ConnectionPool

            # A short wait for a connection and short reconnection attempts: with the database
            # down a request fails within POOL_TIMEOUT_S, and comes back soon after it returns.
            self._pool = ConnectionPool(
                db.url,
                min_size=1,
                max_size=pool_size,
                open=True,
                configure=_register_vector,
                timeout=timeout,
                check=ConnectionPool.check_connection,
                reconnect_timeout=RECONNECT_TIMEOUT_S,
                kwargs={"connect_timeout": connect_timeout},
            )

    @property
    def known_down(self) -> bool:
        """The last wait for a connection failed a moment ago."""
        return time.monotonic() < self._down_until

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for reads; rolled back afterwards. A broken one is dropped, so the next
        call opens a fresh one. Raises DatabaseUnavailable (at once while known down)."""
        if self.known_down:
            raise DatabaseUnavailable(DOWN_MESSAGE)
        if self._pool is not None:
            from psycopg_pool import PoolTimeout

            try:
                with self._pool.connection() as conn:
                    with self._lock:
                        self._in_use += 1
                    try:
                        yield conn
                    finally:
                        with self._lock:
                            self._in_use -= 1
            except PoolTimeout as exc:
                if self._shed_when_busy or self._in_use < self._pool.max_size:  # not busy: down
                    self._down_until = time.monotonic() + self._down_for
                raise DatabaseUnavailable(DOWN_MESSAGE) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise _broken(exc) from exc
            return
        with self._lock:
            if self._conn is None or self._conn.closed:
                try:
                    self._conn = connect(self.db, timeout=self._connect_timeout)
                except DatabaseUnavailable:
                    self._down_until = time.monotonic() + self._down_for
                    raise
            try:
                yield self._conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise _broken(exc) from exc
            finally:
                if self._conn is not None and not self._conn.closed:
                    try:
                        self._conn.rollback()
                    except psycopg.Error:
                        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
        if self._pool is not None:
            self._pool.close()


def _broken(exc: Exception) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"The database connection broke ({first_line(exc)}); try again.")
