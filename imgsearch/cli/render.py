"""A picture of a search: the query and its neighbours side by side, with similarities."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from imgsearch.encoding.decode import decode_image
from imgsearch.errors import ImageDecodeError
from imgsearch.search import SearchResult
from imgsearch.sources import fetch

TILE = 224
CAPTION = 36


def _thumbnail(location: str) -> Image.Image:
    try:
        image = decode_image(fetch(location), min_size=TILE).image
    except (OSError, ImageDecodeError):
        return Image.new("RGB", (TILE, TILE), (200, 200, 200))  # gone since it was indexed
    image.thumbnail((TILE, TILE))
    tile = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    return tile


def _words(text: str) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) > 30 and line:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    lines.append(line)
    ImageDraw.Draw(tile).multiline_text((8, 8), "\n".join(lines[:12]), fill=(0, 0, 0))
    return tile


def render_grid(result: SearchResult) -> Image.Image:
    """One row: the query (its picture, else its words), then each match captioned with rank
    and similarity."""
    query = _thumbnail(result.query_path or result.query) if result.picture else _words(result.text or "")
    tiles = [(query, "query")]
    for m in result.results:
        caption = f"#{m.rank}  {m.similarity:.3f}"
        tiles.append((_thumbnail(m.location or m.path), caption + (f"\n{m.title[:28]}" if m.title else "")))
    canvas = Image.new("RGB", (len(tiles) * (TILE + 8) + 8, TILE + CAPTION + 16), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (tile, caption) in enumerate(tiles):
        x = 8 + i * (TILE + 8)
        canvas.paste(tile, (x, 8))
        draw.text((x, TILE + 12), caption, fill=(0, 0, 0) if i else (180, 0, 0), font=font)
    return canvas


def save_grid(result: SearchResult, out: str | Path) -> Path:
    out = Path(out)
    render_grid(result).save(out)
    return out
