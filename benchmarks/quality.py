"""Retrieval quality on real labelled images: the figures quoted in the README.

    python benchmarks/quality.py [--model efficientnet-lite0 ...] [--near-duplicates-sample 300]

1. elpv-dataset (2,624 solar-cell photos, `pip install -e '.[bench]'`): exported as
   `elpv/<mono|poly>/cell_NNNN.png` (the type label, as sub-folders) plus `elpv/defect.csv`
   (the defect probability 0 / 0.33 / 0.67 / 1 as the label), then `imgsearch evaluate`
   with each label (the type label a second time with an HNSW index, for its recall).
2. `imgsearch evaluate --near-duplicates` on the real photos shipped with skimage, sklearn
   and matplotlib, and on a sample of the elpv cells (a hard case: every cell looks alike).

Runs against a throwaway embedded server (or --url / --database-url).

    python benchmarks/quality.py --smoke   # 40 stand-in elpv cells (5 sampled), 3 photos
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402


def export_elpv(folder: Path, labels: Path | None = None) -> Path:
    """elpv images (or those of `labels`, a labels.csv in its layout) as <type>/cell_NNNN.png,
    and defect.csv (path,label); returns the folder."""
    from PIL import Image

    images, probs, types = _support.load_elpv(labels)
    rows = []
    for i, (img, prob, kind) in enumerate(zip(images, probs, types, strict=True)):
        rel = Path(str(kind)) / f"cell_{i:04d}.png"
        path = folder / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
        rows.append((str(rel), f"{float(prob):.2f}"))
    with open(folder / "defect.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return folder


def export_photos(folder: Path, n: int | None = None) -> Path:
    """The sample photos (the first n) as quality-95 JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in list(_support.sample_photos().items())[:n]:
        path = folder / f"{name}.jpg"
        if not path.exists():
            img.save(path, quality=95)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", help="repeat to compare (default: lite0)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "quality")
    parser.add_argument(
        "--near-duplicates-sample",
        type=int,
        default=300,
        help="elpv cells whose copies are searched (all 2,624 stay candidates)",
    )
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway embedded server)")
    _support.add_arguments(parser)
    args = parser.parse_args()
    n_photos = None
    if args.smoke:
        n_photos, args.near_duplicates_sample = 3, 5
        args.out = _support.temporary_folder("imgsearch-quality-out-")
    if args.home is not None:
        _support.home(args, "")  # the model cache

    from imgsearch.cli.evaluation_tables import evaluation_table, near_duplicates_table
    from imgsearch.db import embedded
    from imgsearch.evaluation.evaluate import EvaluationOptions, evaluate
    from imgsearch.evaluation.near_duplicates import CopyDetectionOptions, near_duplicates

    models = args.model or ["efficientnet-lite0"]
    elpv = export_elpv(args.out / "elpv", _support.elpv_labels(args))
    cells = sum(1 for _ in elpv.glob("*/*.png"))
    photos = export_photos(args.out / "photos", n_photos)
    home = None
    url = args.database_url or args.url
    if url is None:
        home = _support.temporary_folder("imgsearch-quality-")
        url = embedded.start(home).url

    def show(title: str, text: str, seconds: float) -> None:
        print(f"\n### {title} ({seconds:.0f}s)\n\n{text}", flush=True)

    try:
        t0 = time.perf_counter()
        result = evaluate(elpv, models=models, database=url)
        show("elpv, label = module type (sub-folders)", evaluation_table(result), time.perf_counter() - t0)
        from imgsearch.db.indexes import create_index
        from imgsearch.db.schema import open_database

        t0 = time.perf_counter()
        for model in models:
            create_index(open_database(url), model)
        result = evaluate(elpv, models=models, database=url)
        show(
            "elpv, module type, with an HNSW index (index R@k = its recall vs exact scan)",
            evaluation_table(result),
            time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        by_defect = EvaluationOptions(labels_csv=elpv / "defect.csv")
        result = evaluate(elpv, by_defect, models=models, database=url)
        show(
            "elpv, label = defect probability (defect.csv)",
            evaluation_table(result),
            time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        copies = near_duplicates(photos, models=models, database=url)
        show("near-duplicates, sample photos", near_duplicates_table(copies), time.perf_counter() - t0)
        t0 = time.perf_counter()
        copies = near_duplicates(
            elpv, CopyDetectionOptions(sample=args.near_duplicates_sample), models=models, database=url
        )
        show(
            f"near-duplicates, {args.near_duplicates_sample} elpv cells among all {cells:,}",
            near_duplicates_table(copies),
            time.perf_counter() - t0,
        )
    finally:
        if home is not None:
            embedded.stop(home)


if __name__ == "__main__":
    main()
