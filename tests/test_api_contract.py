"""What a client developer meets (finding 11 of the journeys probe of 6450b97): unknown folders
and clusters are 404 like unknown images, every 422 carries the documented `errors` list, the
first page of the collection says how many images match, and the schema names the media types
of thumbnails and files."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.hostile import write_photos


@pytest.fixture
def client(db, lite0, tmp_path):
    write_photos(tmp_path / "photos" / "2024", 3)
    write_photos(tmp_path / "photos" / "2025", 2, start=3)
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    index.ingest([tmp_path / "photos"])
    with TestClient(create_app(index, api_token="t")) as client:
        yield client
    index.close()


def test_unknown_folders_and_clusters_are_404(client) -> None:
    assert client.get("/api/images", params={"folder": "2024"}).status_code == 200
    missing = client.get("/api/images", params={"folder": "1999"})
    assert missing.status_code == 404 and "1999" in missing.json()["detail"]
    assert client.get("/api/images", params={"folder": "/nowhere/at/all"}).status_code == 404
    # a known folder whose images the dates leave out is an empty page, not a 404
    empty = client.get("/api/images", params={"folder": "2024", "until": 1.0})
    assert empty.status_code == 200 and empty.json()["images"] == [] and empty.json()["total"] == 0
    assert client.get("/api/clusters/12/images").status_code == 404  # no clustering yet


def test_the_first_page_says_how_many_images_match(client) -> None:
    first = client.get("/api/images", params={"limit": 2}).json()
    assert first["total"] == 5 and len(first["images"]) == 2 and first["next_cursor"]
    later = client.get("/api/images", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert later["total"] is None
    assert client.get("/api/images", params={"folder": "2025"}).json()["total"] == 2


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"params": {"limit": 0}},  # a query parameter
        {"json": {"image_id": "not a number"}},  # a bad type inside a JSON body
        {"json": {"image_id": 1, "k": 10**6}},
    ],
)
def test_every_422_lists_the_invalid_fields(client, request_kwargs) -> None:
    method = client.get if "params" in request_kwargs else client.post
    path = "/api/images" if "params" in request_kwargs else "/api/search"
    answer = method(path, **request_kwargs)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["detail"] and body["errors"] and {"loc", "msg", "type"} <= set(body["errors"][0])


def test_the_schema_documents_errors_and_media_types(client) -> None:
    schema = client.get("/openapi.json").json()
    problem = schema["components"]["schemas"]["Problem"]["properties"]
    assert {"detail", "errors"} <= set(problem)
    thumb = schema["paths"]["/api/images/{image_id}/thumb"]["get"]["responses"]
    assert "image/jpeg" in thumb["200"]["content"] and "503" in thumb
    assert "image/jpeg" in schema["paths"]["/api/queries/{upload}"]["get"]["responses"]["200"]["content"]
    assert "image/*" in schema["paths"]["/api/images/{image_id}/file"]["get"]["responses"]["200"]["content"]
    assert "total" in schema["components"]["schemas"]["ImagePage"]["properties"]
    assert schema["components"]["securitySchemes"]["token"]["scheme"].lower() == "bearer"
    assert {"token": []} in schema["paths"]["/api/ingest"]["post"]["security"]


def test_clusters_and_a_map_are_made_from_the_api_and_unknown_clusters_are_404(client) -> None:
    auth = {"Authorization": "Bearer t"}
    assert client.get("/api/map").status_code == 404
    assert client.post("/api/map", json={}).status_code in (401, 403)
    made = client.post("/api/map", json={"method": "pca"}, headers=auth)
    assert made.status_code == 200 and len(made.json()["points"]) == 5
    assert client.get("/api/map").status_code == 200
    run = client.post("/api/clusters", json={"n": 2}, headers=auth).json()
    known = run["clusters_found"][0]["cluster"]
    assert client.get(f"/api/clusters/{known}/images").json()["images"]
    assert client.get("/api/clusters/999/images").status_code == 404
