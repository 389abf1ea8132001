"""Where the tests' PostgreSQL comes from: a URL, a testcontainers container, or embedded."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

log = logging.getLogger("imgsearch.tests")

TEST_URL_ENV = "IMGSEARCH_TEST_DATABASE_URL"
CONTAINER_IMAGE = "pgvector/pgvector:pg17"
# The embedded test server's settings over the product's: it holds throwaway databases, so it
# does not wait for the disk (a killed server still keeps every commit; only a machine crash
# would not). Tests of the product's own server start their own, with the product's settings.
TEST_SERVER_SETTINGS = "fsync=off,full_page_writes=off,autovacuum=off,wal_level=minimal,max_wal_senders=0"


@dataclass
class Branch:
    name: str  # "url", "testcontainers" or "embedded"
    reason: str


def choose_branch() -> Branch:
    if os.environ.get(TEST_URL_ENV):
        return Branch("url", f"{TEST_URL_ENV} is set")
    docker_problem = docker_unavailable_reason()
    if docker_problem is None:
        return Branch("testcontainers", f"Docker answers: {CONTAINER_IMAGE} container")
    log.warning("testcontainers skipped: %s; using the embedded server", docker_problem)
    return Branch("embedded", f"testcontainers skipped ({docker_problem})")


def docker_unavailable_reason() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker package is not installed"
    try:
        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except Exception as exc:  # any failure to reach a daemon means: no Docker here
        return f"no Docker daemon answers ({type(exc).__name__})"
    return None


@contextmanager
def server_admin_url(branch: Branch):
    """Yield a URL of a maintenance database on which test databases can be created."""
    if branch.name == "url":
        yield os.environ[TEST_URL_ENV]
    elif branch.name == "testcontainers":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(CONTAINER_IMAGE, driver=None) as container:
            yield container.get_connection_url()
    else:
        from imgsearch.db import embedded

        home = Path(tempfile.mkdtemp(prefix="imgsearch-test-"))
        server = embedded.start(home, TEST_SERVER_SETTINGS)
        try:
            yield server.admin_url
        finally:
            embedded.stop(home)
            shutil.rmtree(home, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(admin_url: str, template: str | None = None):
    """A fresh database on the test server (a copy of `template`, a database name, when given),
    dropped afterwards."""
    name = f"imgsearch_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template and conn.info.server_version >= 150000:
            # the files copied, not every page written to the WAL (PostgreSQL 15's default): half
            # the server's CPU per copy or less (the test server does not fsync)
            copy += " STRATEGY FILE_COPY"
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_copy(admin_url: str, template: str):
    """A copy of the migrated database `template` (a name) for one test or module: its
    `Database`, dropped afterwards."""
    from imgsearch.db.schema import open_database

    with scratch_database(admin_url, template) as url:
        yield open_database(url)


@contextmanager
def filled_template(admin_url: str, fill: Callable[[str], object], template: str | None = None):
    """A database (a copy of `template` when given) filled once by `fill(url)`, which leaves no
    connection open: its name, for tests to copy with `scratch_database(admin_url, name)`."""
    with scratch_database(admin_url, template) as url:
        fill(url)
        yield urlsplit(url).path.lstrip("/")


def ingested_template(admin_url: str, template: str, encoder, folder: Path):
    """`filled_template` with `folder` ingested by `encoder` (a copy of `template`, the migrated
    one): a collection ingested once per module, copied per test."""
    from imgsearch.library import Index

    def ingest(url: str) -> None:
        with Index(url, device="cpu", encoders=[encoder]) as index:
            index.ingest([folder])

    return filled_template(admin_url, ingest, template)
