"""Showing ingest progress: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .ingest import Progress, ProgressCallback

PLAIN_EVERY_S = 5.0


@contextmanager
def progress_display(stream=sys.stderr) -> Iterator[ProgressCallback]:
    if stream.isatty():
        with _rich_bar(stream) as callback:
            yield callback
    else:
        yield _plain_lines(stream)


@contextmanager
def _rich_bar(stream) -> Iterator[ProgressCallback]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    bar = Bar(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
              TextColumn("{task.fields[rate]:>7.1f} images/s"), TimeRemainingColumn(),
              console=Console(file=stream), transient=False)
    task = bar.add_task("ingest", total=None, rate=0.0)

    def update(p: Progress) -> None:
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        bar.update(task, completed=p.done, total=None if p.finding else p.found, rate=rate)

    with bar:
        yield update


def _plain_lines(stream) -> ProgressCallback:
    last = [time.monotonic()]

    def update(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < PLAIN_EVERY_S:
            return
        last[0] = now
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        total = f"{p.found}+" if p.finding else str(p.found)
        eta = "" if p.finding or rate == 0 else f", ETA {(p.found - p.done) / rate:.0f}s"
        print(f"ingest: {p.done}/{total} files, {rate:.1f} images/s{eta}", file=stream, flush=True)

    return update
