"""Write the elpv solar-cell photos as labelled folders for `imgsearch evaluate` / `train`.

    python benchmarks/elpv_folders.py OUT [--labels defect|type]
    python benchmarks/elpv_folders.py --smoke    # a stand-in of 40 cells, into a temporary folder

elpv-dataset (pip install -e '.[bench]'; evaluation only, non-commercial licence): 2,624
300x300 cells, 2 module types x 4 defect probabilities. One sub-folder per label: `defect`
gives 0.00/0.33/0.67/1.00, `type` gives mono/poly. Existing files are left as they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402


def write_folders(out: Path, labels: str, elpv: Path | None = None) -> int:
    """elpv's cells (or those of `elpv`, a labels.csv in its layout) in one folder per label."""
    from PIL import Image

    cells, probs, types = _support.load_elpv(elpv)
    for i, cell in enumerate(cells):
        label = f"{probs[i]:.2f}" if labels == "defect" else str(types[i])
        path = out / label / f"cell{i:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(cell).convert("RGB").save(path)
    return len(cells)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, nargs="?", help="the folder (needed unless --smoke)")
    parser.add_argument("--labels", choices=["defect", "type"], default="defect")
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.out is None:
        if not args.smoke:
            parser.error("the folder OUT is needed")
        args.out = _support.temporary_folder("elpv-folders-")  # a smoke run's throwaway
    n = write_folders(args.out, args.labels, _support.elpv_labels(args))
    print(f"{n} elpv cells in {args.out} (one sub-folder per {args.labels} label)")


if __name__ == "__main__":
    main()
