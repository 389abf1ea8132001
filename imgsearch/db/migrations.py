"""Alembic migrations: the only way imgsearch's schema is created or changed."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from imgsearch.db.connection import SCHEMA, Database, connect

VERSION_TABLE = "alembic_version"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("imgsearch.migrations")))
    cfg.set_main_option("sqlalchemy.url", db.sqlalchemy_url.replace("%", "%%"))
    cfg.attributes["database"] = db
    return cfg


def head_revision(db: Database) -> str:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def current_revision(db: Database) -> str | None:
    with connect(db, vector_types=False) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{VERSION_TABLE}",)
        ).fetchone()[0]
        if not exists:
            return None
        row = conn.execute(f"SELECT version_num FROM {SCHEMA}.{VERSION_TABLE}").fetchone()
        return row[0] if row else None


def upgrade(db: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    command.downgrade(alembic_config(db), revision)


def upgrade_if_needed(db: Database) -> bool:
    """Upgrade to head when behind; True when something was applied."""
    if current_revision(db) == head_revision(db):
        return False
    upgrade(db)
    return True
