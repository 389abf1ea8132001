"""Property-based: any file names, any manifest cells; ingest never raises, loses nothing good,
and reports every bad item."""

from __future__ import annotations

import atexit
import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgsearch.ingest import IngestOptions, ingest

from .support.hostile import jpeg_bytes, rows

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _allowed_name(name: bytes) -> bytes:
    name = name.replace(b"/", b"_").replace(b"\x00", b"_")
    return b"x" + name if name.startswith((b".", b"~")) else name


# Any bytes a Linux file name may hold, but '.' first (hidden files are skipped on purpose) and
# '~' first (a manifest expands it to a home folder).
file_names = st.binary(min_size=1, max_size=40).map(_allowed_name)


def _stored_under(db, folder: bytes) -> dict[bytes, dict]:
    return {
        bytes(b): meta
        for b, meta in rows(
            db,
            """
        SELECT c.file_path_bytes, c.metadata FROM imgsearch.image_catalog c
        JOIN imgsearch.embeddings e ON e.image_id = c.image_id
        WHERE position(%s::bytea in c.file_path_bytes) = 1""",
            (folder + b"/",),
        )
    }


def _errors_under(db, prefix: str) -> list[str]:
    return [
        p
        for (p,) in rows(
            db, "SELECT path FROM imgsearch.ingest_errors WHERE starts_with(path, %s)", (prefix,)
        )
    ]


@PROPERTY_SETTINGS
@given(names=st.lists(file_names, min_size=1, max_size=4, unique=True), corrupt=file_names)
def test_any_file_names(db, lite0, names: list[bytes], corrupt: bytes) -> None:
    folder = os.fsencode(tempfile.mkdtemp(prefix="names-"))
    good = [os.path.join(folder, name) for name in names]
    for i, path in enumerate(good):
        with open(path, "wb") as f:
            f.write(jpeg_bytes(i))
    broken = os.path.join(folder, corrupt + b".jpg")
    if broken not in good:
        with open(broken, "wb") as f:
            f.write(b"this is not an image")

    report = ingest([os.fsdecode(folder)], encoder=lite0, database=db)

    stored = _stored_under(db, folder)
    assert set(stored) == set(good)
    assert report.failed == (0 if broken in good else 1)
    assert report.new == len(good)
    assert len(_errors_under(db, os.fsdecode(folder).rstrip("/"))) == report.failed


# Manifest cells: any bytes at all (NUL, invalid UTF-8, quotes, newlines, separators).
cells = st.binary(max_size=30)
plain_names = file_names.filter(lambda n: os.fsdecode(n).strip() == os.fsdecode(n))  # cells are stripped


def _cell_ok(cell: bytes) -> bool:
    try:
        cell.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in cell


@PROPERTY_SETTINGS
@given(
    table=st.lists(st.tuples(plain_names, cells, cells), min_size=1, max_size=5, unique_by=lambda row: row[0])
)
def test_any_manifest_cells(db, lite0, table: list[tuple[bytes, bytes, bytes]]) -> None:
    folder = os.fsencode(tempfile.mkdtemp(prefix="manifest-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # one folder an example
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["path", "title", "note"])
    for i, (name, title, note) in enumerate(table):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(jpeg_bytes(i))
        writer.writerow([os.fsdecode(c) for c in (name, title, note)])
    manifest = Path(os.fsdecode(folder)) / "manifest.csv"
    manifest.write_bytes(text.getvalue().encode("utf-8", "surrogateescape"))

    report = ingest(encoder=lite0, database=db, options=IngestOptions(manifest=manifest))

    expected = {}
    for name, title, note in table:
        if _cell_ok(title) and _cell_ok(note):
            metadata = {k: v.decode() for k, v in (("title", title), ("note", note)) if v}
            expected[os.path.join(folder, name)] = metadata
    assert _stored_under(db, folder) == expected
    bad_rows = len(table) - len(expected)
    assert report.failed == bad_rows and report.new == len(expected)
    assert len(_errors_under(db, f"{manifest}:")) == bad_rows
