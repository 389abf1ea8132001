"""The `imgsearch` command line: a thin Typer layer over the library (`imgsearch.library`)."""

from __future__ import annotations

import sys

from imgsearch import config
from imgsearch.cli import admin, collection, commands, evaluate, learning  # noqa: F401  (they register commands)
from imgsearch.cli.app import app, echo_err
from imgsearch.errors import ImgsearchError, first_line

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI: every error a user can cause or meet is one sentence, never a traceback
    (IMGSEARCH_DEBUG=1 shows the traceback of an unexpected one)."""
    try:
        app()
    except ImgsearchError as exc:
        echo_err(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        echo_err("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _debug():
            raise
        echo_err(f"error: {_describe(exc)}")
        sys.exit(1)


def _debug() -> bool:
    """IMGSEARCH_DEBUG (False when the settings themselves cannot be read)."""
    try:
        return config.load().debug
    except ImgsearchError:
        return False


def _describe(exc: Exception) -> str:
    first = first_line(exc)
    if type(exc).__module__.split(".")[0] in ("psycopg", "sqlalchemy"):
        return f"the database answered with an error ({first}); what was written before is kept."
    return (
        f"unexpected {type(exc).__name__}: {first} (set IMGSEARCH_DEBUG=1 to see the "
        "traceback, and please report it)."
    )
