"""The HTTP service as an attacker meets it (findings 1, 3, 5, 6, 7 and 11 of the attack probe
of 1ee3828; findings 7 and 8c of issue 32, "Trust boundaries"): swapped files, memory bombs,
floods of costly calls, oversized chunked bodies, crafted cursors, missing security headers."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch import config
from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.hostile import jpeg_bytes

TOKEN = "t0ken"


@pytest.fixture
def index(db, lite0):
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    yield index
    index.close()


@pytest.fixture
def folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["victim.jpg", "other.jpg", "sub/inner.jpg"]):
        (folder / name).write_bytes(jpeg_bytes(i, (160, 120)))
    return folder


@pytest.fixture
def client(index, folder):
    index.ingest([folder])
    with TestClient(create_app(index, api_token=TOKEN, max_upload_bytes=300_000)) as client:
        yield client


def _id(client: TestClient, name: str) -> int:
    images = client.get("/api/images", params={"limit": 100}).json()["images"]
    return next(i["id"] for i in images if i["path"].endswith(name))


# --- finding 1: files swapped for links ----------------------------------------------------


def test_a_file_swapped_for_a_symlink_is_not_served(client, folder) -> None:
    victim = _id(client, "/victim.jpg")
    original = (folder / "victim.jpg").read_bytes()
    served = client.get(f"/api/images/{victim}/file")
    assert served.status_code == 200 and served.content == original
    assert served.headers["content-type"] == "image/jpeg"
    assert client.get(f"/api/images/{victim}/thumb").status_code == 200  # now cached

    (folder / "victim.jpg").rename(folder / "moved.jpg")
    (folder / "victim.jpg").symlink_to("/etc/passwd")
    answer = client.get(f"/api/images/{victim}/file")
    assert answer.status_code == 404 and "root:" not in answer.text
    assert client.get(f"/api/images/{victim}/thumb").status_code == 404  # the cached one too
    assert client.get(f"/api/images/{victim}/thumb", params={"size": 1024}).status_code == 404

    (folder / "victim.jpg").unlink()  # a link to another image is refused as well
    (folder / "victim.jpg").symlink_to(folder / "other.jpg")
    assert client.get(f"/api/images/{victim}/file").status_code == 404
    assert client.get(f"/api/images/{victim}/thumb", params={"size": 1024}).status_code == 404

    (folder / "victim.jpg").unlink()
    os.mkfifo(folder / "victim.jpg")  # a FIFO neither hangs the server nor is served
    assert client.get(f"/api/images/{victim}/file").status_code == 404


def test_a_folder_swapped_for_a_symlink_is_not_served(client, folder, tmp_path) -> None:
    inner = _id(client, "/sub/inner.jpg")
    assert client.get(f"/api/images/{inner}/file").status_code == 200
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "inner.jpg").write_bytes(b"secret, not an image " * 100)
    (folder / "sub").rename(folder / "sub-old")
    (folder / "sub").symlink_to(elsewhere, target_is_directory=True)
    answer = client.get(f"/api/images/{inner}/file")
    assert answer.status_code == 404 and "secret" not in answer.text
    assert client.get(f"/api/images/{inner}/thumb", params={"size": 512}).status_code == 404


def test_an_edited_file_is_not_served_until_ingested_again(client, index, folder) -> None:
    victim = _id(client, "/victim.jpg")
    (folder / "victim.jpg").write_bytes(jpeg_bytes(7, (160, 120)))
    assert client.get(f"/api/images/{victim}/file").status_code == 404
    index.ingest([folder])
    assert client.get(f"/api/images/{victim}/file").content == (folder / "victim.jpg").read_bytes()


# --- finding 3: an image whose pixels are few but whose decoding is huge -------------------


def _png(size: tuple[int, int], mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_thin_strips_are_searched_and_over_budget_images_are_413(client, index, monkeypatch) -> None:
    for size in [(60000, 2), (2, 120000)]:
        answer = client.post("/api/search", files={"file": ("strip.png", _png(size), "image/png")})
        assert answer.status_code == 200, answer.text
    monkeypatch.setenv("IMGSEARCH_MAX_DECODE_BYTES", str(64 * 2**20))
    monkeypatch.setattr(index, "settings", config.load())  # the service's, from now on
    big = _png((6000, 6000), "RGB")  # 36 megapixels: under the pixel cap, over this budget
    answer = client.post("/api/search", files={"file": ("big.png", big, "image/png")}, data={"k": "3"})
    assert answer.status_code == 413
    assert "IMGSEARCH_MAX_DECODE_BYTES" in answer.json()["detail"]


# --- finding 5: duplicates computed once, however many ask ---------------------------------


def test_duplicate_groups_are_computed_once_per_state(client, index, folder, monkeypatch) -> None:
    from imgsearch.collection import duplicates

    computed = []
    real = duplicates.find_groups

    def counting(*args, **kwargs):
        computed.append(1)
        threading.Event().wait(0.3)  # long enough for every caller to be waiting
        return real(*args, **kwargs)

    monkeypatch.setattr(duplicates, "find_groups", counting)
    answers: list = []

    def ask() -> None:
        answers.append(client.get("/api/duplicates", params={"threshold": 0.6}).status_code)

    threads = [threading.Thread(target=ask) for _ in range(9)]  # the pool has 2 connections
    for t in threads:
        t.start()
    health = client.get("/health").status_code
    for t in threads:
        t.join(timeout=120)
    assert answers == [200] * 9 and health == 200
    assert len(computed) == 1
    client.get("/api/duplicates", params={"threshold": 0.6, "offset": 1})
    assert len(computed) == 1  # later pages read the same result
    (folder / "new.jpg").write_bytes(jpeg_bytes(9, (160, 120)))
    index.ingest([folder])
    client.get("/api/duplicates", params={"threshold": 0.6})
    assert len(computed) == 2  # the collection changed


# --- issue 32 (trust boundaries), finding 7: one duplicates computation at a time ----------


def test_issue_32_finding_7_duplicates_beyond_one_computation_are_503(client, monkeypatch) -> None:
    """20 thresholds at once were computed one after another (answers up to 92 s): while one
    computation runs, a request for other groups waits briefly, then gets a 503 with
    Retry-After; groups already computed are answered at once."""
    from imgsearch.collection import duplicates
    from imgsearch.service import api_collection

    monkeypatch.setattr(api_collection, "DUPLICATES_WAIT_S", 0.5)
    computed: list[float | None] = []
    started, release = threading.Event(), threading.Event()
    real = duplicates.find_groups

    def slow(conn, enc_id, dim, threshold=None, *args, **kwargs):
        computed.append(threshold)
        started.set()
        release.wait(60)
        return real(conn, enc_id, dim, threshold, *args, **kwargs)

    monkeypatch.setattr(duplicates, "find_groups", slow)
    release.set()
    assert client.get("/api/duplicates", params={"threshold": 0.6}).status_code == 200
    release.clear()
    started.clear()
    answers: dict = {}  # threshold: response

    def ask(threshold: float) -> None:
        answers[threshold] = client.get("/api/duplicates", params={"threshold": threshold})

    running = threading.Thread(target=ask, args=(0.7,))
    running.start()
    try:
        assert started.wait(30)
        others = [threading.Thread(target=ask, args=(0.71 + i / 100,)) for i in range(20)]
        for t in others:
            t.start()
        deadline = time.monotonic() + 20  # main computed them one after another
        for t in others:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        cached = client.get("/api/duplicates", params={"threshold": 0.6, "offset": 1})
        assert cached.status_code == 200  # while the other computation still runs
        busy = [a for t, a in answers.items() if t != 0.7]
        assert len(busy) == 20
        for answer in busy:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "2" and "try again" in answer.json()["detail"]
    finally:
        release.set()
        running.join(timeout=60)
    assert answers[0.7].status_code == 200
    assert computed == [0.6, 0.7]
    documented = client.get("/openapi.json").json()["paths"]["/api/duplicates"]["get"]["responses"]
    assert "Retry-After" in documented["503"]["headers"]


# --- finding 6: bodies over the limit, chunked or not --------------------------------------


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


@pytest.mark.parametrize("ctype", ["multipart/form-data; boundary=zzz", "application/json"])
def test_bodies_over_the_limit_are_413_chunked_or_not(client, ctype) -> None:
    chunked = client.post("/api/search", content=_chunks(1_000_000), headers={"content-type": ctype})
    assert chunked.status_code == 413 and chunked.json()["detail"]
    declared = client.post("/api/search", content=b"x" * 1_000_000, headers={"content-type": ctype})
    assert declared.status_code == 413


# --- finding 7: crafted cursors ------------------------------------------------------------


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "WyJhIiwgdHJ1ZV0=",
        _cursor(["a", 2**70]),
        _cursor([True, 1]),
        _cursor([["a"], 1]),
        _cursor({"a": 1}),
        _cursor(None),
        _cursor(["a", 1.5]),
        _cursor("[" * 3000 + "]" * 3000),
        "not base64!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_crafted_cursors_are_400(client, cursor) -> None:
    for sort in ("path", "date"):
        answer = client.get("/api/images", params={"cursor": cursor, "sort": sort})
        assert answer.status_code == 400, (cursor, answer.text)


@pytest.mark.parametrize("key", ["1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 400])
def test_issue_32_finding_8_non_finite_numbers_in_cursors_are_400(client, key) -> None:
    """Issue 32, finding 8c: a cursor encoding [1e999, 1] answered 200 with an empty page."""
    cursor = base64.urlsafe_b64encode(f"[{key}, 1]".encode()).decode()
    for sort in ("path", "date"):
        answer = client.get("/api/images", params={"cursor": cursor, "sort": sort})
        assert answer.status_code == 400, (key, sort, answer.text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=JSON, image_id=JSON, sort=st.sampled_from(["path", "date"]))
def test_any_cursor_is_a_page_or_a_400(client, key, image_id, sort) -> None:
    answer = client.get("/api/images", params={"cursor": _cursor([key, image_id]), "sort": sort})
    assert answer.status_code in (200, 400), answer.text


# --- finding 11: security headers, and Allow on 405 ----------------------------------------


def test_security_headers_on_pages_files_and_answers(client) -> None:
    victim = _id(client, "/victim.jpg")
    for url in (
        "/",
        "/docs",
        f"/api/images/{victim}/file",
        f"/api/images/{victim}/thumb",
        "/api/images",
        "/api/images/999999",
    ):
        headers = client.get(url).headers
        assert headers["x-content-type-options"] == "nosniff", url
        assert headers["x-frame-options"] == "DENY", url
        assert headers["referrer-policy"] == "no-referrer", url
        assert "frame-ancestors 'none'" in headers["content-security-policy"], url
    page = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in page and "unsafe-inline" not in page
    assert "sandbox" in client.get(f"/api/images/{victim}/file").headers["content-security-policy"]


def test_405_says_what_is_allowed(client) -> None:
    answer = client.put("/api/images/1")
    assert answer.status_code == 405
    assert {"GET", "DELETE"} <= {m.strip() for m in answer.headers["allow"].split(",")}
    assert client.delete("/api/search").headers["allow"] == "POST"
