"""How often the duplicate keeper suggestion picks the original, among copies made by the
project's own edits, against the rule it replaced (most pixels, then largest file, then oldest).

    python benchmarks/keeper.py
    python benchmarks/keeper.py --smoke   # 2 photos

Each sample photo is saved as a quality-90 JPEG (the original) and as eleven edited copies: the
seven fixed edits `evaluate --near-duplicates` uses (crop, resize, JPEG quality 15, rotation with
black corners, mirror, colour, grey), and an added border, a caption bar, a rotation that
enlarges the canvas and a PNG re-save (from the self-supervised edits and common practice).
Every group (the original and its copies) is judged three ways: copies newer than the original
(the usual case), all files equally old (the content alone decides), and copies older (the
file dates mislead). Per edit, the pair (original, that copy) is judged on content alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image

PNG_MAGIC = b"\x89PNG"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402
from _support import sample_photos  # noqa: E402

from imgsearch.collection.keeper import Look, choose, look  # noqa: E402
from imgsearch.config import Settings  # noqa: E402
from imgsearch.encoding.edited_copies import TRANSFORMS, make_copy  # noqa: E402
from imgsearch.encoding.edits import _border, _caption  # noqa: E402


def copies(img: Image.Image, seed: int) -> dict[str, bytes]:
    made = {name: make_copy(img, name) for name in TRANSFORMS}
    rng = random.Random(seed)

    def jpeg(picture: Image.Image) -> bytes:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    made["border"] = jpeg(_border(img, rng))
    made["caption"] = jpeg(_caption(img, rng))
    made["rotate-expand"] = jpeg(img.rotate(12, expand=True, resample=Image.Resampling.BILINEAR))
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg(img))).save(buf, "PNG")
    made["png"] = buf.getvalue()
    return made


def old_rule(items: list[tuple[int, Path, int, int, float]]) -> int:
    """The rule before 0.2: most pixels, then the largest file, then the oldest."""
    return max(items, key=lambda r: (r[3], r[2], -r[4], -r[0]))[0]


def write_group(folder: Path, original: bytes, made: dict[str, bytes]) -> list[tuple[str, Path]]:
    files = [("original", folder / "original.jpg")]
    files[0][1].write_bytes(original)
    for name, data in made.items():
        suffix = "png" if data.startswith(PNG_MAGIC) else "jpg"
        path = folder / f"{name}.{suffix}"
        path.write_bytes(data)
        files.append((name, path))
    return files


def judge(files: list[tuple[str, Path]], ages: dict[str, float], settings: Settings) -> tuple[bool, bool]:
    """(new rule picked the original, old rule did) with these file times."""
    looks: list[Look] = []
    rows = []
    for image_id, (name, path) in enumerate(files, start=1):
        os.utime(path, (ages[name], ages[name]))
        data = path.read_bytes()
        with Image.open(path) as img:
            w, h = img.size
        found = look(
            image_id, str(path), hashlib.sha256(data).hexdigest(), len(data), w, h, ages[name], settings
        )
        if found is not None:
            looks.append(found)
        rows.append((image_id, path, len(data), w * h, ages[name]))
    new, _ = choose(looks)
    return new == 1, old_rule(rows) == 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _support.add_arguments(parser)
    args = parser.parse_args()
    photos = dict(list(sample_photos().items())[: 2 if args.smoke else None])
    scenarios = {"copies newer": 1, "same age": 0, "copies older": -1}
    totals = {s: [0, 0] for s in scenarios}
    per_edit: dict[str, list[int]] = {}
    settings = Settings()  # the environment's limits on reading each file
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (photo_name, img) in enumerate(sorted(photos.items())):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            made = copies(img, seed)
            folder = Path(tmp) / photo_name
            folder.mkdir()
            files = write_group(folder, buf.getvalue(), made)
            for scenario, sign in scenarios.items():
                ages = {
                    name: 1_700_000_000.0 + sign * (0 if name == "original" else 3600) for name, _ in files
                }
                new, old = judge(files, ages, settings)
                totals[scenario][0] += new
                totals[scenario][1] += old
            for name, path in files[1:]:
                same = {"original": 1_700_000_000.0, name: 1_700_000_000.0}
                new, old = judge([files[0], (name, path)], same, settings)
                counts = per_edit.setdefault(name, [0, 0])
                counts[0] += new
                counts[1] += old
    n = len(photos)
    print(f"{n} photos, each with {len(made)} copies (one group each)\n")
    print("| file dates | new rule: original kept | old rule |")
    print("|---|---|---|")
    for scenario, (new, old) in totals.items():
        print(f"| {scenario} | {new}/{n} ({new / n:.0%}) | {old}/{n} ({old / n:.0%}) |")
    print("\nPairs (original, one copy), same file dates:\n")
    print("| copy | new rule | old rule |")
    print("|---|---|---|")
    for name, (new, old) in per_edit.items():
        print(f"| {name} | {new}/{n} | {old}/{n} |")
    all_new = sum(v[0] for v in per_edit.values())
    all_old = sum(v[1] for v in per_edit.values())
    pairs = n * len(per_edit)
    print(f"| all | {all_new}/{pairs} ({all_new / pairs:.0%}) | {all_old}/{pairs} ({all_old / pairs:.0%}) |")


if __name__ == "__main__":
    main()
