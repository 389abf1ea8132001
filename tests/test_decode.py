"""Decoding: every mode to RGB, EXIF orientation, draft, broken and oversized files."""

from __future__ import annotations

import io
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from imgsearch.encoding.decode import decode_image, to_rgb
from imgsearch.errors import ImageDecodeError

from .support.photos import decompression_bomb, encoded, exif_rotated_jpeg, png_chunk, zlib_of_zeros

_png = encoded


def test_rgba_is_composited_on_white() -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    out = np.asarray(decode_image(_png(img)).image)
    assert out[1, 1].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [255, 0, 0]


def test_la_and_pa_and_p_with_transparency() -> None:
    la = Image.new("LA", (2, 2), (0, 0))
    assert np.asarray(to_rgb(la))[0, 0].tolist() == [255, 255, 255]
    p = Image.new("P", (2, 2), 1)
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert np.asarray(to_rgb(p))[0, 0].tolist() == [10, 20, 30]
    p.info["transparency"] = 1
    assert np.asarray(decode_image(_png(p)).image)[0, 0].tolist() == [255, 255, 255]
    pa = Image.new("PA", (2, 2))
    pa.putpalette([200, 100, 50] * 256)
    assert np.asarray(to_rgb(pa))[0, 0].tolist() == [255, 255, 255]  # alpha 0: white


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 128, 128),
        ("I;16", 65535, 255),
        ("I;16", 32896, 128),
        ("I", 300 * 257, 255),
        ("I", 100, 100),
        ("F", 0.5, 128),
        ("F", 1.0, 255),
    ],
)
def test_grey_modes_scale_to_8_bit(mode: str, value: float, expected: int) -> None:
    img = Image.new(mode, (3, 3), value)
    if mode == "I":  # a uniform image is ambiguous; give it a dark corner to fix the range
        img.putpixel((0, 0), 0)
    out = np.asarray(to_rgb(img))
    assert out.shape == (3, 3, 3)
    assert out[2, 2].tolist() == [expected] * 3


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    decoded = decode_image(_png(cmyk, "JPEG", quality=95)).image
    assert decoded.mode == "RGB"
    r, g, b = np.asarray(decoded)[4, 4].tolist()
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats(fmt: str) -> None:
    img = Image.new("RGB", (40, 30), (10, 200, 30))
    decoded = decode_image(_png(img, fmt))
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (40, 30)
    assert decoded.format == fmt


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(decode_image(buf.getvalue()).image)[0, 0].tolist()
    assert r > 200 and b < 50


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    decoded = decode_image(exif_rotated_jpeg(img))
    assert decoded.image.size == (60, 20)
    assert (decoded.width, decoded.height) == (60, 20)
    r, g, b = np.asarray(decoded.image)[10, 2].tolist()
    assert b > 200 and r < 60


def test_draft_decodes_large_jpeg_at_reduced_size_but_not_below_min() -> None:
    big = Image.new("RGB", (3000, 2000), (90, 90, 90))
    data = _png(big, "JPEG", quality=90)
    decoded = decode_image(data, min_size=256)
    assert (decoded.width, decoded.height) == (3000, 2000)
    assert min(decoded.image.size) >= 256
    assert decoded.image.size[0] < 3000
    assert decode_image(data).image.size == (3000, 2000)


def test_truncated_jpeg_is_a_clear_error() -> None:
    data = _png(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError, match="truncated") as err:
        decode_image(data[: len(data) // 2])
    assert err.value.kind == "corrupt"


def test_empty_and_non_image_files() -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(b"")
    assert err.value.kind == "empty"
    with pytest.raises(ImageDecodeError) as err:
        decode_image(b"this is text, not a JPEG")
    assert err.value.kind == "not_an_image"


def _spliced(png: bytes, before_pixels: tuple[bytes, ...] = (), before_end: tuple[bytes, ...] = ()) -> bytes:
    """`png` with chunks added before its first IDAT and before its IEND."""
    idat, iend = png.index(b"IDAT") - 4, png.rindex(b"IEND") - 4
    return png[:idat] + b"".join(before_pixels) + png[idat:iend] + b"".join(before_end) + png[iend:]


HUGE_CHUNKS = {
    "huge_icc": {"before_pixels": (png_chunk(b"iCCP", b"icc\0\0" + zlib_of_zeros(2 * 2**20)),)},
    "huge_ztxt": {"before_pixels": (png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"x" * 2 * 2**20)),)},
    "huge_ztxt_after_the_pixels": {
        "before_end": (png_chunk(b"zTXt", b"Comment\0\0" + zlib_of_zeros(2 * 2**20)),)
    },
    "text_over_max_text_memory": {
        "before_pixels": tuple(
            png_chunk(b"zTXt", b"k%d\0\0" % i + zlib.compress(b"x" * 10**6)) for i in range(70)
        )
    },
}


@pytest.mark.parametrize("name", HUGE_CHUNKS)
def test_issue_32_finding_11_a_png_with_huge_text_or_icc_chunks_is_decoded_with_a_warning(name: str) -> None:
    """Pillow refuses these as too large (MAX_TEXT_CHUNK, MAX_TEXT_MEMORY); imgsearch decodes
    the pixels without those chunks and says so in one sentence, leaving Pillow's limits be."""
    limits = (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)
    plain = _png(Image.effect_noise((64, 48), 60).convert("RGB"))
    decoded = decode_image(_spliced(plain, **HUGE_CHUNKS[name]))
    assert np.array_equal(np.asarray(decoded.image), np.asarray(decode_image(plain).image))
    assert decoded.warning is not None and "MAX_TEXT_CHUNK" in decoded.warning
    assert "." not in decoded.warning.replace("PngImagePlugin.", "")  # one sentence
    assert decode_image(plain).warning is None
    assert limits == (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)


def test_issue_32_finding_11_a_chunk_that_inflates_to_a_gigabyte_costs_megabytes() -> None:
    bomb = png_chunk(b"zTXt", b"Comment\0\0" + zlib_of_zeros(2**30))  # 1 MiB stored, 1 GiB inflated
    data = _spliced(_png(Image.new("RGB", (64, 48), (1, 2, 3))), before_pixels=(bomb,))
    tracemalloc.start()
    try:
        decoded = decode_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.warning is not None
    assert peak < 3 * len(data) + 8 * 2**20, f"{peak / 2**20:.0f} MiB at the peak"


def test_issue_32_finding_11_a_truncated_png_with_a_huge_chunk_is_still_corrupt() -> None:
    noisy = _png(Image.effect_noise((256, 256), 60).convert("RGB"))
    data = _spliced(noisy, **HUGE_CHUNKS["huge_icc"])
    with pytest.raises(ImageDecodeError, match="^corrupt or truncated image: ") as err:
        decode_image(data[: len(data) - len(noisy) // 2])  # half of the pixels are gone
    assert err.value.kind == "corrupt"
    assert "MAX_TEXT" not in str(err.value), "the reason is the truncation, not the chunk"


@pytest.mark.slow
def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = decompression_bomb()
    assert len(data) < 1_000_000
    with pytest.raises(ImageDecodeError, match="megapixels") as err:
        decode_image(data)
    assert err.value.kind == "too_large"


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(tmp_path / "nope.jpg")
    assert err.value.kind == "unreadable"


JPEG_SIZES = ((451, 300), (700, 500), (1000, 700), (2000, 1333), (224, 224), (3000, 2000))
JPEG_VARIANTS = [
    "colour",
    "progressive",
    "grayscale",
    "subsampling-444",
    "cmyk",
    *(f"size-{w}x{h}" for w, h in JPEG_SIZES),
    *(f"orientation-{o}" for o in range(1, 9)),
]


def _jpeg_variant(name: str) -> bytes:
    """One JPEG of the astronaut at 1600x1200 (made when its test runs, not at collection)."""
    from .support.photos import sample_photos

    photo = sample_photos()["astronaut"].resize((1600, 1200))
    if name.startswith("size-"):
        width, height = map(int, name.removeprefix("size-").split("x"))
        return _png(photo.resize((width, height)), "JPEG", quality=90)
    if name.startswith("orientation-"):
        exif = Image.Exif()
        exif[0x0112] = int(name.removeprefix("orientation-"))
        return _png(photo, "JPEG", quality=90, exif=exif.tobytes())
    return {
        "colour": lambda: _png(photo, "JPEG", quality=90),
        "progressive": lambda: _png(photo, "JPEG", quality=85, progressive=True),
        "grayscale": lambda: _png(photo.convert("L"), "JPEG", quality=90),
        "subsampling-444": lambda: _png(photo, "JPEG", quality=95, subsampling=0),
        "cmyk": lambda: _png(photo.convert("CMYK"), "JPEG", quality=90),
    }[name]()


@pytest.mark.parametrize("variant", JPEG_VARIANTS)
def test_fast_jpeg_path_gives_pillows_pixels(variant, monkeypatch) -> None:
    from imgsearch.encoding import decode

    data = _jpeg_variant(variant)
    fast = decode_image(data, min_size=224)
    monkeypatch.setattr(decode, "_scaled_jpeg", lambda *args: None)
    slow = decode_image(data, min_size=224)
    assert (fast.width, fast.height, fast.format) == (slow.width, slow.height, slow.format)
    assert fast.image.size == slow.image.size and min(fast.image.size) >= 224
    difference = np.abs(np.asarray(fast.image, dtype=int) - np.asarray(slow.image, dtype=int))
    assert difference.max() == 0, variant  # the same libjpeg-turbo decode, the same scale


COST_PROBE = """
import sys
import numpy as np
from PIL import Image
from imgsearch.encoding.decode import DecodeLimits, decode_cost, decode_image

def high_water() -> int:
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024

mode, n = sys.argv[1], 2000
pixels = np.random.default_rng(0).integers(0, 255, (n, n, 4), dtype=np.uint8)
img = Image.fromarray(pixels, "RGBA").convert(mode) if mode != "I;16" else \\
    Image.fromarray(pixels[:, :, :2].copy().view(np.uint16)[:, :, 0])
img.save(sys.argv[2], "PNG")
del img, pixels
data = open(sys.argv[2], "rb").read()
before = high_water()
decode_image(data, limits=DecodeLimits(10**9, 10**12))
print(high_water() - before, decode_cost(mode, (n, n)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_the_decode_cost_estimate_is_not_below_the_real_peak(mode, tmp_path) -> None:
    """IMGSEARCH_MAX_DECODE_BYTES is only a bound if the estimate from the header is at least
    what decoding really takes (the high-water mark of a fresh process)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("the high-water mark is read from /proc (Linux)")
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", COST_PROBE, mode, str(tmp_path / "p.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    measured, estimated = map(int, result.stdout.split())
    assert measured <= estimated * 1.1 + 4 * 2**20, (measured / 2**20, estimated / 2**20)
