"""Maps: a 2-D projection of a collection's vectors (PCA, or UMAP when umap-learn is installed),
stored, and drawn as a PNG of thumbnails or one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image, ImageDraw

from imgsearch.collection.clusters import stored_vectors
from imgsearch.config import Settings
from imgsearch.db.connection import scalar
from imgsearch.encoding.decode import DecodeLimits, decode_image
from imgsearch.errors import ImageDecodeError, ImgsearchError
from imgsearch.sources import fetch, location_of

METHODS = ("pca", "umap")
CANVAS = 2400  # PNG side in pixels
TILE = 64  # thumbnail side on the PNG and in the HTML


@dataclass
class Point:
    id: int
    x: float  # 0..1
    y: float  # 0..1
    path: str
    location: str


def project(conn: psycopg.Connection, enc_id: int, method: str = "pca", seed: int = 0) -> int:
    """Project the encoder's vectors to 2-D, store the map, return its id."""
    if method not in METHODS:
        raise ImgsearchError(f"--method must be one of {', '.join(METHODS)}.")
    ids, vectors = stored_vectors(conn, enc_id)
    if len(ids) < 3:
        raise ImgsearchError("A map needs at least three indexed images.")
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImgsearchError("UMAP needs `pip install umap-learn` (or use --method pca).") from None
        xy = umap.UMAP(
            n_components=2, metric="cosine", random_state=seed, n_neighbors=min(15, len(ids) - 1)
        ).fit_transform(vectors)
    else:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    xy = (xy - xy.min(axis=0)) / np.maximum(np.ptp(xy, axis=0), 1e-12)
    with conn.transaction():
        map_id = scalar(
            conn.execute(
                "INSERT INTO imgsearch.maps (encoder_id, method) VALUES (%s, %s) RETURNING id",
                (enc_id, method),
            )
        )
        with conn.cursor().copy("COPY imgsearch.map_points (map_id, image_id, x, y) FROM STDIN") as copy:
            for image_id, (x, y) in zip(ids, xy, strict=True):
                copy.write_row((map_id, int(image_id), float(x), float(y)))
    return map_id


def points(conn: psycopg.Connection, map_id: int) -> list[Point]:
    return [
        Point(image_id, x, y, path, location_of(path, exact))
        for image_id, x, y, path, exact in conn.execute(
            """SELECT p.image_id, p.x, p.y, i.path, i.path_bytes
                            FROM imgsearch.map_points p JOIN imgsearch.images i ON i.id = p.image_id
                            WHERE p.map_id = %s ORDER BY p.image_id""",
            (map_id,),
        )
    ]


def latest(conn: psycopg.Connection, enc_id: int) -> int | None:
    return scalar(conn.execute("SELECT max(id) FROM imgsearch.maps WHERE encoder_id = %s", (enc_id,)))


def _thumb(location: str, settings: Settings) -> Image.Image | None:
    try:
        image = decode_image(fetch(location, settings), min_size=TILE, limits=DecodeLimits.of(settings)).image
    except ImageDecodeError:
        return None  # gone since it was indexed: drawn as a dot
    image.thumbnail((TILE, TILE))
    return image


def write_png(pts: list[Point], out: Path, settings: Settings) -> None:
    """Thumbnails at their places (a grey dot where the file cannot be read)."""
    margin = TILE
    canvas = Image.new("RGB", (CANVAS + 2 * margin, CANVAS + 2 * margin), "white")
    draw = ImageDraw.Draw(canvas)
    for p in pts:
        cx, cy = margin + p.x * CANVAS, margin + (1 - p.y) * CANVAS
        thumb = _thumb(p.location, settings)
        if thumb is None:
            draw.ellipse((cx - 4, cy - 4, cx + 4, cy + 4), fill=(150, 150, 150))
        else:
            canvas.paste(thumb, (int(cx - thumb.width / 2), int(cy - thumb.height / 2)))
    canvas.save(out)


def write_html(pts: list[Point], out: Path, settings: Settings, title: str = "imgsearch map") -> None:
    """One file: points with inline thumbnails; hover shows the picture and path, a click
    opens the image."""
    data = []
    for p in pts:
        thumb = _thumb(p.location, settings)
        src = ""
        if thumb is not None:
            buffer = io.BytesIO()
            thumb.save(buffer, "JPEG", quality=80)
            src = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        href = (
            p.location
            if p.location.startswith(("http://", "https://"))
            else Path(p.location).absolute().as_uri()
        )
        data.append(
            {"id": p.id, "x": round(p.x, 5), "y": round(p.y, 5), "path": p.path, "href": href, "thumb": src}
        )
    out.write_text(
        HTML.replace("{{title}}", html.escape(title)).replace(
            "{{points}}", json.dumps(data).replace("</", "<\\/")
        ),
        encoding="utf-8",
    )


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<style>
body { margin: 0; font-family: system-ui, sans-serif; }
#map { position: relative; width: 100vw; height: 100vh; }
.pt { position: absolute; width: 10px; height: 10px; margin: -5px; border-radius: 50%;
      background: #36c; opacity: .75; cursor: pointer; }
#tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #999;
       padding: 4px; font-size: 12px; max-width: 280px; word-break: break-all; display: none; }
</style></head>
<body><div id="map"></div><div id="tip"></div>
<script id="points" type="application/json">{{points}}</script>
<script>
const points = JSON.parse(document.getElementById("points").textContent);
const map = document.getElementById("map"), tip = document.getElementById("tip");
for (const p of points) {
  const dot = document.createElement("div");
  dot.className = "pt";
  dot.dataset.id = p.id;
  dot.style.left = (2 + p.x * 96) + "%";
  dot.style.top = (2 + (1 - p.y) * 96) + "%";
  dot.onmouseenter = (e) => {
    tip.replaceChildren();
    if (p.thumb) { const img = new Image(); img.src = p.thumb; tip.append(img); }
    tip.append(document.createElement("br"), p.path);
    tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px";
    tip.style.display = "block";
  };
  dot.onmouseleave = () => { tip.style.display = "none"; };
  dot.onclick = () => { if (p.href) window.open(p.href, "_blank"); };
  map.append(dot);
}
</script></body></html>
"""
