"""Watching a folder: new, changed, renamed and deleted files reach the index by themselves."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from imgsearch.library import Index

from .support.hostile import jpeg_bytes, rows, write_photos

DEADLINE_S = 30  # polling, not sleeping: each step normally lands within about a second


def _wait_for(db, sql: str, params, expected, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = rows(db, sql, params)
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{what}: still {got}, expected {expected}"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_watcher_follows_the_folder(db, lite0, tmp_path) -> None:
    folder = tmp_path / "watched"
    write_photos(folder, 2)
    index = Index(db.url, device="cpu", encoders=[lite0])
    stop = threading.Event()
    events = []
    thread = threading.Thread(
        target=index.watch, args=([folder],), kwargs={"stop": stop, "on_event": events.append}
    )
    thread.start()
    try:
        count = "SELECT count(*) FROM imgsearch.images i JOIN imgsearch.embeddings e ON e.image_id = i.id"
        _wait_for(db, count, (), [(2,)], "first pass")

        added = folder / "new.jpg"
        added.write_bytes(jpeg_bytes(5))
        _wait_for(
            db, "SELECT count(*) FROM imgsearch.images WHERE path = %s", (str(added),), [(1,)], "added file"
        )

        before = rows(db, "SELECT sha256 FROM imgsearch.images WHERE path = %s", (str(added),))
        added.write_bytes(jpeg_bytes(6))  # new content under the same name
        _wait_for(
            db,
            "SELECT sha256 <> %s FROM imgsearch.images WHERE path = %s",
            (before[0][0], str(added)),
            [(True,)],
            "edited file",
        )

        moved = folder / "sub"
        moved.mkdir()
        renamed = moved / "renamed.jpg"
        added.rename(renamed)
        _wait_for(
            db,
            "SELECT path FROM imgsearch.images WHERE path IN (%s, %s)",
            (str(added), str(renamed)),
            [(str(renamed),)],
            "renamed file",
        )

        (folder / "photo0000.jpg").unlink()
        _wait_for(db, count, (), [(2,)], "deleted file")
        (folder / ".hidden.jpg").write_bytes(jpeg_bytes(7))
        (folder / "notes.txt").write_text("not an image")
        time.sleep(1.5)
        assert rows(db, count, ()) == [(2,)]  # hidden files and non-images are not indexed
        assert rows(db, "SELECT count(*) FROM imgsearch.ingest_errors", ()) == [(0,)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert events and any(e.removed for e in events)
    names = {Path(p).name for (p,) in rows(db, "SELECT path FROM imgsearch.images", ())}
    assert names == {"photo0001.jpg", "renamed.jpg"}
