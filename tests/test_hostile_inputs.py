"""Hostile input, each against the real database, asserting what is stored afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from imgsearch import config
from imgsearch.db.connection import Database
from imgsearch.download import download
from imgsearch.errors import ImageDecodeError, ImgsearchError
from imgsearch.ingest import IngestOptions, ingest
from imgsearch.search import search

from .support.cli import imgsearch as run_imgsearch
from .support.hostile import (
    error_paths,
    fs_name,
    image_server,
    jpeg_bytes,
    rows,
    small_photo,
    stored_files,
    write_photos,
)
from .support.warm_python import Finished


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> Finished:
    full_env = {**os.environ, "IMGSEARCH_DEVICE": "cpu", **env}
    return run_imgsearch(*args, env=full_env, timeout=timeout)


def _one_sentence(result: Finished | subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result
    return lines[-1]


# --- file names ---------------------------------------------------------------------------


def test_file_names_that_are_not_utf8_are_indexed_found_and_recovered(db, lite0, tmp_path) -> None:
    folder = tmp_path / "nas"
    write_photos(folder, 3)
    odd_names = [b"caf\xe9.jpg", b"new\nline\x1b[31m.jpg", b"\xff\xfe.jpg"]
    for i, name in enumerate(odd_names):
        Path(fs_name(folder, name)).write_bytes(jpeg_bytes(10 + i))

    report = ingest([folder], encoder=lite0, database=db)
    assert (report.new, report.failed) == (6, 0), report.failures
    stored = stored_files(db)
    for name in odd_names:
        assert os.path.join(os.fsencode(folder), name) in stored

    # The displayed path is readable text; the view's bytes give the exact name back.
    shown = dict(rows(db, "SELECT path_bytes, path FROM imgsearch.images WHERE path_bytes IS NOT NULL"))
    assert sorted(Path(p).name for p in shown.values()) == sorted(
        ["caf\\xe9.jpg", "new\\x0aline\\x1b[31m.jpg", "\\xff\\xfe.jpg"]
    )

    # Searching with the file itself finds it, and the match opens the very same file.
    query = fs_name(folder, b"caf\xe9.jpg")
    best = search(query, 1, encoder=lite0, database=db).results[0]
    assert best.path.endswith("caf\\xe9.jpg") and best.similarity > 0.999
    assert best.location == query and Path(best.location).read_bytes() == jpeg_bytes(10)

    again = ingest([folder], encoder=lite0, database=db)
    assert (again.new, again.unchanged, again.failed) == (0, 6, 0)


@pytest.mark.slow
def test_cli_shows_odd_names_readably(db, tmp_path) -> None:
    folder = tmp_path / "odd"
    Path(fs_name(folder.parent, b"odd")).mkdir()
    Path(fs_name(folder, b"caf\xe9.jpg")).write_bytes(jpeg_bytes(1))
    (folder / "plain.jpg").write_bytes(jpeg_bytes(2))
    result = _cli({"IMGSEARCH_DATABASE_URL": db.url}, "ingest", str(folder))
    assert result.returncode == 0, result.stderr
    assert "2 new" in result.stdout and "Traceback" not in result.stderr
    found = _cli({"IMGSEARCH_DATABASE_URL": db.url}, "search", fs_name(folder, b"caf\xe9.jpg"), "-k", "1")
    assert found.returncode == 0, found.stderr
    assert "caf\\xe9.jpg" in found.stdout


# --- manifests ----------------------------------------------------------------------------


def test_manifest_rows_fail_alone(db, lite0, tmp_path) -> None:
    write_photos(tmp_path / "img", 8)
    lines = [b"path,title"]
    lines += [f"img/photo{i:04d}.jpg,good {i}".encode() for i in range(5)]
    lines += [
        b"img/photo0005.jpg,nul\x00inside",  # line 7
        b"img/photo0006.jpg," + b"x" * 10_000_000,  # line 8: a 10 MB cell
        b"img/photo0007.jpg,Caf\xe9 (Latin-1)",  # line 9
        b"file:///etc/passwd,sneaky",  # line 10
        b"ftp://example.org/a.jpg,old",  # line 11
        b",no path",  # line 12
        b"img/missing.jpg,gone",  # line 13
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\n".join(lines) + b"\n")

    report = ingest(encoder=lite0, database=db, options=IngestOptions(manifest=manifest))
    assert (report.new, report.failed) == (5, 7), report.failures
    stored = {Path(os.fsdecode(k)).name: v for k, v in stored_files(db).items()}
    assert stored == {f"photo{i:04d}.jpg": {"title": f"good {i}"} for i in range(5)}
    errors = error_paths(db)
    assert {errors[f"{manifest}:{line}"] for line in (7, 8, 9, 12)} == {"manifest"}
    assert errors[f"{manifest}:10"] == errors[f"{manifest}:11"] == "unsupported_url"
    assert errors[str(tmp_path / "img" / "missing.jpg")] == "unreadable"
    messages = " ".join(f.message for f in report.failures)
    for reason in ("NUL", "over the limit", "not valid UTF-8", "file://", "ftp://"):
        assert reason in messages


def test_latin1_manifest_keeps_its_ascii_rows(db, lite0, tmp_path) -> None:
    write_photos(tmp_path, 3)
    manifest = tmp_path / "latin1.csv"
    manifest.write_bytes(
        "path,artist\nphoto0000.jpg,Dürer\nphoto0001.jpg,Monet\nphoto0002.jpg,Goya\n".encode("latin-1")
    )
    report = ingest(encoder=lite0, database=db, options=IngestOptions(manifest=manifest))
    assert (report.new, report.failed) == (2, 1)
    assert "save the manifest as UTF-8" in report.failures[0].message
    assert sorted(m["artist"] for m in stored_files(db).values()) == ["Goya", "Monet"]


def test_a_bad_row_in_a_batch_costs_only_itself(db, lite0, tmp_path) -> None:
    write_photos(tmp_path, 7)
    (tmp_path / "poison.jpg").write_bytes(jpeg_bytes(20))
    with psycopg.connect(db.url, autocommit=True) as conn:  # the database refuses one row
        conn.execute("""
            CREATE FUNCTION imgsearch.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.path LIKE '%%poison%%' THEN RAISE EXCEPTION 'poisoned row'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON imgsearch.images
                FOR EACH ROW EXECUTE FUNCTION imgsearch.refuse_poison();""")
    report = ingest([tmp_path], encoder=lite0, database=db, options=IngestOptions(batch_size=8))
    assert (report.new, report.failed) == (7, 1)
    assert report.failures[0].kind == "database" and "poisoned row" in report.failures[0].message
    assert rows(db, "SELECT count(*) FROM imgsearch.embeddings")[0][0] == 7
    assert error_paths(db)[str(tmp_path / "poison.jpg")] == "database"


# --- downloads ----------------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch):
    jpeg = jpeg_bytes(3)
    routes = {
        "/ok.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/page": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/big.jpg": (200, {"Content-Type": "image/jpeg"}, b"\xff" * 5000),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/to-ftp": (302, {"Location": "ftp://example.org/x.jpg"}, b""),
    }
    with image_server(routes) as base:
        routes["/to-ok"] = (302, {"Location": f"{base}/ok.jpg"}, b"")
        monkeypatch.setenv("IMGSEARCH_ALLOWED_HOSTS", "127.0.0.1")
        monkeypatch.setenv("IMGSEARCH_MAX_DOWNLOAD_BYTES", "4000")
        monkeypatch.setenv("IMGSEARCH_DOWNLOAD_TIMEOUT_S", "2")
        yield base, jpeg


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/a.jpg",
        "http://192.168.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/a.jpg",
        "http://224.0.0.1/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://localhost/a.jpg",
        "http://[64:ff9b::127.0.0.1]/a.jpg",  # NAT64: an IPv4 address inside IPv6
        "http://[::127.0.0.1]/a.jpg",  # IPv4-compatible
        "http://[::ffff:0:127.0.0.1]/a.jpg",  # IPv4-translated
        "http://[2002:7f00:1::1]/a.jpg",  # 6to4 of 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.jpg",  # Teredo
        "http://user:pw@127.0.0.1/a.jpg",  # credentials in a URL are never sent (nor echoed)
    ],
)
def test_private_and_loopback_addresses_are_refused_before_connecting(url) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        download(url, config.load())
    assert caught.value.kind == ("bad_url" if "@" in url else "forbidden_address")
    assert "pw" not in str(caught.value)


def test_loopback_needs_the_allow_list(server, monkeypatch) -> None:
    base, jpeg = server
    assert download(f"{base}/ok.jpg", config.load()) == jpeg
    assert download(f"{base}/to-ok", config.load()) == jpeg
    monkeypatch.delenv("IMGSEARCH_ALLOWED_HOSTS")
    with pytest.raises(ImageDecodeError, match="loopback"):
        download(f"{base}/ok.jpg", config.load())


def test_the_address_checked_is_the_one_connected_to(server, monkeypatch) -> None:
    """A host name is resolved once, and the connection goes to the address that was checked:
    a DNS answer that changes after the check (rebinding) is never asked for."""
    import socket

    base, jpeg = server
    port = int(base.rsplit(":", 1)[1])
    answers = iter(["127.0.0.1", "10.9.9.9"])  # the second answer would be refused
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host != "images.example":
            return real(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert download(f"http://images.example:{port}/ok.jpg", config.load()) == jpeg
    assert next(answers) == "10.9.9.9"  # asked once


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/to-file", "unsupported_url"),
        ("/to-ftp", "unsupported_url"),
        ("/page", "not_an_image"),
        ("/big.jpg", "too_large"),
        ("/nothing", "download"),
    ],
)
def test_bad_downloads_fail_with_their_reason(server, path, kind) -> None:
    base, _ = server
    with pytest.raises(ImageDecodeError) as caught:
        download(base + path, config.load())
    assert caught.value.kind == kind


@pytest.mark.slow
def test_a_dripping_server_fails_within_the_deadline(server) -> None:
    base, _ = server
    started = time.monotonic()
    with pytest.raises(ImageDecodeError, match="longer than 2 s"):
        download(f"{base}/drip.jpg", config.load())
    assert time.monotonic() - started < 10  # the deadline is 2 s; it used to hang for minutes


@pytest.mark.slow
def test_manifest_urls_are_checked_one_by_one(db, lite0, server, tmp_path) -> None:
    base, _ = server
    manifest = tmp_path / "urls.csv"
    manifest.write_text(
        "url,title\n"
        + "".join(f"{base}{p},{p}\n" for p in ("/ok.jpg", "/to-file", "/page", "/drip.jpg", "/big.jpg"))
    )
    report = ingest(encoder=lite0, database=db, options=IngestOptions(manifest=manifest))
    assert (report.new, report.failed) == (1, 4)
    assert rows(db, "SELECT path, metadata->>'title' FROM imgsearch.images") == [
        (f"{base}/ok.jpg", "/ok.jpg")
    ]
    assert len(error_paths(db)) == 4


def test_url_query_to_a_private_address_is_refused(db, lite0, tmp_path) -> None:
    ingest(write_photos(tmp_path, 2), encoder=lite0, database=db)
    with pytest.raises(ImgsearchError, match="loopback, private"):
        search("http://127.0.0.1:9/x.jpg", encoder=lite0, database=db)
    with pytest.raises(ImgsearchError, match="only http and https"):
        search("file:///etc/passwd", encoder=lite0, database=db)


# --- the database and options -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "url", ["notaurl", "postgresql://u:secret@localhost:notaport/db", "postgresql://127.0.0.1:1/nothing"]
)
def test_a_bad_database_url_is_one_sentence(url, tmp_path) -> None:
    result = _cli({"IMGSEARCH_DATABASE_URL": url}, "search", "id:1")
    assert result.returncode != 0
    line = _one_sentence(result)
    assert line.startswith("error: ") and "secret" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["-k", "9223372036854775808"],
        ["-k", "0"],
        ["--min-similarity", "nan"],
        ["--min-similarity", "5"],
        ["--ef-search", "100000"],
    ],
)
def test_out_of_range_options_are_refused(db, args) -> None:
    result = _cli({"IMGSEARCH_DATABASE_URL": db.url}, "search", "id:1", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Invalid value" in result.stderr


def test_library_checks_ranges_too(db, lite0) -> None:
    for k, min_similarity in [(0, None), (10**19, None), (5, float("nan")), (5, 1.5)]:
        with pytest.raises(ImgsearchError):
            search("id:1", k, encoder=lite0, min_similarity=min_similarity, database=db)
    with pytest.raises(ImgsearchError, match="No indexed image"):
        search("id:9223372036854775808", encoder=lite0, database=db)


# the server stops once the first batch is in; 4-12 images were in by then, with 400 or 100
# photos (the stop takes effect within a batch or two): 100 leave a wide margin
PHOTOS_TO_STOP = 100


@pytest.mark.slow
def test_server_stopped_mid_ingest(tmp_path, lite0) -> None:
    from imgsearch.db import embedded

    home = tmp_path / "home"
    home.mkdir()
    # the session's model cache (`lite0` exported into it): no ONNX export in the subprocess
    models = Path(os.environ["IMGSEARCH_HOME"]) / "models"
    (home / "models").symlink_to(models, target_is_directory=True)
    server = embedded.start(home)
    folder = tmp_path / "many"
    write_photos(folder, PHOTOS_TO_STOP)
    env = {"IMGSEARCH_HOME": str(home), "IMGSEARCH_DATABASE_URL": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "ingest", str(folder), "--batch-size", "4"],
        env={**os.environ, "IMGSEARCH_DEVICE": "cpu", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with psycopg.connect(server.url) as conn:
                    if conn.execute("SELECT count(*) FROM imgsearch.embeddings").fetchone()[0]:
                        break
            except psycopg.Error:
                pass  # schema not there yet
            time.sleep(0.02)
        assert embedded.stop(home)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert result.returncode not in (0, None)
    line = _one_sentence(result)
    assert "Lost the connection" in line and "run the same command again" in line

    server = embedded.start(home)
    try:
        db = Database(server.url)
        counts = rows(
            db,
            """SELECT count(*), count(e.image_id) FROM imgsearch.images i
                             LEFT JOIN imgsearch.embeddings e ON e.image_id = i.id""",
        )[0]
        assert 0 < counts[0] == counts[1] < PHOTOS_TO_STOP  # whole batches, and the stop landed mid-run
        rerun = _cli(env, "ingest", str(folder))
        assert rerun.returncode == 0, rerun.stderr
        assert f"{PHOTOS_TO_STOP - counts[0]} new" in rerun.stdout
        assert rows(db, "SELECT count(*) FROM imgsearch.embeddings")[0][0] == PHOTOS_TO_STOP
    finally:
        embedded.stop(home)


# --- incremental rules --------------------------------------------------------------------


def test_concurrent_ingests_report_honest_counts(db, lite0, tmp_path) -> None:
    write_photos(tmp_path, 40)
    reports = [None, None]

    def run(i: int) -> None:
        reports[i] = ingest(
            [tmp_path], encoder=lite0, database=db, options=IngestOptions(batch_size=4, workers=1)
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reports[0].new + reports[1].new == 40
    for r in reports:
        assert r.new + r.updated + r.unchanged == 40 and r.failed == 0
    assert rows(db, "SELECT count(*) FROM imgsearch.embeddings")[0][0] == 40


def test_rehash_finds_edits_that_keep_size_and_mtime(db, lite0, tmp_path) -> None:
    path = tmp_path / "same-size.bmp"
    small_photo(1).save(path)
    ingest([tmp_path], encoder=lite0, database=db)
    st = path.stat()
    small_photo(2).save(path)  # a BMP of the same size has the same byte count
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size

    assert ingest([tmp_path], encoder=lite0, database=db).encoded == 0
    report = ingest([tmp_path], encoder=lite0, database=db, options=IngestOptions(rehash=True))
    assert (report.updated, report.encoded) == (1, 1)
    best = search(str(path), 1, encoder=lite0, database=db).results[0]
    assert best.similarity > 0.999
    assert ingest([tmp_path], encoder=lite0, database=db, options=IngestOptions(rehash=True)).encoded == 0


def test_gone_files_are_counted_and_pruned_on_request(db, lite0, tmp_path) -> None:
    paths = write_photos(tmp_path / "a", 5)
    other = write_photos(tmp_path / "b", 2, start=5)
    ingest([tmp_path / "a", tmp_path / "b"], encoder=lite0, database=db)
    paths[0].unlink()
    paths[1].unlink()
    other[0].unlink()

    report = ingest([tmp_path / "a"], encoder=lite0, database=db)
    assert (report.gone, report.pruned, report.unchanged) == (2, 0, 3)
    assert rows(db, "SELECT count(*) FROM imgsearch.images")[0][0] == 7
    report = ingest([tmp_path / "a"], encoder=lite0, database=db, options=IngestOptions(prune_gone=True))
    assert (report.gone, report.pruned) == (2, 2)
    left = {Path(p).name for (p,) in rows(db, "SELECT path FROM imgsearch.images")}
    assert left == {p.name for p in paths[2:]} | {p.name for p in other}  # b/ is not touched
