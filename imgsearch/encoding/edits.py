"""Synthetic edits of a picture, drawn at random (seeded): the positives of self-supervised
training, and the fixed views of test-time augmentation.

The random edits (crop, rotation, grey, brightness, JPEG quality, border, caption bar, mirror,
downscale)
are drawn from ranges, unlike the fixed edits `evaluate --near-duplicates` measures with.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageOps


def _crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    side = rng.uniform(0.5, 0.9)
    cw, ch = max(1, int(w * side)), max(1, int(h * side))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def _rotate(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR)


def _grey(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def _brightness(img: Image.Image, rng: random.Random) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
    return ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))


def _jpeg(img: Image.Image, rng: random.Random) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(8, 40))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _border(img: Image.Image, rng: random.Random) -> Image.Image:
    pad = max(1, int(min(img.size) * rng.uniform(0.05, 0.2)))
    colour = tuple(rng.randint(0, 255) for _ in range(3))
    return ImageOps.expand(img, border=pad, fill=colour)


def _caption(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    bar = max(8, int(h * rng.uniform(0.1, 0.2)))
    out = Image.new("RGB", (w, h + bar), (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255))
    top = rng.random() < 0.5
    out.paste(img, (0, bar if top else 0))
    draw = ImageDraw.Draw(out)
    text_colour = (128, 128, 128)
    y = 2 if top else h + 2
    draw.text((4, y), "".join(rng.choice("abcdefghij klmnop") for _ in range(24)), fill=text_colour)
    return out


def _downscale(img: Image.Image, rng: random.Random) -> Image.Image:
    factor = rng.uniform(2.0, 5.0)
    w, h = img.size
    return img.resize((max(16, int(w / factor)), max(16, int(h / factor))), Image.Resampling.BILINEAR)


def _mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(img)


EDITS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "crop": _crop,
    "rotate": _rotate,
    "grey": _grey,
    "brightness": _brightness,
    "jpeg": _jpeg,
    "border": _border,
    "caption": _caption,
    "mirror": _mirror,
    "downscale": _downscale,
}


def random_edit(img: Image.Image, rng: random.Random, max_edits: int = 3) -> Image.Image:
    """One to `max_edits` different edits of all kinds, in random order."""
    return random_edit_from(img.convert("RGB"), rng, tuple(sorted(EDITS)), max_edits)


def tta_views(img: Image.Image) -> list[Image.Image]:
    """The picture, its mirror image and its centre 80%: a query's test-time views."""
    w, h = img.size
    cw, ch = max(1, int(w * 0.8)), max(1, int(h * 0.8))
    centre = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    return [img, ImageOps.mirror(img), centre]


def augmented_copies(img: Image.Image, n: int, seed: str) -> list[Image.Image]:
    """`n` label-preserving copies for index augmentation (flip, crop, colour jitter, small
    rotation), drawn with a generator seeded by `seed` (the image's content hash)."""
    rng = random.Random(seed)
    mild = ("mirror", "crop", "brightness", "rotate", "jpeg", "downscale")
    return [random_edit_from(img.convert("RGB"), rng, mild) for _ in range(n)]


def random_edit_from(
    img: Image.Image, rng: random.Random, names: tuple[str, ...], max_edits: int = 2
) -> Image.Image:
    """One to `max_edits` different edits among `names`, in random order."""
    for name in rng.sample(names, rng.randint(1, max_edits)):
        img = EDITS[name](img, rng).convert("RGB")
    return img
