"""Labelled images: one class per sub-folder, or a `path,label` CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.errors import ImgsearchError
from imgsearch.ingest.files import find_images
from imgsearch.ingest.manifest import Row, read_table


@dataclass
class LabelledSet:
    paths: list[str]  # absolute, as ingest stores them
    labels: list[str]
    missing: list[str] = field(default_factory=list)  # listed in a CSV but not on disk
    unlabelled: int = 0  # images directly in DIR (no class folder)
    rejected: int = 0  # CSV rows that cannot be used


def from_folders(root: Path) -> LabelledSet:
    """One class per sub-folder of `root` (images in deeper folders belong to the top one)."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise ImgsearchError(f"{root}: not a folder")
    paths, labels, unlabelled = [], [], 0
    for path in find_images([root]):
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            unlabelled += 1
            continue
        paths.append(str(path))
        labels.append(parts[0])
    return LabelledSet(paths, labels, unlabelled=unlabelled)


def _paired(csv_path: Path, root: Path, column: str) -> tuple[list[str], list[str], list[str], int]:
    """(paths on disk, their `column` cells, paths missing, rows rejected) of `path,column`
    rows; relative paths are under `root`."""
    root = Path(root).expanduser().absolute()
    paths, values, missing, rejected = [], [], [], 0
    for row in read_table(csv_path, ("path",), root, required=(column,)):
        if not isinstance(row, Row):
            rejected += 1
        elif Path(row.location).is_file():
            paths.append(row.location)
            values.append(row.cells[column])
        else:
            missing.append(row.location)
    return paths, values, missing, rejected


def from_csv(csv_path: Path, root: Path) -> LabelledSet:
    """`path,label` rows (a header naming both columns); relative paths are under `root`.

    Rows that cannot be used (no label, a bad cell) are counted in `rejected`."""
    paths, labels, missing, rejected = _paired(csv_path, root, "label")
    return LabelledSet(paths, labels, missing, rejected=rejected)


@dataclass
class CaptionedSet:
    paths: list[str]  # absolute, one per caption (an image may have several captions)
    captions: list[str]
    missing: list[str] = field(default_factory=list)  # listed in the CSV but not on disk
    rejected: int = 0  # rows that cannot be used (no caption, a bad cell)


def captions_from_csv(csv_path: Path, root: Path) -> CaptionedSet:
    """`path,caption` rows (a header naming both); relative paths are under `root`."""
    paths, captions, missing, rejected = _paired(csv_path, root, "caption")
    return CaptionedSet(paths, captions, missing, rejected)
