"""Ingest speed of a fine-tuned encoder against the base one (ONNX Runtime, CPU).

    python benchmarks/finetuned_speed.py [--images 600] [--size 224]
    python benchmarks/finetuned_speed.py --smoke   # 2 cells a label, 96 px; 8 cells ingested

Fine-tunes EfficientNet-Lite0 briefly (1 epoch on 64 elpv cells: the weights' quality does not
change the speed), registers it, then ingests the same `--images` elpv cells into two fresh
databases, with the base and with the fine-tuned encoder, alternating, twice each, and prints
images/s of each run (`imgsearch ingest` end to end: read, decode, encode, write).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=224)
    _support.add_arguments(parser)
    args = parser.parse_args()
    per_label = 16
    if args.smoke:
        args.images, args.size, per_label = 8, 96, 2

    from elpv_folders import write_folders

    import imgsearch
    from imgsearch.db.connection import connect
    from imgsearch.learning.finetune import FinetuneOptions

    home = _support.home(args, "imgsearch-bench-finetuned-")
    cells = home / "cells"
    write_folders(cells, "defect", _support.elpv_labels(args))
    small = home / "small"
    for label in sorted(p.name for p in cells.iterdir()):
        (small / label).mkdir(parents=True)
        for path in sorted((cells / label).glob("*.png"))[:per_label]:
            shutil.copyfile(path, small / label / path.name)
    chosen = sorted(cells.glob("*/*.png"))[: args.images]
    with _support.database_server(args, home) as server:
        index = imgsearch.open(server.url, device="cpu")
        options = FinetuneOptions(epochs=1, size=args.size)
        report = index.train("tuned", small, finetune=options)
        print(f"fine-tuned on {report.images} cells in {report.seconds:.0f} s")
        index.encoder("tuned")  # exported to ONNX once, before timing
        for run in (1, 2):
            for model in ("efficientnet-lite0", "tuned"):
                with connect(index.db) as conn:
                    conn.execute("TRUNCATE imgsearch.images CASCADE")
                    conn.commit()
                t0 = time.perf_counter()
                index.ingest([str(p) for p in chosen], model=model)
                seconds = time.perf_counter() - t0
                print(f"run {run}: {model:<20} {len(chosen) / seconds:6.1f} images/s")
        index.close()


if __name__ == "__main__":
    main()
