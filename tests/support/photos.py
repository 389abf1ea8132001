"""Real photographs that ship inside installed packages (no downloads)."""

from __future__ import annotations

import importlib.util
import io
import zlib
from functools import cache
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps


def _package_file(package: str, *parts: str) -> Path:
    """A file shipped inside an installed package, found without importing it (importing
    scikit-learn takes a second, and the photos are plain JPEG files in it)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(spec.submodule_search_locations[0], *parts)


SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
PHOTO_NAMES = (*SKIMAGE_PHOTOS, "motorcycle_left", "motorcycle_right", "china", "flower", "grace_hopper")


@cache
def sample_photos() -> dict[str, Image.Image]:
    """Colour photos from skimage, sklearn and matplotlib, by name (sklearn's are the files
    `load_sample_images` reads, matplotlib's is `get_sample_data("grace_hopper.jpg")`)."""
    import skimage.data as data

    photos = {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in SKIMAGE_PHOTOS}
    left, right, _ = data.stereo_motorcycle()
    photos["motorcycle_left"] = Image.fromarray(left)
    photos["motorcycle_right"] = Image.fromarray(right)
    for name in ("china", "flower"):
        sklearn_photo = _package_file("sklearn", "datasets", "images", f"{name}.jpg")
        photos[name] = Image.open(sklearn_photo).convert("RGB")
    grace_hopper = _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    photos["grace_hopper"] = Image.open(grace_hopper).convert("RGB")
    assert tuple(photos) == PHOTO_NAMES
    return photos


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    """The picture as the bytes of a file (PNG unless `fmt` says otherwise)."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg(img: Image.Image) -> bytes:
    """The picture stored rotated on its side, with EXIF orientation 6 to put it upright."""
    stored = img.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    return encoded(stored, "JPEG", quality=95, exif=exif.tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data and CRC."""
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def zlib_of_zeros(n: int) -> bytes:
    """zlib data that inflates to `n` zero bytes: a MiB of zeros deflated once and its block
    repeated (each ends with a full flush, so every MiB deflates to the same bytes), then the
    rest, and the Adler-32 of it all (a tenth of the time of deflating a GiB)."""
    mib, zeros = 2**20, bytes(2**20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the zlib frame is written here
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(n, mib)
    tail = deflate.compress(bytes(rest)) + deflate.flush()
    adler = 1
    for _ in range(whole):
        adler = zlib.adler32(zeros, adler)
    adler = zlib.adler32(bytes(rest), adler)
    return b"\x78\xda" + block * whole + tail + adler.to_bytes(4, "big")


@cache
def decompression_bomb() -> bytes:
    """A PNG file of 200 KB that claims 40000x40000 pixels (1.6 gigapixels), black at one bit a
    pixel, all of it there (written directly: Pillow takes seconds to encode it)."""
    side = 40_000
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1-bit greyscale
    rows = side * (1 + (side + 7) // 8)  # each row: its filter byte and its packed pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib_of_zeros(rows))
        + png_chunk(b"IEND", b"")
    )


def jpeg_recompressed(img: Image.Image, quality: int = 30) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def halved(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, fraction: float = 0.8) -> Image.Image:
    w, h = img.size
    cw, ch = int(w * fraction), int(h * fraction)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


TRANSFORMS = {"jpeg30": jpeg_recompressed, "half": halved, "crop80": center_crop}

# Ten edits of a photo (the first leaves it as it is): the classes of the learning tests.
EDITS = [
    lambda i: i,
    halved,
    ImageOps.mirror,
    lambda i: center_crop(i, 0.6),
    lambda i: jpeg_recompressed(i, 20),
    lambda i: ImageEnhance.Color(i).enhance(0.2),
    lambda i: i.rotate(20),
    lambda i: ImageOps.grayscale(i).convert("RGB"),
    lambda i: center_crop(ImageOps.mirror(i), 0.7),
    lambda i: ImageEnhance.Brightness(i).enhance(1.6),
]
