"""Alembic environment: picks the database the way imgsearch does and serialises migrations."""

from logging.config import fileConfig

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool, text

from imgsearch.db.connection import SCHEMA, resolve
from imgsearch.db.migrations import VERSION_TABLE
from imgsearch.db.schema import ensure_pgvector

config = context.config
if config.config_file_name is not None and config.attributes.get("database") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Called from imgsearch, the Database comes in the config; from the `alembic` command line,
# it is chosen exactly as imgsearch chooses it (IMGSEARCH_DATABASE_URL, else embedded).
database = config.attributes.get("database")
if database is None:
    database = resolve()
    ensure_pgvector(database)

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('imgsearch:migrations'))"


def run_migrations_online() -> None:
    # libpq opens the connection, so every form of URL libpq takes works (keyword=value too).
    engine = create_engine(
        "postgresql+psycopg://", poolclass=pool.NullPool, creator=lambda: psycopg.connect(database.url)
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=None,
            version_table=VERSION_TABLE,
            version_table_schema=SCHEMA,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            # Two processes starting at once: the second waits here, then finds head applied.
            connection.execute(text(MIGRATION_LOCK))
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("imgsearch migrations run online only: drop --sql.")
run_migrations_online()
