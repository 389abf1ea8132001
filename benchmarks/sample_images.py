"""Camera-size JPEGs made from real sample photos (skimage, sklearn, matplotlib, elpv)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def source_photos() -> list[Image.Image]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.photos import sample_photos

    photos = list(sample_photos().values())
    try:
        from elpv_dataset.utils import load_dataset

        cells, _, _ = load_dataset()
        photos += [Image.fromarray(cells[i]).convert("RGB") for i in range(0, len(cells), 263)]
    except ImportError:
        pass  # pip install -e '.[bench]' adds the elpv solar-cell photos
    return photos


def camera_jpeg(photo: Image.Image, seed: int, size: tuple[int, int] = (3000, 2000)) -> bytes:
    """A 3000x2000 quality-90 JPEG: the photo randomly cropped, flipped and scaled up."""
    rng = random.Random(seed)
    w, h = photo.size
    frac = rng.uniform(0.6, 1.0)
    cw, ch = int(w * frac), int(h * frac)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = photo.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = img.resize(size, Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).integers(-3, 4, (size[1], size[0], 3), dtype=np.int16)
    img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_camera_jpegs(
    folder: Path, n: int, size: tuple[int, int] = (3000, 2000), prefix: str = "camera"
) -> list[Path]:
    """n files in `folder` (kept between runs: made once)."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = source_photos()
    paths = []
    for i in range(n):
        path = folder / f"{prefix}_{i:05d}.jpg"
        if not path.exists():
            path.write_bytes(camera_jpeg(photos[i % len(photos)], seed=i, size=size))
        paths.append(path)
    return paths
