"""Camera-size JPEGs made from real sample photos (skimage, sklearn, matplotlib, elpv): the other
benchmarks' images. Run, it makes some and says how long each took.

    python benchmarks/sample_images.py OUT [--n 20] [--size 3000 2000]
    python benchmarks/sample_images.py --smoke   # 3 JPEGs of 640x480 (in a temporary folder)
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))


@cache
def source_photos(elpv: bool = True) -> list[Image.Image]:
    """The sample photos, and with `elpv` ten elpv solar-cell photos when elpv-dataset is
    installed (pip install -e '.[bench]'; a smoke run leaves them out: loading them takes seconds)."""
    from _support import load_elpv, sample_photos

    photos = list(sample_photos().values())
    if elpv:
        try:
            cells, _, _ = load_elpv()
            photos += [Image.fromarray(cells[i]).convert("RGB") for i in range(0, len(cells), 263)]
        except ImportError:
            pass
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
    folder: Path, n: int, size: tuple[int, int] = (3000, 2000), prefix: str = "camera", elpv: bool = True
) -> list[Path]:
    """n files in `folder` (kept between runs: made once), from `source_photos(elpv)`."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = source_photos(elpv)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}_{i:05d}.jpg"
        if not path.exists():
            path.write_bytes(camera_jpeg(photos[i % len(photos)], seed=i, size=size))
        paths.append(path)
    return paths


def main() -> None:
    import _support

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, nargs="?", help="the folder (default: a temporary one)")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, default=[3000, 2000])
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.size = 3, [640, 480]
    out = args.out
    if out is None:  # a smoke run's folder is removed at exit; a full run's is kept for use
        out = (
            _support.temporary_folder("imgsearch-sample-images-")
            if args.smoke
            else Path(tempfile.mkdtemp(prefix="imgsearch-sample-images-"))
        )
    t0 = time.perf_counter()
    photos = source_photos(not args.smoke)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    paths = make_camera_jpegs(out, args.n, tuple(args.size), elpv=not args.smoke)
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths) / len(paths)
    print(
        f"{len(photos)} source photos loaded in {loaded:.1f} s; {len(paths)} JPEGs of "
        f"{args.size[0]}x{args.size[1]} (q90, {size / 2**20:.2f} MiB each) in {seconds:.1f} s "
        f"({seconds / len(paths) * 1000:.0f} ms each) at {out}"
    )


if __name__ == "__main__":
    main()
