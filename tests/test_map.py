"""The map: a stored 2-D projection, written as a PNG and as one self-contained HTML file."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from PIL import Image

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.hostile import rows
from .support.photos import sample_photos


def test_map_files_and_api(db, lite0, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in sample_photos().items():
        img.save(photos / f"{name}.jpg", quality=90)
    index = Index(db.url, device="cpu", encoders=[lite0])
    index.ingest([photos])
    n = len(sample_photos())

    map_id = index.map(tmp_path / "map.html")
    page = (tmp_path / "map.html").read_text()
    data = json.loads(
        re.search(r'<script id="points" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert len(data) == n and len({p["id"] for p in data}) == n
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in data)
    assert all(p["thumb"].startswith("data:image/jpeg;base64,") for p in data)
    assert all(p["href"].startswith("file://") for p in data)
    assert "http" not in page.replace("http://", "").split("<script id=")[0]  # nothing fetched
    assert rows(db, "SELECT count(*) FROM imgsearch.map_points WHERE map_id = %s", (map_id,)) == [(n,)]

    index.map(tmp_path / "map.png")
    with Image.open(tmp_path / "map.png") as png:
        assert png.width > 1000 and len(png.getcolors(1 << 24)) > 1000  # thumbnails drawn

    with TestClient(create_app(index)) as client:
        points = client.get("/api/map").json()["points"]
        assert len(points) == n and points[0]["thumb_url"].endswith("/thumb")
    index.close()
