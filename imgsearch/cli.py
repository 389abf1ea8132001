"""The `imgsearch` command line: a thin Typer layer over the library."""

from __future__ import annotations

import sys

import typer

from . import config
from .errors import ImgsearchError

app = typer.Typer(help="Image similarity search with PostgreSQL + pgvector as the index.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: migrations, status, connection URL.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Apply Alembic migrations (they also apply automatically on first use)."""
    from .database import ensure_pgvector, resolve
    from .migrate import current_revision, upgrade

    db = resolve()
    ensure_pgvector(db)
    upgrade(db, revision)
    typer.echo(f"{db.describe()}: schema at revision {current_revision(db)}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Alembic revision, or 'base'.")) -> None:
    """Revert Alembic migrations (`base` removes every imgsearch table)."""
    from .database import resolve
    from .migrate import current_revision, downgrade

    db = resolve()
    downgrade(db, revision)
    typer.echo(f"{db.describe()}: schema at revision {current_revision(db) or 'base'}")


@db_app.command("status")
def db_status() -> None:
    """Server, PostgreSQL and pgvector versions, schema revision, row counts."""
    from .database import ensure_pgvector, resolve
    from .status import database_status

    db = resolve()
    ensure_pgvector(db)
    s = database_status(db)
    head_note = "head" if s.at_head else f"behind head {s.head}: run `imgsearch db upgrade`"
    typer.echo(f"server:      {s.server}")
    typer.echo(f"postgresql:  {s.postgres_version}")
    typer.echo(f"pgvector:    {s.pgvector_version}")
    typer.echo(f"revision:    {s.revision or 'none'} ({head_note})")
    for table, rows in s.table_rows.items():
        typer.echo(f"  {table:<14} {rows:>10,} rows")
    for enc in s.encoders:
        typer.echo(f"  encoder {enc.name} ({enc.dimension}-d, {enc.weights}): "
                   f"{enc.embeddings:,} embeddings")


@db_app.command("url")
def db_url() -> None:
    """Print a URL that psql or another application can connect with."""
    from .database import resolve

    typer.echo(resolve().url)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server (it restarts on the next imgsearch command)."""
    from . import embedded

    if config.database_url_from_env():
        _echo_err("IMGSEARCH_DATABASE_URL is set: imgsearch does not manage that server.")
        raise typer.Exit(1)
    stopped = embedded.stop(config.home())
    typer.echo("embedded server stopped" if stopped else "embedded server was not running")


@app.command("models")
def models_command() -> None:
    """The encoders available, their dimension, and whether their weights are here offline."""
    from .models import list_models

    typer.echo(f"{'name':<30} {'dim':>5}  {'weights':<9} source / where")
    for m in list_models():
        present = "present" if m.weights_present else "missing"
        typer.echo(f"{m.name:<30} {m.dimension:>5}  {present:<9} {m.source}: {m.weights_location}")


def main() -> None:
    try:
        app()
    except ImgsearchError as exc:
        _echo_err(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)
