"""Which image of a duplicate group to keep: the one that looks most like the original.

Edited copies give themselves away: an added border, a caption bar or rotation padding leaves
a frame or corners of one flat colour; a grey copy has lost its colour; a recompressed JPEG
has coarser quantisation tables; a crop or a thumbnail has fewer pixels; copies are usually
newer. `choose` ranks the members on padding, colour, pixels, compression, EXIF and age, in that
order, and says on which checks the keeper beat another member.
(`benchmarks/keeper.py` measures how often it picks the original among the project's edits.)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgsearch.config import Settings
from imgsearch.encoding.decode import DecodeLimits, decode_image
from imgsearch.errors import ImgsearchError
from imgsearch.indexed_files import read_indexed

SAMPLE_SIDE = 96  # pictures are judged at about this size
FLAT = 3.0  # a strip or corner this uniform (std of 0..255 values) is padding, not photo
GREY = 8.0  # channels this close in (almost) every pixel: no colour
# the IJG luminance quantisation table at quality 50, in zigzag order as Pillow gives it
_IJG_LUMA = np.array(
    [
        16,
        11,
        12,
        14,
        12,
        10,
        16,
        14,
        13,
        14,
        18,
        17,
        16,
        19,
        24,
        40,
        26,
        24,
        22,
        22,
        24,
        49,
        35,
        37,
        29,
        40,
        58,
        51,
        61,
        60,
        57,
        51,
        56,
        55,
        64,
        72,
        92,
        78,
        64,
        68,
        87,
        69,
        55,
        56,
        80,
        109,
        81,
        87,
        95,
        98,
        103,
        104,
        103,
        62,
        77,
        113,
        121,
        112,
        100,
        120,
        92,
        101,
        103,
        99,
    ],
    dtype=np.float64,
)


@dataclass
class Look:
    """What the choice looks at, for one image."""

    id: int
    padded: bool  # a flat frame or flat corners: an added border, caption bar, rotation padding
    grey: bool  # no colour
    quality: int | None  # JPEG quality estimated from its tables; None for other formats
    pixels: int
    exif: bool
    mtime: float | None


def jpeg_quality(img: Image.Image) -> int | None:
    """The IJG quality (1..100) a JPEG's luminance table corresponds to; None if not a JPEG."""
    tables = getattr(img, "quantization", None)
    if img.format != "JPEG" or not tables:
        return None
    luma = np.asarray(tables[min(tables)], dtype=np.float64)
    if luma.size != 64:
        return None
    scale = float(np.mean(luma / _IJG_LUMA)) * 100
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return int(round(min(100, max(1, quality))))


def _band(pixels: np.ndarray) -> bool:
    """Rows at the top (of `pixels`) that are mostly one colour (a caption bar's text leaves
    most of it alone) and end at a sharp edge: a bar added to a picture, not a smooth sky."""
    edge_colour = np.median(pixels[0], axis=0)
    rows = 0
    limit = int(len(pixels) * 0.4)
    while rows < limit and np.mean(np.abs(pixels[rows] - edge_colour).max(axis=1) <= 8) >= 0.8:
        rows += 1
    if rows < 2 or rows >= limit:
        return False
    return float(np.abs(pixels[rows] - pixels[rows - 1]).mean()) > 15


def is_padded(pixels: np.ndarray) -> bool:
    """A flat strip along a whole side (a border), a bar of one colour at the top or bottom (a
    caption bar) or flat corners on both ends of a diagonal (rotation padding)."""
    h, w = pixels.shape[:2]
    edge = max(1, min(h, w) // 24)
    sides = [pixels[:edge], pixels[-edge:], pixels[:, :edge], pixels[:, -edge:]]
    if any(side.std(axis=(0, 1)).max() < FLAT for side in sides):
        return True
    if _band(pixels) or _band(pixels[::-1]):
        return True
    cw, ch = max(2, w // 10), max(2, h // 10)
    flat = [
        c.std(axis=(0, 1)).max() < FLAT
        for c in (pixels[:ch, :cw], pixels[:ch, -cw:], pixels[-ch:, :cw], pixels[-ch:, -cw:])
    ]
    return (flat[0] and flat[3]) or (flat[1] and flat[2])


def look(
    image_id: int,
    location: str,
    sha256: str,
    byte_size: int,
    width: int | None,
    height: int | None,
    mtime: float | None,
    settings: Settings,
) -> Look | None:
    """How an indexed image looks to the choice (None when it cannot be read as indexed within
    the settings' limits)."""
    try:
        data = read_indexed(location, sha256, byte_size, settings=settings)
        header = Image.open(io.BytesIO(data))
        exif = bool(header.getexif())
        quality = jpeg_quality(header)
        picture = decode_image(data, min_size=SAMPLE_SIDE, limits=DecodeLimits.of(settings)).image
    except (ImgsearchError, OSError, ValueError):
        return None
    picture.thumbnail((SAMPLE_SIDE * 2, SAMPLE_SIDE * 2))
    pixels = np.asarray(picture, dtype=np.float32)
    spread = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2)
    grey = float(np.percentile(spread, 99.5)) < GREY  # no colour anywhere, JPEG noise aside
    return Look(image_id, is_padded(pixels), grey, quality, (width or 0) * (height or 0), exif, mtime)


REASONS = {
    "padded": "no added border, caption bar or rotation padding",
    "grey": "in colour",
    "quality": "less JPEG compression",
    "pixels": "more pixels",
    "exif": "camera data (EXIF) kept",
    "mtime": "the oldest file",
}


def _key(item: Look, colour_seen: bool, best_jpeg: int) -> tuple:
    # Another format (often a PNG saved from a JPEG) says nothing of compression: it ties with
    # the best JPEG of the group.
    return (
        not item.padded,
        not (item.grey and colour_seen),
        item.pixels,
        item.quality if item.quality is not None else best_jpeg,
        item.exif,
        -(item.mtime or 0.0),
        -item.id,
    )


def choose(looks: list[Look]) -> tuple[int, list[str]]:
    """The id to keep, and the checks on which it beat some other member (the reasons)."""
    if not looks:
        raise ValueError("no image to choose from")
    colour_seen = any(not item.grey for item in looks)
    best_jpeg = max((item.quality for item in looks if item.quality is not None), default=100)
    best = max(looks, key=lambda item: _key(item, colour_seen, best_jpeg))
    others = [item for item in looks if item is not best]
    reasons = []
    if any(o.padded for o in others) and not best.padded:
        reasons.append(REASONS["padded"])
    if colour_seen and not best.grey and any(o.grey for o in others):
        reasons.append(REASONS["grey"])
    if any(o.pixels < best.pixels for o in others):
        reasons.append(REASONS["pixels"])
    if best.quality is not None and any(
        o.quality is not None and o.quality < best.quality - 5 for o in others
    ):
        reasons.append(REASONS["quality"])
    if best.exif and any(not o.exif for o in others):
        reasons.append(REASONS["exif"])
    if best.mtime is not None and any((o.mtime or 0) > best.mtime for o in others):
        reasons.append(REASONS["mtime"])
    return best.id, reasons
