"""What the CLI shows: progress (a bar on a terminal, plain lines otherwise) and tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from imgsearch.progress import Progress, ProgressCallback

PLAIN_EVERY_S = 5.0


def plural(n: int, noun: str) -> str:
    """`1 file`, `2 files`: a count and its noun."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


UNITS = {"ingest": "images", "copies": "copies", "index": ""}


@contextmanager
def progress_display(stream=None) -> Iterator[ProgressCallback]:
    stream = stream or sys.stderr
    if stream.isatty():
        with _rich_bars(stream) as callback:
            yield callback
    else:
        yield _plain_lines(stream)


@contextmanager
def _rich_bars(stream) -> Iterator[ProgressCallback]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    bars = Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(p: Progress) -> None:
        if p.task not in tasks:
            tasks[p.task] = bars.add_task(p.task, total=None, rate="")
        unit = UNITS.get(p.task, "")
        rate = f"{p.rate:7.1f} {unit}/s" if unit else p.note
        bars.update(tasks[p.task], completed=p.done, total=p.total, rate=rate)

    with bars:
        yield update


def _plain_lines(stream) -> ProgressCallback:
    last: dict[str, float] = {}

    def update(p: Progress) -> None:
        now = time.monotonic()
        if now - last.setdefault(p.task, now) < PLAIN_EVERY_S:
            return
        last[p.task] = now
        total = "?" if p.total is None else str(p.total)
        unit = UNITS.get(p.task, "")
        line = f"{p.task}: {p.done}/{total}"
        if unit:
            line += f", {p.rate:.1f} {unit}/s"
            if p.total is not None and p.rate > 0:
                line += f", ETA {(p.total - p.done) / p.rate:.0f}s"
        if p.note:
            line += f" ({p.note})"
        print(line, file=stream, flush=True)

    return update


def search_table(result) -> str:
    """rank, similarity, path (and title), id."""
    from imgsearch.cli.tables import render, table

    rows = [
        (m.rank, f"{m.similarity:.4f}", m.path + (f"  ({m.title})" if m.title else ""), f"id:{m.image_id}")
        for m in result.results
    ]
    return render(table(["rank", "similarity", "path", "id"], rows, right=["rank", "similarity"]))


def models_table(models) -> str:
    from imgsearch.cli.tables import render, table

    rows = [
        (
            m.name,
            m.dimension,
            "present" if m.weights_present else "missing",
            "exported" if m.onnx_exported else "-",
            f"{m.source}: {m.weights_location}",
        )
        for m in models
    ]
    return render(table(["name", "dim", "weights", "onnx", "source / where"], rows, right=["dim"]))
