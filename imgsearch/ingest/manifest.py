"""CSV files that list images: manifests (a `path` or `url` column plus metadata columns) and
label files (`path,label`), read by one reader with one set of rules.

Every row is checked on its own: a row that cannot be used (a cell that is not UTF-8 or holds
a NUL character, a cell over the size limit, an unsupported URL scheme, no location) becomes
a `Failure` item with its reason and line number, and the other rows go on. Relative paths
are taken relative to a base folder the caller names (a manifest's own folder, say).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgsearch.errors import ImageDecodeError, ImgsearchError
from imgsearch.sources import Failure, Source, check_location, display_path, is_url

MAX_CELL_CHARS = 131_072  # Python's csv field limit; a larger cell rejects its row


@dataclass
class Row:
    line: int
    location: str  # absolute path (with the exact bytes of the cell) or http(s) URL
    cells: dict[str, str]  # the other non-empty cells, by column


def read_manifest(csv_path: str | Path) -> Iterator[Source | Failure]:
    """Sources of a manifest, in order; relative paths are relative to the CSV's folder."""
    for row in read_table(csv_path, ("path", "url"), Path(csv_path).parent):
        yield row if isinstance(row, Failure) else Source(row.location, row.cells)


def read_table(
    csv_path: str | Path, location_columns: Sequence[str], base: str | Path, required: Sequence[str] = ()
) -> Iterator[Row | Failure]:
    """Rows of a CSV whose header has one of `location_columns` (the first present is used)
    and every column in `required` (a row with an empty required cell is rejected)."""
    csv_path = Path(csv_path)
    try:
        # surrogateescape: a path cell keeps the exact bytes of a file name that is not UTF-8
        handle = csv_path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ImgsearchError(f"Cannot read {display_path(str(csv_path))}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        header, key = _header(reader, csv_path, location_columns, required)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = (
                    f"a cell is over the limit of {MAX_CELL_CHARS:,} characters"
                    if "field limit" in str(exc)
                    else f"unreadable CSV row ({exc})"
                )
                yield _rejected(csv_path, reader.line_num, reason)
                continue
            if not any(cells):
                continue
            row = _row(csv_path, reader.line_num, header, key, cells, Path(base))
            missing = [c for c in required if isinstance(row, Row) and not row.cells.get(c)]
            yield _rejected(csv_path, reader.line_num, f"no {missing[0]}") if missing else row


def _header(
    reader, csv_path: Path, location_columns: Sequence[str], required: Sequence[str]
) -> tuple[list[str], int]:
    name = display_path(str(csv_path))
    try:
        header = next(reader)
    except StopIteration:
        raise ImgsearchError(f"{name} is empty: it needs a header row.") from None
    except csv.Error as exc:
        raise ImgsearchError(f"{name}: unreadable header row ({exc}).") from None
    if any(_problem(column) for column in header):
        raise ImgsearchError(f"{name}: the header row is not valid UTF-8 text; save the file as UTF-8.")
    header = [column.strip() for column in header]
    needs = [f"a {' or '.join(f'`{c}`' for c in location_columns)} column"]
    needs += [f"a `{c}` column" for c in required]
    key = next((header.index(c) for c in location_columns if c in header), None)
    if key is None or not set(required) <= set(header):
        raise ImgsearchError(f"{name} needs {' and '.join(needs)}; it has: {', '.join(header)}")
    return header, key


def _problem(cell: str) -> str | None:
    """Why a cell cannot be stored as PostgreSQL text, or None."""
    if "\x00" in cell:
        return "holds a NUL character"
    if len(cell) > MAX_CELL_CHARS:
        return f"is {len(cell):,} characters, over the limit of {MAX_CELL_CHARS:,}"
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(cell[exc.start]) - 0xDC00
        return f"is not valid UTF-8 (byte 0x{byte:02x}); save the manifest as UTF-8"
    return None


def _row(
    csv_path: Path, line: int, header: list[str], key: int, cells: list[str], base: Path
) -> Row | Failure:
    location = cells[key].strip() if key < len(cells) else ""
    if not location:
        return _rejected(csv_path, line, f"no {header[key]}")
    if "\x00" in location or len(location) > 4096:
        return _rejected(csv_path, line, f"the {header[key]} cell is not a usable location")
    try:
        check_location(location)
    except ImageDecodeError as exc:
        return _rejected(csv_path, line, str(exc), exc.kind)
    if not is_url(location):
        location = os.path.abspath(os.path.join(base, os.path.expanduser(location)))
    metadata = {}
    for index, (column, cell) in enumerate(zip(header, cells, strict=False)):
        if index == key or not column or cell == "":
            continue
        problem = _problem(cell)
        if problem:
            return _rejected(csv_path, line, f"column {column!r} {problem}")
        metadata[column] = cell
    return Row(line, location, metadata)


def _rejected(csv_path: Path, line: int, message: str, kind: str = "manifest") -> Failure:
    return Failure(f"{display_path(os.path.abspath(csv_path))}:{line}", kind, message)
