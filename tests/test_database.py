"""Foundation: migrations, constraints, the embedded server, pgvector checks."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from imgsearch.db import embedded
from imgsearch.db.connection import Database, connect
from imgsearch.db.migrations import current_revision, downgrade, head_revision, upgrade
from imgsearch.db.schema import ensure_pgvector, open_database
from imgsearch.db.status import TABLES, database_status
from imgsearch.errors import DatabaseUnavailable, PgvectorMissing

from .support.cli import imgsearch as run_imgsearch


def _tables(db: Database) -> set[str]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'imgsearch'"
        ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_db: Database) -> None:
    ensure_pgvector(empty_db)
    assert current_revision(empty_db) is None
    upgrade(empty_db)
    assert current_revision(empty_db) == head_revision(empty_db)
    assert set(TABLES) <= _tables(empty_db)
    downgrade(empty_db, "base")
    assert current_revision(empty_db) is None
    assert _tables(empty_db) == set()
    upgrade(empty_db)
    assert set(TABLES) <= _tables(empty_db)


def test_each_revision_downgrades_one_step(empty_db: Database) -> None:
    from alembic.script import ScriptDirectory

    from imgsearch.db.migrations import alembic_config

    ensure_pgvector(empty_db)
    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config(empty_db)).walk_revisions()][
        ::-1
    ]
    for rev in revisions:
        upgrade(empty_db, rev)
        assert current_revision(empty_db) == rev
    for rev in reversed(revisions):
        downgrade(empty_db, "-1")
        assert current_revision(empty_db) != rev


def test_large_vectors_are_stored_inline_not_toasted(db: Database) -> None:
    import numpy as np

    from imgsearch.db import store
    from imgsearch.encoding.encoder import EncoderIdentity

    vectors = np.random.default_rng(0).random((20, 2048), dtype=np.float32)  # 4 KiB halfvecs
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, EncoderIdentity("wide", 2048, "none", "none"))
        store.write_batch(
            conn,
            enc_id,
            [store.ImageRow(f"/w/{i}.jpg", f"s{i}", 1, 1, 1, "JPEG", 0.0) for i in range(20)],
            vectors,
        )
        storage, toast_bytes = conn.execute(
            "SELECT a.attstorage, pg_relation_size(c.reltoastrelid) FROM pg_class c"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding'"
            " WHERE c.oid = 'imgsearch.embeddings'::regclass"
        ).fetchone()
    assert storage == "m"
    assert toast_bytes == 0


def _insert_image(conn: psycopg.Connection, path: str) -> int:
    return conn.execute(
        "INSERT INTO imgsearch.images (path, sha256, byte_size) VALUES (%s, 'x', 1) RETURNING id",
        (path,),
    ).fetchone()[0]


def test_path_is_unique(db: Database) -> None:
    with connect(db) as conn:
        _insert_image(conn, "/a.jpg")
        with pytest.raises(psycopg.errors.UniqueViolation):
            _insert_image(conn, "/a.jpg")


def test_deleting_an_image_deletes_its_embeddings(db: Database) -> None:
    with connect(db) as conn:
        enc = conn.execute(
            "INSERT INTO imgsearch.encoders (name, dimension, weights, preprocessing)"
            " VALUES ('t', 3, 'w', 'p') RETURNING id"
        ).fetchone()[0]
        image = _insert_image(conn, "/b.jpg")
        conn.execute("INSERT INTO imgsearch.embeddings VALUES (%s, %s, '[1,0,0]'::halfvec)", (image, enc))
        conn.execute("DELETE FROM imgsearch.images WHERE id = %s", (image,))
        assert conn.execute("SELECT count(*) FROM imgsearch.embeddings").fetchone()[0] == 0
        image = _insert_image(conn, "/c.jpg")
        conn.execute("INSERT INTO imgsearch.embeddings VALUES (%s, %s, '[1,0,0]'::halfvec)", (image, enc))
        conn.execute("DELETE FROM imgsearch.encoders WHERE id = %s", (enc,))
        assert conn.execute("SELECT count(*) FROM imgsearch.embeddings").fetchone()[0] == 0


def test_status_reports_versions_and_counts(db: Database) -> None:
    status = database_status(db)
    assert status.at_head
    assert status.pgvector_version and status.pgvector_version >= "0.7"
    assert status.table_rows == {t: 0 for t in TABLES}


def test_database_that_is_down_gives_a_clear_error() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="Cannot connect to PostgreSQL"):
        open_database(db.url)


STARTER = textwrap.dedent(
    """
    from imgsearch.db.schema import open_database
    from imgsearch.db.embedded import running_server
    from imgsearch import config
    db = open_database()
    server = running_server(config.load().home)
    print(server.admin_url)
    """
)


@pytest.mark.slow
def test_two_processes_share_one_embedded_server(tmp_path: Path) -> None:
    env = {**os.environ, "IMGSEARCH_HOME": str(tmp_path / "home")}
    env.pop("IMGSEARCH_DATABASE_URL", None)
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", STARTER],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
        urls = {out.strip() for out, _ in outputs}
        assert len(urls) == 1
        pid_file = tmp_path / "home" / "pgdata" / "postmaster.pid"
        first_pid = pid_file.read_text().split()[0]
        version_mtime = (tmp_path / "home" / "pgdata" / "PG_VERSION").stat().st_mtime
        # A later invocation reuses the same data directory and server: no second initdb.
        again = subprocess.run(
            [sys.executable, "-c", STARTER], env=env, text=True, capture_output=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() in urls
        assert pid_file.read_text().split()[0] == first_pid
        assert (tmp_path / "home" / "pgdata" / "PG_VERSION").stat().st_mtime == version_mtime
    finally:
        embedded.stop(tmp_path / "home")


@pytest.mark.slow
def test_stopped_server_starts_again_in_the_same_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        first = embedded.start(home)
        assert embedded.stop(home)
        assert embedded.running_server(home) is None
        second = embedded.start(home)
        with psycopg.connect(second.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "imgsearch"
        assert second.data_dir == first.data_dir
    finally:
        embedded.stop(home)


def _system_postgres_bin() -> Path | None:
    """The machine's own PostgreSQL binaries (without pgvector), when installed."""
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        bindir = Path(initdb).parent
        if (
            (bindir / "postgres").exists()
            and not glob.glob(str(bindir.parent / "lib" / "vector.so"))
            and not glob.glob(f"/usr/share/postgresql/{bindir.parent.name}/extension/vector.control")
        ):
            return bindir
    return None


@pytest.fixture
def server_without_pgvector():
    bindir = _system_postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL without pgvector on this machine to test against")
    # not below pytest's tmp_path: its folders are private to this user, and as root the
    # server runs as nobody
    top = Path(tempfile.mkdtemp(prefix="imgsearch-plain-pg-"))
    top.chmod(0o755)
    data = top / "plain-pg"
    data.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "nobody")
        run_as = ["runuser", "-u", "nobody", "--"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            f"-h '' -k {data}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={data}"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.slow
def test_server_without_pgvector_gets_one_clear_sentence(server_without_pgvector: str) -> None:
    with pytest.raises(PgvectorMissing, match="does not have the pgvector extension"):
        open_database(server_without_pgvector)
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": server_without_pgvector}
    result = run_imgsearch("db", "status", env=env, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "pgvector" in result.stderr


def test_head_revision_constant_is_the_newest_migration(db) -> None:
    from imgsearch.db.migrations import HEAD_REVISION, current_revision, head_revision

    assert HEAD_REVISION == head_revision(db) == current_revision(db)


def test_a_half_written_pid_file_reads_as_starting_not_as_an_error(tmp_path: Path, monkeypatch) -> None:
    """A server that is starting writes postmaster.pid line by line; a reader at that moment
    (db status, db stop, serve's supervisor) waits for the rest instead of failing."""
    home = tmp_path / "home"
    pid_file = embedded.pgdata_dir(home) / "postmaster.pid"
    pid_file.parent.mkdir(parents=True)
    first_lines = f"{os.getpid()}\n{pid_file.parent}\n{int(time.time())}\n5432\n{pid_file.parent}\n\n"
    pid_file.write_text(first_lines)
    monkeypatch.setattr(embedded, "PID_FILE_WAIT_S", 0.3)
    assert embedded.running_server(home) is None  # still half written after the wait

    monkeypatch.setattr(embedded, "PID_FILE_WAIT_S", 10.0)
    finish = threading.Timer(0.3, lambda: pid_file.write_text(first_lines + "  1   2\nready\n"))
    finish.start()
    try:
        server = embedded.running_server(home)
    finally:
        finish.join()
    assert server is not None and server.data_dir == pid_file.parent
