"""The options of an ingest, declared once: the library (`Index.ingest`), the pipeline and its
run, the CLI (`imgsearch ingest`) and the HTTP API (`POST /api/ingest`) all take these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import Interval  # honoured by pydantic where a request is validated

MAX_AUGMENT = 16


@dataclass(kw_only=True)
class IngestChoices:
    """What an ingest does with the files it finds (any client may choose these)."""

    follow_symlinks: bool = False  # enter symlinked folders (each once)
    rehash: bool = False  # also hash files whose size and mtime are unchanged
    prune_gone: bool = False  # remove indexed files under the given folders that are gone
    augment: Annotated[int, Interval(ge=0, le=MAX_AUGMENT)] = 0  # vectors of random edits per image


@dataclass(kw_only=True)
class IngestOptions(IngestChoices):
    """All of an ingest's options: the choices, plus where else to read and how to run
    (the operator's: a manifest on this machine, batch size, threads, the engine)."""

    manifest: Path | str | None = None  # CSV with a `path` or `url` column
    batch_size: int | None = None  # images per encoder batch and per transaction (None: by device)
    workers: int | None = None  # parallel readers/decoders (None: the CPU count)
    engine: str = "local"  # local (threads here) or ray (Ray Data)
    address: str | None = None  # with engine ray: auto, ray://host:10001, None: a local Ray
