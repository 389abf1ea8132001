"""Searches sent to a read replica (a hot standby of the embedded server), and back to the
primary while the replica does not answer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from imgsearch.db import embedded, store
from imgsearch.db.connection import connect
from imgsearch.db.schema import open_database
from imgsearch.encoding.encoder import EncoderIdentity
from imgsearch.errors import ImgsearchError
from imgsearch.library import Index

DIM = 32


def _write(db, start: int, count: int, enc_name: str = "replica-32") -> None:
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(count, DIM)).astype(np.float32)
    with connect(db, autocommit=True) as conn:
        enc_id = store.encoder_id(conn, EncoderIdentity(enc_name, DIM, "none", "none"))
        rows = [
            store.ImageRow(f"/r/{i}.jpg", f"r{i}", 1, 8, 8, "JPEG", 0.0) for i in range(start, start + count)
        ]
        store.write_batch(conn, enc_id, rows, vectors)


def _wait_for(index: Index, image_id: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with index.searching() as conn:
            if conn.execute("SELECT 1 FROM imgsearch.images WHERE id = %s", (image_id,)).fetchone():
                return
        time.sleep(0.1)
    raise AssertionError(f"image {image_id} never reached the replica")


@pytest.mark.slow
def test_searches_go_to_the_replica_and_fall_back_to_the_primary(tmp_path) -> None:
    primary_home, standby_home = tmp_path / "primary", tmp_path / "standby"
    primary = embedded.start(primary_home)
    try:
        db = open_database(primary.url)  # migrated before the copy
        _write(db, 0, 200)
        standby = embedded.start_standby(primary_home, standby_home)
        with connect(db) as conn:
            last = conn.execute("SELECT max(id) FROM imgsearch.images").fetchone()[0]
        index = Index(primary.url, replica=standby.url)
        try:
            with index.searching() as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]  # the replica answers
            _write(db, 200, 50)  # written on the primary, streamed to the replica
            with connect(db) as conn:
                newest = conn.execute("SELECT max(id) FROM imgsearch.images").fetchone()[0]
            assert newest > last
            _wait_for(index, newest)

            embedded.stop(primary_home)  # the primary is down: the replica still answers searches
            found = index.search(f"id:{newest}", 5, model="replica-32")
            assert len(found.results) == 5

            embedded.start(primary_home)
            embedded.stop(standby_home)  # the replica is down: the primary answers
            again = index.search(f"id:{newest}", 5, model="replica-32")
            assert [m.image_id for m in again.results] == [m.image_id for m in found.results]
        finally:
            index.close()
    finally:
        embedded.stop(standby_home)
        embedded.stop(primary_home)


def test_a_malformed_replica_url_is_one_sentence(db) -> None:
    with pytest.raises(ImgsearchError, match="is not a PostgreSQL URL"):
        Index(db.url, replica="postgresql://host:notaport:/x y=")


@pytest.mark.parametrize("pool_size", [0, 2])
def test_a_dead_replica_costs_one_short_wait_then_nothing(db, tmp_path, pool_size: int) -> None:
    """Searches fall back to the primary; the dead replica is skipped for a while after."""
    _write(db, 0, 20)
    index = Index(db.url, pool_size=pool_size, replica=f"postgresql://postgres@/imgsearch?host={tmp_path}")
    try:
        assert len(index.search("id:1", 3, model="replica-32").results) == 3
        assert index._replica is not None and index._replica.known_down
        started = time.monotonic()
        for _ in range(5):
            assert len(index.search("id:1", 3, model="replica-32").results) == 3
        assert time.monotonic() - started < 0.4  # no more waits on the replica
    finally:
        index.close()


def test_the_replica_comes_from_the_environment(monkeypatch, db, tmp_path) -> None:
    replica = f"postgresql://postgres@/imgsearch?host={tmp_path}"
    monkeypatch.setenv("IMGSEARCH_REPLICA_URL", replica)
    index = Index(db.url)
    try:
        assert index._replica is not None and index._replica.db.url == replica
    finally:
        index.close()
