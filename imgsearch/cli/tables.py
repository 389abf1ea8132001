"""Tables for people: rich tables rendered to plain text (no colour), one style everywhere."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

RENDER_WIDTH = 1000  # wide enough that tables keep their natural width


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, right: Sequence[str] = ()) -> Table:
    """A table with a header rule and no frame; columns named in `right` are right-aligned."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="")
    for column in columns:
        t.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    for row in rows:
        t.add_row(*(str(cell) for cell in row))
    return t


def render(*items: object) -> str:
    """Text of tables and strings, one after the other, without trailing spaces."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=RENDER_WIDTH,
        color_system=None,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=True,
    )
    for item in items:
        console.print(item)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
