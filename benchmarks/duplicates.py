"""Duplicate groups with the calibrated contrast rule against one global threshold, on photos
with edited copies among look-alike distractors.

    python benchmarks/duplicates.py [--distractors 300] [--sets A B] [--scale 0]
    python benchmarks/duplicates.py --smoke   # 1 photo, 2 distractors, 200 vectors

Two collections, each the 11 sample photos (quality-92 JPEGs), edited copies of each, and
`--distractors` elpv solar-cell photos (pip install -e '.[bench]'), which look alike (their
nearest unrelated neighbours reach 0.96 with efficientnet-lite0):

- set A, 9 edits: centre crop 70%, half size, rotation 15 degrees, grey, mirror, brightness
  1.4, white border, caption bar, JPEG quality 10;
- set B, 10 other edits: corner crop 60%, rotation 90 degrees (canvas enlarged), stretched
  1.3x, blur (radius 2), hue shifted, watermark text, 64 colours, quarter size, contrast 0.6,
  noise.

Copies are written as JPEG (quality 90) and PNG in turn. Each collection is ingested into its
own database, calibrated through the library (`Index.calibrate_duplicates`), and grouped with
the calibrated margin, a fixed margin of 0.20 (the default without a calibration) and the
global rule at 0.85 and 0.90. Recall: original-copy pairs
found in one group. Purity: found pairs (two images in one group, distractors included) that
come from one scene (the two views of the stereo motorcycle pair count as one scene); "distinct"
counts them as different photos. `--scale N` also times the grouping among N synthetic vectors.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from _support import sample_photos  # noqa: E402


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(img: Image.Image, f: float, cx: float = 0.5, cy: float = 0.5) -> Image.Image:
    w, h = img.size
    cw, ch = int(w * f), int(h * f)
    x, y = int((w - cw) * cx), int((h - ch) * cy)
    return img.crop((x, y, x + cw, y + ch))


def _caption(img: Image.Image) -> Image.Image:
    w, h = img.size
    bar = int(h * 0.15)
    out = Image.new("RGB", (w, h + bar), (255, 255, 255))
    out.paste(img, (0, 0))
    ImageDraw.Draw(out).text((4, h + 4), "Holiday 2024 - do not share", fill=(0, 0, 0))
    return out


def _watermark(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    for y in range(0, out.height, max(20, out.height // 8)):
        draw.text((10, y), "(c) imgsearch stock photo " * 3, fill=(255, 255, 255))
    return out


def _hue(img: Image.Image) -> Image.Image:
    a = np.asarray(img.convert("HSV")).copy()
    a[..., 0] = (a[..., 0].astype(int) + 40) % 256
    return Image.fromarray(a, "HSV").convert("RGB")


def _noise(img: Image.Image) -> Image.Image:
    a = np.asarray(img, np.float32)
    noisy = a + np.random.default_rng(0).normal(0, 12, a.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


Edit = Callable[[Image.Image], Image.Image]
SET_A: dict[str, Edit] = {
    "crop70": lambda i: _crop(i, 0.7),
    "half": lambda i: i.resize((i.width // 2, i.height // 2)),
    "rot15": lambda i: i.rotate(15, resample=Image.Resampling.BILINEAR),
    "grey": lambda i: ImageOps.grayscale(i).convert("RGB"),
    "mirror": ImageOps.mirror,
    "bright": lambda i: ImageEnhance.Brightness(i).enhance(1.4),
    "border": lambda i: ImageOps.expand(i, border=int(min(i.size) * 0.1), fill=(255, 255, 255)),
    "caption": _caption,
    "jpeg10": lambda i: _jpeg(i, 10),
}
SET_B: dict[str, Edit] = {
    "crop60corner": lambda i: _crop(i, 0.6, 0.0, 0.0),
    "rot90": lambda i: i.rotate(90, expand=True),
    "stretch": lambda i: i.resize((int(i.width * 1.3), i.height)),
    "blur": lambda i: i.filter(ImageFilter.GaussianBlur(2)),
    "hue": _hue,
    "watermark": _watermark,
    "quant64": lambda i: i.quantize(64).convert("RGB"),
    "quarter": lambda i: i.resize((max(16, i.width // 4), max(16, i.height // 4))),
    "contrast": lambda i: ImageEnhance.Contrast(i).enhance(0.6),
    "noise": _noise,
}
SETS = {"A": SET_A, "B": SET_B}


def make_collection(
    folder: Path, edits: dict[str, Edit], cells: np.ndarray, distractors: int, n_photos: int | None = None
) -> dict[str, str]:
    """Write the images (the first `n_photos` sample photos); return path -> photo name (elpvN for
    a distractor). Originals are the paths ending in .original.jpg."""
    labels = {}
    for name, img in list(sample_photos().items())[:n_photos]:
        img = img.convert("RGB")
        out = folder / f"{name}.original.jpg"
        img.save(out, quality=92)
        labels[str(out)] = name
        for k, (edit, make) in enumerate(edits.items()):
            out = folder / f"{name}.{edit}.{'jpg' if k % 2 == 0 else 'png'}"
            make(img).convert("RGB").save(out, **({"quality": 90} if out.suffix == ".jpg" else {}))
            labels[str(out)] = name
    for i in range(distractors):
        out = folder / f"elpv{i:04d}.png"
        Image.fromarray(cells[i * (len(cells) // distractors)]).convert("RGB").save(out)
        labels[str(out)] = f"elpv{i}"
    return labels


def scores(groups, labels: dict[str, str]) -> dict:
    """Recall of original-copy pairs, purity of the found pairs (one scene; distinct photos),
    groups, the largest."""
    found = [p for g in groups for p in itertools.combinations(sorted(m.path for m in g.members), 2)]
    pairs = set(found)

    def scene(path: str) -> str:
        return "motorcycle" if labels[path].startswith("motorcycle") else labels[path]

    true = {
        tuple(sorted((orig, path)))
        for orig in labels
        if orig.endswith(".original.jpg")
        for path in labels
        if path != orig and labels[path] == labels[orig]
    }

    def cell(path: str) -> bool:
        return labels[path].startswith("elpv")

    wrong = [(a, b) for a, b in pairs if scene(a) != scene(b)]
    kinds = [cell(a) + cell(b) for a, b in wrong]  # 2: two cells, 1: a photo and a cell, 0: photos
    return {
        "wrong": f"{kinds.count(2)} cell-cell, {kinds.count(1)} photo-cell, {kinds.count(0)} photo-photo",
        "recall": len(pairs & true) / len(true),
        "purity": sum(scene(a) == scene(b) for a, b in pairs) / len(pairs) if pairs else 1.0,
        "distinct": sum(labels[a] == labels[b] for a, b in pairs) / len(pairs) if pairs else 1.0,
        "pairs": len(pairs),
        "groups": len(groups),
        "largest": max((len(g.members) for g in groups), default=0),
    }


def _line(what: str, s: dict[str, float], seconds: float) -> str:
    return (
        f"  {what:<22} recall {s['recall']:.3f}, purity {s['purity']:.3f} (distinct photos "
        f"{s['distinct']:.3f}), {s['pairs']:,} pairs, {s['groups']} groups, the largest "
        f"{s['largest']} images; wrong pairs: {s['wrong']}; grouping {seconds:.1f} s"
    )


def _groups(index, threshold: float | None):
    t0 = time.perf_counter()
    index.duplicates(threshold=threshold, limit=1)  # the groups (cached), without the keepers
    seconds = time.perf_counter() - t0
    return index.duplicates(threshold=threshold).groups, seconds


def _margin_groups(index, margin: float):
    """The contrast rule's groups at a margin of one's own (members only, no keepers)."""
    from imgsearch.collection.duplicates import find_groups
    from imgsearch.db.store import encoder_by_name

    t0 = time.perf_counter()
    with index.reading() as conn:
        enc = encoder_by_name(conn, index.model)
        groups = find_groups(conn, enc.id, enc.dimension, margin=margin)
    return groups, time.perf_counter() - t0


def run_set(
    set_url: str,
    home: Path,
    name: str,
    cells: np.ndarray,
    distractors: int,
    thresholds,
    margins,
    n_photos: int | None = None,
) -> None:
    """Set `name` in the empty database `set_url`."""
    import imgsearch

    folder = home / f"set-{name}"
    folder.mkdir()
    edits = SETS[name]
    labels = make_collection(folder, edits, cells, distractors, n_photos)
    index = imgsearch.open(set_url, device="cpu")
    index.ingest([folder])
    photos = len(sample_photos()) if n_photos is None else n_photos
    print(
        f"set {name}: {photos} photos x (1 + {len(edits)} copies: {', '.join(edits)}) "
        f"+ {distractors} elpv distractors"
    )
    t0 = time.perf_counter()
    c = index.calibrate_duplicates()
    seconds = time.perf_counter() - t0
    print(
        f"  calibrated: margin {c.margin:.2f} on {c.images} images x 4 copies, expected recall "
        f"{c.recall:.3f}, unrelated above {c.negatives:.3f}; {seconds:.1f} s"
    )
    print("    " + "  ".join(f"{r['margin']:.2f}: {r['recall']:.3f}/{r['negatives']:.3f}" for r in c.table))
    groups, seconds = _groups(index, None)
    print(_line(f"calibrated {c.margin:.2f}", scores(groups, labels), seconds))
    for margin in margins:
        groups, seconds = _margin_groups(index, margin)
        print(_line(f"fixed margin {margin:.2f}", scores(groups, labels), seconds))
    for threshold in thresholds:
        groups, seconds = _groups(index, threshold)
        print(_line(f"global {threshold:.2f}", scores(groups, labels), seconds))
    index.close()


def _scale(url: str, n: int) -> None:
    from collection import synthetic_collection

    import imgsearch
    from imgsearch.db.indexes import create_index

    scale_url, encoder_name, _ = synthetic_collection(url, n)
    index = imgsearch.open(scale_url, device="cpu")
    create_index(index.db, encoder_name)
    index.close()
    for threshold in (None, 0.85, None, 0.85):  # twice each, in turn: the first call warms the cache
        index = imgsearch.open(scale_url, device="cpu")  # no groups cached
        t0 = time.perf_counter()
        page = index.duplicates(threshold=threshold, limit=20)
        rule = "default margin" if threshold is None else f"global {threshold}"
        print(
            f"grouping {n:,} synthetic vectors ({rule}), with the keepers of a first page: "
            f"{time.perf_counter() - t0:.1f} s, {page.total:,} groups"
        )
        index.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--sets", nargs="*", default=["A", "B"], choices=sorted(SETS))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.85, 0.90])
    parser.add_argument(
        "--margins", type=float, nargs="*", default=[0.20], help="fixed margins, for comparison"
    )
    parser.add_argument("--scale", type=int, default=0, help="also time N synthetic vectors (0: no)")
    _support.add_arguments(parser)
    args = parser.parse_args()
    n_photos = None
    if args.smoke:
        args.distractors, args.thresholds, args.scale, n_photos = 2, [0.9], 200, 1

    home = _support.home(args, "imgsearch-bench-duplicates-")
    cells = _support.elpv(args)[0]
    with _support.database_server(args, home) as server:
        for name in args.sets:
            set_url = server.new_database(f"dup_set_{name.lower()}")
            run_set(set_url, home, name, cells, args.distractors, args.thresholds, args.margins, n_photos)
        if args.scale:
            _scale(server.new_database("dup_scale"), args.scale)


if __name__ == "__main__":
    main()
