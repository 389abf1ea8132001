"""The HTTP API against the real database and the real default encoder."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgsearch import config
from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.hostile import image_server, jpeg_bytes
from .support.photos import sample_photos

TOKEN = "s3cret-token"


def _photos(folder):
    (folder / "sub").mkdir(parents=True)
    for i, (name, img) in enumerate(sorted(sample_photos().items())):
        (folder / ("sub" if i % 3 == 0 else "") / f"{name}.jpg").write_bytes(_jpeg(img))
    return folder


@pytest.fixture
def photos_dir(tmp_path):
    return _photos(tmp_path / "photos")


@pytest.fixture(scope="module")
def shared(module_db, lite0, tmp_path_factory):
    """The sample photos indexed once for the tests that only read (and search)."""
    folder = _photos(tmp_path_factory.mktemp("shared") / "photos")
    index = Index(module_db.url, device="cpu", pool_size=2, encoders=[lite0])
    index.ingest([folder])
    app = create_app(index, api_token=TOKEN, max_upload_bytes=2_000_000)
    with TestClient(app) as client:
        yield client, folder
    index.close()


@pytest.fixture
def reader(shared):
    return shared[0]


@pytest.fixture
def shared_photos(shared):
    return shared[1]


def _jpeg(img: Image.Image, size: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    (img.resize(size) if size else img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def index(db, lite0):
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    yield index
    index.close()


@pytest.fixture
def client(index, photos_dir):
    index.ingest([photos_dir])
    app = create_app(index, api_token=TOKEN, max_upload_bytes=2_000_000)
    with TestClient(app) as client:
        yield client


def _ids(client, **params) -> list[int]:
    ids, cursor = [], None
    while True:
        page = client.get("/api/images", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        ids += [image["id"] for image in page.json()["images"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


def test_health_stats_and_metrics(reader) -> None:
    assert reader.get("/health").json()["status"] == "ok"
    stats = reader.get("/api/stats").json()
    assert stats["images"] == len(sample_photos()) and stats["model"] == "efficientnet-lite0"
    reader.get("/api/images/999999")
    text = reader.get("/metrics").text
    assert "imgsearch_http_requests_total" in text and "imgsearch_images_indexed" in text
    assert 'status="404"' in text


def test_pagination_is_stable_under_inserts(client, index, photos_dir, tmp_path) -> None:
    everything = _ids(client, limit=100)
    assert len(everything) == len(set(everything)) == len(sample_photos())
    first = client.get("/api/images", params={"limit": 4}).json()
    seen = [image["id"] for image in first["images"]]
    extra = tmp_path / "photos" / "zzz"  # sorts after everything; and one that sorts first
    extra.mkdir()
    (extra / "new.jpg").write_bytes(jpeg_bytes(50))
    (photos_dir / "aaa-first.jpg").write_bytes(jpeg_bytes(51))
    index.ingest([photos_dir])
    cursor = first["next_cursor"]
    while cursor:
        page = client.get("/api/images", params={"limit": 4, "cursor": cursor}).json()
        seen += [image["id"] for image in page["images"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(everything) <= set(seen)  # nothing that was there is skipped
    by_date = _ids(client, sort="date", order="desc", limit=5)
    assert sorted(by_date) == sorted(_ids(client))
    sub = client.get("/api/images", params={"folder": str(photos_dir / "sub")}).json()["images"]
    assert sub and all("/sub/" in image["path"] for image in sub)
    assert client.get("/api/images", params={"cursor": "not-a-cursor"}).status_code == 400
    path_cursor = client.get("/api/images", params={"limit": 1}).json()["next_cursor"]
    mixed = client.get("/api/images", params={"cursor": path_cursor, "sort": "date"})
    assert mixed.status_code == 400 and "sort order" in mixed.json()["detail"]


def test_image_thumb_and_file(reader, shared_photos) -> None:
    image = reader.get("/api/images", params={"limit": 1}).json()["images"][0]
    assert reader.get(f"/api/images/{image['id']}").json()["path"] == image["path"]
    thumb = reader.get(image["thumb_url"], params={"size": 200})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    file = reader.get(f"/api/images/{image['id']}/file")
    assert file.status_code == 200 and file.content == Path(image["path"]).read_bytes()
    for bad in ("999999", "0", "-1", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "1%2F..%2F2"):
        response = reader.get(f"/api/images/{bad}/file")
        assert response.status_code in (404, 422), bad
        assert b"root:" not in response.content


def test_search_by_upload_url_and_id(reader, monkeypatch) -> None:
    cat = sample_photos()["chelsea"]
    upload = reader.post(
        "/api/search", files={"file": ("q.jpg", _jpeg(cat, (300, 200)), "image/jpeg")}, data={"k": "3"}
    )
    assert upload.status_code == 200, upload.text
    body = upload.json()
    assert len(body["results"]) == 3 and body["model"] == "efficientnet-lite0"
    best = body["results"][0]
    assert best["path"].endswith("chelsea.jpg") and best["thumb_url"].endswith("/thumb")
    scores = [r["similarity"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)

    by_id = reader.post("/api/search", json={"image_id": best["image_id"], "k": 2}).json()
    assert best["image_id"] not in [r["image_id"] for r in by_id["results"]]
    similar = reader.get(f"/api/images/{best['image_id']}/similar", params={"k": 2}).json()["results"]
    assert [r["image_id"] for r in similar] == [r["image_id"] for r in by_id["results"]]

    monkeypatch.setenv("IMGSEARCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setattr(reader.app.state.index, "settings", config.load())  # the service's, from now on
    with image_server({"/cat.jpg": (200, {"Content-Type": "image/jpeg"}, _jpeg(cat))}) as base:
        by_url = reader.post("/api/search", json={"url": f"{base}/cat.jpg", "k": 1}).json()
    assert by_url["results"][0]["image_id"] == best["image_id"]
    for name in ("min_similarity", "min_score"):  # min_score: the name before 0.2
        limited = reader.post("/api/search", json={"image_id": best["image_id"], "k": 5, name: 0.99})
        assert limited.json()["results"] == []
    hit = by_id["results"][0]
    assert set(hit) == {
        "rank",
        "image_id",
        "path",
        "similarity",
        "distance",
        "metadata",
        "width",
        "height",
        "mtime",
        "thumb_url",
    }
    assert hit["rank"] == 1 and abs(hit["similarity"] + hit["distance"] - 1) < 1e-6


def test_relevance_feedback_changes_the_order(reader) -> None:
    astronaut = sample_photos()["astronaut"]
    plain = reader.post(
        "/api/search", files={"file": ("a.jpg", _jpeg(astronaut), "image/jpeg")}, data={"k": "6"}
    ).json()["results"]
    ids = [r["image_id"] for r in plain]
    push_up, push_down = ids[-1], ids[1]
    refined = reader.post(
        "/api/search",
        files={"file": ("a.jpg", _jpeg(astronaut), "image/jpeg")},
        data={"k": "6", "positive_ids": str(push_up), "negative_ids": str(push_down)},
    ).json()["results"]
    order = [r["image_id"] for r in refined]
    assert push_up in order and order.index(push_up) < ids.index(push_up)
    assert push_down not in order or order.index(push_down) > ids.index(push_down)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"files": {"file": ("x.jpg", b"not an image at all", "image/jpeg")}}, 422),
        ({"files": {"file": ("big.jpg", b"\xff" * 2_100_000, "image/jpeg")}}, 413),
        ({"json": {"url": "http://10.0.0.1/x.jpg"}}, 400),
        ({"json": {"url": "http://127.0.0.1:9/x.jpg"}}, 400),
        ({"json": {"url": "file:///etc/passwd"}}, 400),
        ({"json": {"image_id": 123456789}}, 404),
        ({"json": {"url": "http://example.org/a.jpg", "image_id": 1}}, 422),
        ({"json": {"image_id": 1, "k": 100000}}, 422),
        ({"json": {"image_id": 1, "min_score": 5}}, 422),
        ({"json": {"image_id": 1, "min_similarity": -2}}, 422),
        ({"json": {"image_id": 1, "folder": "/a\u0000b"}}, 400),
        ({"content": b"k=3", "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ],
)
def test_bad_searches_are_4xx_with_a_message(reader, kwargs, status) -> None:
    response = reader.post("/api/search", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_writes_need_the_token(client, index, tmp_path, photos_dir) -> None:
    image_id = client.get("/api/images", params={"limit": 1}).json()["images"][0]["id"]
    assert client.delete(f"/api/images/{image_id}").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.delete(f"/api/images/{image_id}", headers=wrong).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.delete(f"/api/images/{image_id}", headers=auth).status_code == 204
    assert client.get(f"/api/images/{image_id}").status_code == 404
    assert client.delete(f"/api/images/{image_id}", headers=auth).status_code == 404

    job = client.post("/api/ingest", json={"path": str(photos_dir)}, headers=auth)
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 120
    assert client.get(f"/api/ingest/{job.json()['id']}").status_code == 401  # its errors name paths
    while (state := client.get(f"/api/ingest/{job.json()['id']}", headers=auth).json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert state["state"] == "done" and state["new"] == 1  # the deleted one comes back
    assert (
        client.post("/api/ingest", json={"path": str(tmp_path / "nowhere")}, headers=auth).status_code == 404
    )

    with TestClient(create_app(index)) as no_token:  # writes are off without a token
        assert no_token.delete(f"/api/images/{image_id}", headers=auth).status_code == 403


def test_openapi_docs_work_offline(reader) -> None:
    page = reader.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert reader.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "/api/search" in reader.get("/openapi.json").json()["paths"]


# --- one API: the same status and shape for the same situation (issue 23, finding 12) --------


def test_a_missing_image_is_404_everywhere(reader) -> None:
    for answer in (
        reader.post("/api/search", json={"image_id": 987654}),
        reader.get("/api/images/987654/similar"),
        reader.get("/api/images/987654"),
        reader.get("/api/images/987654/thumb"),
    ):
        assert answer.status_code == 404 and "987654" in answer.json()["detail"]


def test_an_unknown_model_is_400_with_an_id_or_an_upload(reader) -> None:
    """The same answer either way; and the service loads no encoder a caller names at will (an
    anonymous reader could otherwise make it import torch, load and export models)."""
    image_id = reader.get("/api/images", params={"limit": 1}).json()["images"][0]["id"]
    for model in ("clip", "resnet18"):
        by_id = reader.post("/api/search", json={"image_id": image_id, "model": model})
        by_upload = reader.post(
            "/api/search", files={"file": ("a.jpg", jpeg_bytes(1), "image/jpeg")}, data={"model": model}
        )
        for answer in (by_id, by_upload):
            assert answer.status_code == 400
            assert f"No images are indexed with model '{model}'" in answer.json()["detail"]
            assert "efficientnet-lite0" in answer.json()["detail"]


def test_error_details_read_as_sentences(reader) -> None:
    bad_json = reader.post("/api/search", content=b"{oops", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"].startswith("The body is not valid JSON")
    too_big = reader.post(
        "/api/search", content=b"x" * 3_000_000, headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413 and "2,000,000 bytes" in too_big.json()["detail"]
    relative = reader.post(
        "/api/ingest", json={"path": "photos"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert relative.status_code == 422 and "absolute" in relative.json()["detail"]


@pytest.mark.slow  # waits for a server that drips its bytes
def test_a_download_past_its_deadline_is_504(reader, monkeypatch) -> None:
    monkeypatch.setenv("IMGSEARCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("IMGSEARCH_DOWNLOAD_TIMEOUT_S", "1")
    monkeypatch.setattr(reader.app.state.index, "settings", config.load())
    with image_server({}) as base:
        answer = reader.post("/api/search", json={"url": f"{base}/drip.jpg"})
    assert answer.status_code == 504, answer.text
    assert "IMGSEARCH_DOWNLOAD_TIMEOUT_S" in answer.json()["detail"]


def test_every_answer_has_a_schema(reader) -> None:
    paths = reader.get("/openapi.json").json()["paths"]
    for path in ("/api/stats", "/api/folders", "/api/duplicates", "/api/clusters", "/api/map", "/health"):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, path


def test_folders_and_relative_filters(reader, shared_photos) -> None:
    listing = reader.get("/api/folders").json()
    assert listing["root"] == str(shared_photos)
    sub = next(f for f in listing["folders"] if f["name"] == "sub")
    assert sub["images"] == len(list((shared_photos / "sub").iterdir())) and sub["depth"] == 1
    relative = reader.get("/api/images", params={"folder": "sub"}).json()["images"]
    absolute = reader.get("/api/images", params={"folder": str(shared_photos / "sub")}).json()["images"]
    assert [i["id"] for i in relative] == [i["id"] for i in absolute] and len(relative) == sub["images"]


def test_an_upload_is_kept_and_can_be_searched_again(reader) -> None:
    cat = _jpeg(sample_photos()["chelsea"], (300, 200))
    first = reader.post("/api/search", files={"file": ("q.jpg", cat, "image/jpeg")}, data={"k": "3"}).json()
    upload = first["query"]["upload"]
    assert first["query"]["kind"] == "upload" and len(upload) == 64
    again = reader.post("/api/search", json={"upload": upload, "k": 3}).json()
    assert [r["image_id"] for r in again["results"]] == [r["image_id"] for r in first["results"]]
    shown = reader.get(f"/api/queries/{upload}")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert reader.get(f"/api/queries/{'0' * 64}").status_code == 404
    assert reader.post("/api/search", json={"upload": "0" * 64}).status_code == 404
    assert reader.post("/api/search", json={"upload": "../../etc/passwd"}).status_code == 422


@pytest.mark.slow  # waits for a server that drips its bytes
def test_slow_downloads_do_not_hold_the_decode_slots(index, photos_dir, monkeypatch) -> None:
    """A query URL on a server that drips its bytes waits for a download slot, not a decode
    slot: uploads meanwhile are answered."""
    from imgsearch.service import api_search

    index.ingest([photos_dir])
    monkeypatch.setattr(api_search, "QUERY_WAIT_S", 1.0)
    monkeypatch.setenv("IMGSEARCH_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("IMGSEARCH_DOWNLOAD_TIMEOUT_S", "4")
    monkeypatch.setattr(index, "settings", config.load())
    app = create_app(index, max_upload_bytes=2_000_000, query_concurrency=1)
    with TestClient(app) as client, image_server({}) as base:
        slow = threading.Thread(target=lambda: client.post("/api/search", json={"url": f"{base}/drip.jpg"}))
        slow.start()
        time.sleep(0.5)  # the drip has begun
        upload = client.post("/api/search", files={"file": ("a.jpg", jpeg_bytes(2), "image/jpeg")})
        slow.join(timeout=30)
    assert upload.status_code == 200, upload.text


def test_first_thumbnails_asked_for_at_once_never_fail(reader) -> None:
    image_id = reader.get("/api/images", params={"limit": 1}).json()["images"][0]["id"]
    answers: list[int] = []

    def ask() -> None:
        answers.append(reader.get(f"/api/images/{image_id}/thumb", params={"size": 1024}).status_code)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * 20


def test_a_jpeg_of_thousands_of_scans_is_refused_at_once(reader) -> None:
    """A 1 MB progressive JPEG whose scan is repeated 10,000 times cost 89 s of CPU per upload."""
    buf = io.BytesIO()
    Image.new("L", (800, 800), 128).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    scan = data[data.rfind(b"\xff\xda") : data.rfind(b"\xff\xd9")]
    bomb = data[: data.rfind(b"\xff\xd9")] + scan * 5000 + b"\xff\xd9"
    answer = reader.post("/api/search", files={"file": ("bomb.jpg", bomb, "image/jpeg")})
    assert answer.status_code == 413 and "scans" in answer.json()["detail"]
