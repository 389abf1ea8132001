"""Alembic migrations: the only way imgsearch's schema is created or changed.

Alembic itself is imported only when a migration runs: a database already at `HEAD_REVISION`
is checked with one query.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from imgsearch.db.connection import SCHEMA, Database, connect, scalar

VERSION_TABLE = "alembic_version"
HEAD_REVISION = "0015"  # the newest file in migrations/versions (a test checks it)


def alembic_config(db: Database) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("imgsearch.migrations")))
    cfg.attributes["database"] = db
    return cfg


def head_revision(db: Database) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    if head is None:
        raise RuntimeError("imgsearch's migrations are missing from the installed package")
    return head


def current_revision(db: Database) -> str | None:
    with connect(db, vector_types=False) as conn:
        exists = scalar(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{VERSION_TABLE}",)))
        if not exists:
            return None
        row = conn.execute(f"SELECT version_num FROM {SCHEMA}.{VERSION_TABLE}").fetchone()
        return row[0] if row else None


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(db), revision)


def upgrade_if_needed(db: Database) -> bool:
    """Upgrade to head when behind; True when something was applied."""
    current = current_revision(db)
    if current == HEAD_REVISION or current == head_revision(db):
        return False
    upgrade(db)
    return True
