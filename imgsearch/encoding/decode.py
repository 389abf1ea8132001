"""Turning image files into RGB pictures, the same way for ingest and for search.

EXIF orientation is applied, every common mode becomes RGB (alpha on white), large JPEGs
are decoded at reduced size with `draft`, animated images give their first frame, and
oversized images are refused before their pixels are decoded: over `IMGSEARCH_MAX_PIXELS`,
over the memory budget `IMGSEARCH_MAX_DECODE_BYTES` (from the header's size and mode), and in
any case over Pillow's own hard limit (twice `PIL.Image.MAX_IMAGE_PIXELS`, which imgsearch
leaves as the process has it). A PNG whose text or ICC profile chunks hold more than Pillow
reads is decoded without them, with a warning (`DecodedImage.warning`).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgsearch import config
from imgsearch.config import Settings
from imgsearch.errors import ImageDecodeError
from imgsearch.sources import read_file

DECODE_VERSION = 1  # bump whenever the pixels produced for a given file would change
MAX_JPEG_SCANS = 100  # progressive JPEGs have about 10 (libjpeg) to 15 (mozjpeg)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_METADATA_CHUNKS = (b"iCCP", b"tEXt", b"zTXt", b"iTXt")  # never needed for the pixels


@cache
def heif_available() -> bool:
    """Register the HEIC/HEIF opener when the optional `pillow-heif` package is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, possibly reduced by JPEG draft (never below the requested size)
    width: int  # original size, after EXIF orientation
    height: int
    format: str | None
    warning: str | None = None  # decoded, but something in the file was ignored: why


@dataclass(frozen=True)
class DecodeLimits:
    """What one image may cost: pixels (decompression bombs) and decoding memory in bytes,
    judged from the header before any pixel is decoded."""

    pixels: int = config.MAX_PIXELS
    bytes: int = config.MAX_DECODE_BYTES

    @classmethod
    def of(cls, settings: Settings) -> DecodeLimits:
        """The limits of these settings (IMGSEARCH_MAX_PIXELS, IMGSEARCH_MAX_DECODE_BYTES)."""
        return cls(settings.max_pixels, settings.max_decode_bytes)


def decode_image(
    source: bytes | str | Path, min_size: int | None = None, limits: DecodeLimits | None = None
) -> DecodedImage:
    """Decode `source` (file content or a path) to RGB.

    With `min_size`, a JPEG may be decoded at a reduced scale whose sides stay >= min_size,
    which is several times faster for camera-size files and changes nothing after resizing.
    `limits` default to the built-in ones; `DecodeLimits.of(settings)` gives those of settings
    (IMGSEARCH_MAX_PIXELS, IMGSEARCH_MAX_DECODE_BYTES).
    Raises ImageDecodeError with a `kind` (empty, not_an_image, too_large, corrupt).
    """
    limits = limits or DecodeLimits()
    if isinstance(source, (str, Path)):
        source = read_file(str(source), limits.bytes)
    if not source:
        raise ImageDecodeError("empty file (0 bytes)", "empty")
    if source[:2] == b"\xff\xd8" and (scans := source.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        # each scan of a progressive JPEG is decoded over the whole picture: thousands of tiny
        # scans cost minutes of CPU for a 1 MB file (a scan marker cannot occur in coded data)
        raise ImageDecodeError(
            f"a JPEG of {scans:,} scans, over the limit of {MAX_JPEG_SCANS} (a decoding bomb?)", "too_large"
        )
    heif_available()
    try:
        return _decode(source, min_size, limits)
    except ImageDecodeError as exc:
        if not (source.startswith(PNG_SIGNATURE) and "MAX_TEXT_" in str(exc.__cause__)):
            raise
    decoded = _decode(_without_metadata_chunks(source), min_size, limits)  # errors: its own
    decoded.warning = (
        "its text and ICC profile chunks hold more than Pillow reads (PngImagePlugin.MAX_TEXT_CHUNK "
        "or MAX_TEXT_MEMORY), so they were skipped; the pixels are decoded as usual"
    )
    return decoded


def _decode(data: bytes, min_size: int | None, limits: DecodeLimits) -> DecodedImage:
    """Decode `data`; Pillow's errors become ImageDecodeError (with the error as its cause)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            return _decode_opened(img, data, min_size, limits)
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image in a format imgsearch reads", "not_an_image") from exc
    except Image.DecompressionBombError as exc:
        sizes = [int(n) for n in re.findall(r"\d+", str(exc))[:2]]
        detail = (
            f"{sizes[0] / 1e6:.0f} megapixels, over Pillow's limit of {sizes[1] / 1e6:.0f}"
            if len(sizes) == 2
            else str(exc)
        )
        raise ImageDecodeError(f"{detail} (a decompression bomb?)", "too_large") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}", "corrupt") from exc


def _without_metadata_chunks(png: bytes) -> bytes:
    """`png` without its iCCP, tEXt, zTXt and iTXt chunks, every other byte as it was.

    Pillow refuses a PNG whose text or ICC chunk decompresses to over MAX_TEXT_CHUNK (1 MiB),
    or whose text adds up to over MAX_TEXT_MEMORY (64 MiB), as if it were broken. Raising
    those limits would let one file's zlib bomb cost gigabytes, and LOAD_TRUNCATED_IMAGES would
    also accept truncated pixel data; both are process-wide. Dropping the chunks keeps the
    limits and every other check of Pillow's: the copy costs the file's size once, and the
    pixels do not depend on the text or the ICC profile (Pillow applies no profile). Only an
    EXIF orientation kept in a text chunk (ImageMagick's "Raw profile type exif") is lost; an
    eXIf chunk is kept. A truncated last chunk is kept for Pillow to judge.
    """
    view = memoryview(png)
    parts = [view[: len(PNG_SIGNATURE)]]
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        end = pos + 12 + int.from_bytes(view[pos : pos + 4], "big")  # length, type, data, CRC
        if bytes(view[pos + 4 : pos + 8]) not in _METADATA_CHUNKS or end > len(png):
            parts.append(view[pos:end])
        pos = end
    parts.append(view[pos:])
    return b"".join(parts)


def _decode_opened(img: Image.Image, data: bytes, min_size: int | None, limits: DecodeLimits) -> DecodedImage:
    fmt = img.format
    width, height = img.size
    if width * height > limits.pixels:
        raise ImageDecodeError(
            f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{limits.pixels / 1e6:.0f} (IMGSEARCH_MAX_PIXELS)",
            "too_large",
        )
    cost = decode_cost(img.mode, _decoded_size(img, min_size))
    if cost > limits.bytes:
        raise ImageDecodeError(
            f"decoding this {width}x{height} {img.mode} image takes about {cost / 2**20:,.0f} MiB, "
            f"over the limit of {limits.bytes / 2**20:,.0f} MiB (IMGSEARCH_MAX_DECODE_BYTES)",
            "too_large",
        )
    orientation = img.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if min_size and fmt == "JPEG" and img.mode in ("RGB", "L"):
        fast = _scaled_jpeg(data, img.size, min_size, orientation)
        if fast is not None:
            return DecodedImage(fast, width, height, fmt)
    if min_size and fmt == "JPEG" and img.mode in ("RGB", "L", "CMYK", "YCbCr"):
        img.draft("RGB" if img.mode != "CMYK" else None, (min_size, min_size))
    img.load()  # first frame of an animated image; raises on truncated data
    if orientation != 1:
        img = ImageOps.exif_transpose(img)  # without orientation, no copy of the pixels
    return DecodedImage(to_rgb(img), width, height, fmt)


# Bytes per pixel of a decoded picture (Pillow keeps 3 and 2 band images in 4 bytes) plus those
# of the copies `to_rgb` makes of it on the way to RGB: the peak measured for 4000x4000 images
# of each mode (VmHWM), so the estimate is the real cost within a few percent.
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_CONVERSION_BYTES = {
    "RGB": 0,
    "I;16": 32,
    "I;16L": 32,
    "I;16B": 32,
    "I;16N": 32,
    "I": 32,
    "F": 32,
    "RGBA": 16,
    "LA": 16,
    "PA": 16,
    "RGBa": 16,
    "La": 16,
    "P": 20,
}


def decode_cost(mode: str, size: tuple[int, int]) -> int:
    """The memory (bytes) a picture of this mode and size takes to decode and turn into RGB."""
    per_pixel = _PIXEL_BYTES.get(mode, 4) + _CONVERSION_BYTES.get(mode, 4)
    return size[0] * size[1] * per_pixel


def _decoded_size(img: Image.Image, min_size: int | None) -> tuple[int, int]:
    """The size the pixels are decoded at: a JPEG read for `min_size` is reduced (1/2..1/8)."""
    if not (min_size and img.format == "JPEG"):
        return img.size
    return _draft_size(img.size, min_size)


def _draft_size(stored: tuple[int, int], min_size: int) -> tuple[int, int]:
    """The size Pillow's JPEG draft decodes at: the largest 1/2^n reduction whose sides stay
    >= min_size, sides rounded up."""
    width, height = stored
    ratio = min(width // min_size, height // min_size)
    scale = next(s for s in (8, 4, 2, 1) if ratio >= s or s == 1)
    return -(-width // scale), -(-height // scale)


# ImageOps.exif_transpose's operation for each EXIF orientation
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _scaled_jpeg(data: bytes, stored: tuple[int, int], min_size: int, orientation: int) -> Image.Image | None:
    """The JPEG decoded by simplejpeg at exactly the scale Pillow's draft picks (1, 1/2, 1/4 or
    1/8: the same pixels, about 10% faster, docs/performance), or None to let Pillow do it.
    """
    try:
        import simplejpeg
    except ImportError:
        return None
    size = _draft_size(stored, min_size)
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=size[0], min_height=size[1])
    except (ValueError, RuntimeError):
        return None  # Pillow decodes it or says precisely what is wrong
    if (pixels.shape[1], pixels.shape[0]) != size:
        return None  # libjpeg-turbo chose another factor (n/8): leave it to Pillow
    image = Image.fromarray(pixels, "RGB")
    return image.transpose(_ORIENTATION[orientation]) if orientation in _ORIENTATION else image


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img), mode), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        return img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer and float pixels to 0..255."""
    values = values.astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        scaled = values / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1.0:
        scaled = values * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = values
    elif lo >= 0 and hi <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
