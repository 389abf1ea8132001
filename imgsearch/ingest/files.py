"""Finding image files: recursive, by extension or by content, safe against symlink loops."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgsearch.sources import display_path

IMAGE_EXTENSIONS = frozenset([
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".heic", ".heif", ".avif",
])
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
          b"MM\x00*")


def looks_like_image(path: Path) -> bool:
    """True for a known image extension, or content that starts like an image file."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if head.startswith(_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"msf1")


def find_images(paths: Iterable[str | Path], follow_symlinks: bool = False) -> Iterator[Path]:
    """Absolute paths of the images under `paths` (files are taken as given), sorted per folder.

    Hidden files and folders (names starting with '.') are skipped. With `follow_symlinks`,
    linked folders are entered once each, so a loop cannot hang the walk.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for root in paths:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from _walk(root, follow_symlinks, seen_dirs)
        else:
            raise FileNotFoundError(f"{display_path(str(root))}: no such file or folder")


def _walk(folder: Path, follow_symlinks: bool, seen: set[tuple[int, int]]) -> Iterator[Path]:
    try:
        st = folder.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return
    seen.add(key)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_symlink() and not follow_symlinks:
                continue
            if entry.is_dir():
                subfolders.append(Path(entry.path))
            elif entry.is_file() and looks_like_image(Path(entry.path)):
                yield Path(entry.path)
        except OSError:
            continue
    for sub in subfolders:
        yield from _walk(sub, follow_symlinks, seen)
