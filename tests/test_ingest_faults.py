"""Ingest where the file system is odd (findings 3, 8, 9 and 10 of the attack probe): names
that display alike, folders that cannot be listed, symlink loops, edits that keep size and
mtime under a watch, and images whose decoding would take gigabytes; and findings 10 and 11 of
issue 32 (trust boundaries): concurrent ingests of the same files, and PNGs with huge chunks."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.ingest import IngestOptions, ingest
from imgsearch.library import Index
from imgsearch.sources import Failure

from .support.cli import imgsearch as run_imgsearch
from .support.hostile import error_paths, fs_name, jpeg_bytes, rows, write_photos


def test_names_that_display_alike_are_two_images(db, lite0, tmp_path) -> None:
    literal = tmp_path / "disp\\xe9.jpg"  # a backslash, an x, an e and a 9
    raw = fs_name(tmp_path, b"disp\xe9.jpg")  # the byte 0xE9 (Latin-1), not valid UTF-8
    literal.write_bytes(jpeg_bytes(0))
    Path(raw).write_bytes(jpeg_bytes(1))
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert (report.new, report.failed) == (2, 0), report.failures
    stored = rows(db, "SELECT path, path_bytes FROM imgsearch.images ORDER BY path_bytes NULLS FIRST")
    assert [p for p, _ in stored] == [str(literal), str(literal)]  # they display alike...
    assert [b and bytes(b) for _, b in stored] == [None, os.fsencode(raw)]  # ...and are two
    again = ingest([tmp_path], encoder=lite0, database=db)
    assert (again.new, again.unchanged, again.failed) == (0, 2, 0)
    Path(raw).write_bytes(jpeg_bytes(2))  # each is updated as itself
    assert ingest([tmp_path], encoder=lite0, database=db, options=IngestOptions(rehash=True)).updated == 1


@contextlib.contextmanager
def _as_nobody():
    """Without root's read-anything capability (a no-op for other users)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path) -> None:
    from imgsearch.ingest.files import walk

    top = Path(os.path.realpath("/tmp")) / f"imgsearch-perm-{os.getpid()}-{time.monotonic_ns()}"
    write_photos(top / "open", 2)
    write_photos(top / "closed", 2)
    for folder in (top, top / "open"):
        folder.chmod(0o755)
    for photo in (top / "open").iterdir():
        photo.chmod(0o644)
    (top / "closed").chmod(0o000)
    try:
        with _as_nobody():
            found = list(walk([top]))
    finally:
        (top / "closed").chmod(0o755)
        subprocess.run(["rm", "-rf", str(top)], check=True)
    images = [p for p in found if isinstance(p, Path)]
    rejected = [r for r in found if isinstance(r, Failure)]
    assert len(images) == 2
    assert [(r.location, r.kind) for r in rejected] == [(str(top / "closed"), "unreadable_folder")]
    assert "Permission denied" in rejected[0].message


def test_symlink_loops_and_dangling_links_are_reported(db, lite0, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_photos(folder / "a", 2)
    (folder / "a" / "up").symlink_to(folder, target_is_directory=True)  # a loop
    (folder / "self.jpg").symlink_to(folder / "self.jpg")  # a link to itself (ELOOP)
    (folder / "nowhere.jpg").symlink_to(tmp_path / "missing.jpg")
    report = ingest([folder], encoder=lite0, database=db, options=IngestOptions(follow_symlinks=True))
    kinds = sorted((Path(f.location).name, f.kind) for f in report.failures)
    assert kinds == [("nowhere.jpg", "broken_link"), ("self.jpg", "symlink_loop"), ("up", "symlink_loop")]
    assert report.new == 2 and report.failed == 3
    assert sorted(error_paths(db).values()) == ["broken_link", "symlink_loop", "symlink_loop"]

    cli = run_imgsearch(
        "ingest",
        folder,
        "--follow-symlinks",
        env={**os.environ, "IMGSEARCH_DATABASE_URL": db.url, "IMGSEARCH_DEVICE": "cpu"},
    )
    assert "3 failed" in cli.stdout and "symlink_loop" in cli.stdout, cli.stdout + cli.stderr


def test_a_watched_edit_that_keeps_size_and_mtime_is_reindexed(db, lite0, tmp_path) -> None:
    folder = tmp_path / "watched"
    path = write_photos(folder, 1)[0]
    index = Index(db.url, device="cpu", encoders=[lite0])
    stop = threading.Event()
    events: list = []
    thread = threading.Thread(
        target=index.watch, args=([folder],), kwargs={"stop": stop, "on_event": events.append}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while rows(db, "SELECT count(*) FROM imgsearch.embeddings") != [(1,)]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)  # the watch is set up once the first pass is written
        before = rows(db, "SELECT sha256 FROM imgsearch.images")[0][0]
        st = path.stat()
        edited = bytearray(path.read_bytes())
        edited[-200] ^= 0xFF  # same size, other content
        path.write_bytes(bytes(edited))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
        deadline = time.monotonic() + 30
        while rows(db, "SELECT sha256 FROM imgsearch.images")[0][0] == before:
            assert time.monotonic() < deadline, f"the edit was not picked up: {events}"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert any(e.report and e.report.updated == 1 for e in events)


PEAK_PROBE = """
import io, sys
from PIL import Image
from imgsearch.encoding.decode import decode_image
from imgsearch.encoding.preprocess import Preprocessing

def high_water_mib():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024

buf = io.BytesIO()
Image.new("L", (int(sys.argv[1]), int(sys.argv[2]))).save(buf, "PNG", optimize=True)
before = high_water_mib()
Preprocessing(256, 224, (0, 0, 0), (1, 1, 1))(decode_image(buf.getvalue(), min_size=256).image)
print(high_water_mib() - before)
"""


@pytest.mark.parametrize("size", [(60000, 2), (120000, 2), (2, 120000)])
def test_a_thin_strip_costs_megabytes_not_gigabytes(size) -> None:
    """A few hundred bytes of PNG that used to be enlarged to 8-15 GB before the centre crop."""
    if not Path("/proc/self/status").exists():
        pytest.skip("the high-water mark is read from /proc (Linux)")
    result = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, *map(str, size)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 200, f"{result.stdout} MiB more at the peak"


def test_thin_strips_are_ingested_and_over_budget_images_are_error_rows(
    db, lite0, tmp_path, monkeypatch
) -> None:
    def png(name: str, size: tuple[int, int], mode: str = "L") -> None:
        buf = io.BytesIO()
        Image.new(mode, size, 128).save(buf, "PNG", optimize=True)
        (tmp_path / name).write_bytes(buf.getvalue())

    png("strip.png", (60000, 2))
    png("big.png", (5000, 5000), "RGB")
    with (tmp_path / "padded.jpg").open("wb") as padded:  # a small JPEG and 60 MB of zeros
        padded.write(jpeg_bytes(3))
        padded.truncate(60 * 2**20)
    monkeypatch.setenv("IMGSEARCH_MAX_DECODE_BYTES", str(48 * 2**20))
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert report.new == 1
    failures = sorted((Path(f.location).name, f.kind, f.message) for f in report.failures)
    assert [(name, kind) for name, kind, _ in failures] == [
        ("big.png", "too_large"),
        ("padded.jpg", "too_large"),
    ]
    assert all("IMGSEARCH_MAX_DECODE_BYTES" in message for _, _, message in failures)
    assert "62,914,560 bytes" in failures[1][2]  # refused by its size, before it is read


@contextlib.contextmanager
def _small_disk(path: Path, megabytes: int):
    """A tmpfs of `megabytes` at `path` (root only; skipped where mounting is not allowed)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small disk here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_a_full_database_disk_is_one_sentence_and_a_rerun_completes(tmp_path) -> None:
    from imgsearch.db import embedded
    from imgsearch.db.schema import open_database

    with _small_disk(tmp_path / "disk", 160) as disk:
        home = disk / "home"  # only the database lives on the small disk
        server = embedded.start(home)
        try:
            open_database(server.url)
            write_photos(tmp_path / "photos", 150)
            ballast = disk / "ballast"
            st = os.statvfs(disk)
            ballast.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 256 * 1024))
            env = {**os.environ, "IMGSEARCH_DATABASE_URL": server.url, "IMGSEARCH_DEVICE": "cpu"}
            command = ["ingest", str(tmp_path / "photos")]
            full = run_imgsearch(*command, "--batch-size", "4", env=env, timeout=600)
            assert full.returncode != 0 and "Traceback" not in full.stderr, full.stderr
            message = [line for line in full.stderr.splitlines() if line.strip()][-1]
            assert message.startswith("error: ") and "space" in message.lower(), full.stderr
            ballast.unlink()
            if embedded.running_server(home) is None:  # PostgreSQL may stop on a full disk
                embedded.start(home)
            again = run_imgsearch(*command, env=env, timeout=600)
            assert again.returncode == 0, again.stderr
            assert rows(server, "SELECT count(*) FROM imgsearch.embeddings") == [(150,)]
        finally:
            embedded.stop(home)


def test_issue_32_finding_10_concurrent_ingests_encode_each_file_once(
    db, lite0, tmp_path, monkeypatch
) -> None:
    """Two ingests of the same files at once (two threads, each its own Index): each file goes
    through the model once in all, and each run's summary adds up: what the other run indexed
    is unchanged, nothing is "updated", and the bad file is one error row."""
    n = 40
    folder = tmp_path / "photos"
    write_photos(folder, n)
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    encoded: list[int] = []
    real = lite0.encode_batch

    def slow_counting(inputs):
        encoded.append(len(inputs[0]))  # list.append is atomic
        time.sleep(0.05)  # so that the two runs overlap
        return real(inputs)

    monkeypatch.setattr(lite0, "encode_batch", slow_counting)
    start = threading.Barrier(2)
    reports: list = [None, None]

    def run(i: int) -> None:
        index = Index(db.url, device="cpu", encoders=[lite0])
        start.wait()
        reports[i] = index.ingest([folder], batch_size=4, workers=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sum(encoded) == n, f"{sum(encoded)} encodes for {n} files"
    assert sum(r.encoded for r in reports) == n
    assert sum(r.new for r in reports) == n and [r.updated for r in reports] == [0, 0]
    assert [r.new + r.unchanged for r in reports] == [n, n]
    assert [r.failed for r in reports] == [1, 1]
    assert rows(db, "SELECT count(*) FROM imgsearch.embeddings") == [(n,)]
    assert rows(db, "SELECT kind FROM imgsearch.ingest_errors") == [("not_an_image",)]


def test_issue_32_finding_10_one_error_row_per_file_and_none_once_indexed(db, lite0, tmp_path) -> None:
    """A bad file keeps one error row (its newest reason) however many runs try it, and loses
    it once a run indexes it."""
    write_photos(tmp_path, 2)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    for _ in range(3):
        assert ingest([tmp_path], encoder=lite0, database=db).failed == 1
    assert rows(db, "SELECT kind FROM imgsearch.ingest_errors") == [("not_an_image",)]
    bad.write_bytes(b"")
    assert ingest([tmp_path], encoder=lite0, database=db).failed == 1
    assert rows(db, "SELECT kind FROM imgsearch.ingest_errors") == [("empty",)]
    bad.write_bytes(jpeg_bytes(7))
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert (report.new, report.unchanged, report.failed) == (1, 2, 0)
    assert rows(db, "SELECT count(*) FROM imgsearch.ingest_errors") == [(0,)]


def test_issue_32_finding_11_huge_icc_png_is_indexed_with_a_warning(db, lite0, tmp_path) -> None:
    """A PNG whose ICC profile is over Pillow's MAX_TEXT_CHUNK is indexed, not an error row;
    the report says in one sentence what was skipped."""
    buf = io.BytesIO()
    Image.new("RGB", (96, 72), (200, 120, 40)).save(buf, "PNG", icc_profile=bytes(2 * 2**20))
    (tmp_path / "huge_icc.png").write_bytes(buf.getvalue())
    report = ingest([tmp_path], encoder=lite0, database=db)
    assert (report.new, report.failed) == (1, 0), report.failures
    [(location, warning)] = report.warnings
    assert location == str(tmp_path / "huge_icc.png") and "ICC profile" in warning
    assert rows(db, "SELECT count(*) FROM imgsearch.ingest_errors") == [(0,)]
