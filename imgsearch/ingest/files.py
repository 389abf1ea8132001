"""Finding image files: recursive, by extension or by content; folders that cannot be listed
and symbolic links that loop are reported, never silently skipped."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgsearch.sources import Failure, display_path

IMAGE_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
    ]
)
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


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
    """Absolute paths of the images under `paths` (see `walk`; what cannot be walked is left
    out here)."""
    return (item for item in walk(paths, follow_symlinks) if isinstance(item, Path))


def walk(paths: Iterable[str | Path], follow_symlinks: bool = False) -> Iterator[Path | Failure]:
    """Absolute paths of the images under `paths` (files are taken as given), sorted per
    folder, and a `Failure` for each folder that cannot be listed and, with
    `follow_symlinks`, each link that loops or leads nowhere.

    Hidden files and folders (names starting with '.') are skipped; so are symbolic links
    unless `follow_symlinks`, and then each linked folder is entered once.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for root in paths:
        root = Path(root).expanduser().absolute()
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from _walk(root, follow_symlinks, seen_dirs, frozenset())
        else:
            raise FileNotFoundError(f"{display_path(str(root))}: no such file or folder")


def _rejected(path: str, kind: str, message: str) -> Failure:
    return Failure(display_path(path), kind, message)


def _walk(
    folder: Path, follow_symlinks: bool, seen: set[tuple[int, int]], ancestors: frozenset[tuple[int, int]]
) -> Iterator[Path | Failure]:
    try:
        st = folder.stat()
    except OSError as exc:
        yield _rejected(str(folder), "unreadable_folder", f"cannot open the folder: {exc.strerror}")
        return
    key = (st.st_dev, st.st_ino)
    if key in ancestors:
        yield _rejected(
            str(folder), "symlink_loop", "a symbolic link to a folder that contains it; not walked again"
        )
        return
    if key in seen:
        return  # reached before through another link
    seen.add(key)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield _rejected(str(folder), "unreadable_folder", f"cannot list the folder: {exc.strerror}")
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            link = entry.is_symlink()
            if link and not follow_symlinks:
                continue
            if entry.is_dir():
                subfolders.append(Path(entry.path))
            elif entry.is_file():
                if looks_like_image(Path(entry.path)):
                    yield Path(entry.path)
            elif link:
                yield _rejected(entry.path, "broken_link", "a symbolic link to nothing")
        except OSError as exc:
            kind = "symlink_loop" if exc.errno == errno.ELOOP else "unreadable"
            yield _rejected(entry.path, kind, f"cannot follow: {exc.strerror}")
    for sub in subfolders:
        yield from _walk(sub, follow_symlinks, seen, ancestors | {key})
