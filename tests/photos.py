"""Real photographs that ship inside installed packages (no downloads)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


@cache
def sample_photos() -> dict[str, Image.Image]:
    """Colour photos from skimage, sklearn and matplotlib, by name."""
    import matplotlib.cbook
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    photos = {
        name: Image.fromarray(getattr(data, name)()).convert("RGB")
        for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
    }
    left, right, _ = data.stereo_motorcycle()
    photos["motorcycle_left"] = Image.fromarray(left)
    photos["motorcycle_right"] = Image.fromarray(right)
    samples = load_sample_images()
    for fname, array in zip(samples.filenames, samples.images, strict=True):
        photos[Path(fname).stem] = Image.fromarray(np.asarray(array))
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = Image.open(f).convert("RGB")
    return photos


def jpeg_recompressed(img: Image.Image, quality: int = 30) -> Image.Image:
    import io

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
