"""Ingest speed of a fine-tuned encoder against the base one (ONNX Runtime, CPU).

    python benchmarks/finetuned_speed.py [--images 600] [--size 224]

Fine-tunes EfficientNet-Lite0 briefly (1 epoch on 64 elpv cells: the weights' quality does not
change the speed), registers it, then ingests the same `--images` elpv cells into two fresh
databases, with the base and with the fine-tuned encoder, alternating, twice each, and prints
images/s of each run (`imgsearch ingest` end to end: read, decode, encode, write).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    from elpv_folders import write_folders

    import imgsearch
    from imgsearch.db import embedded
    from imgsearch.db.connection import connect
    from imgsearch.learning.finetune import FinetuneOptions

    home = Path(tempfile.mkdtemp(prefix="imgsearch-bench-finetuned-"))
    os.environ["IMGSEARCH_HOME"] = str(home)
    cells = home / "cells"
    write_folders(cells, "defect")
    small = home / "small"
    for label in sorted(p.name for p in cells.iterdir()):
        (small / label).mkdir(parents=True)
        for path in sorted((cells / label).glob("*.png"))[:16]:
            shutil.copyfile(path, small / label / path.name)
    chosen = sorted(cells.glob("*/*.png"))[: args.images]
    server = embedded.start(home)
    try:
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
    finally:
        embedded.stop(home)


if __name__ == "__main__":
    main()
