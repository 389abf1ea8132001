"""Write the elpv solar-cell photos as labelled folders for `imgsearch evaluate` / `train`.

    python benchmarks/elpv_folders.py OUT [--labels defect|type]

elpv-dataset (pip install -e '.[bench]'; evaluation only, non-commercial licence): 2,624
300x300 cells, 2 module types x 4 defect probabilities. One sub-folder per label: `defect`
gives 0.00/0.33/0.67/1.00, `type` gives mono/poly. Existing files are left as they are.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write_folders(out: Path, labels: str) -> int:
    from elpv_dataset.utils import load_dataset
    from PIL import Image

    cells, probs, types = load_dataset()
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
    parser.add_argument("out", type=Path)
    parser.add_argument("--labels", choices=["defect", "type"], default="defect")
    args = parser.parse_args()
    n = write_folders(args.out, args.labels)
    print(f"{n} elpv cells in {args.out} (one sub-folder per {args.labels} label)")


if __name__ == "__main__":
    main()
