"""Edited copies -> vectors: the one pipeline behind self-supervised training, copy detection
(`evaluate --near-duplicates`), the duplicate margin's calibration and index augmentation.

Each source is read and decoded (at least `scale` times the encoder's input size, so that a
crop keeps the detail it needs), `edit` makes its copies, and the copies are encoded in batches
(a batch is encoded once it holds `batch` copies or more: a source's copies are never split),
then rounded through float16 as the database's halfvec column holds them. A source that cannot
be read or decoded is skipped: the owners returned say which source each copy was made from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from PIL import Image

from imgsearch.encoding.decode import decode_image
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import as_stored
from imgsearch.errors import ImgsearchError
from imgsearch.progress import Progress, ProgressCallback
from imgsearch.sources import read_file

S = TypeVar("S")
Edit = Callable[[Image.Image, bytes], Sequence[Image.Image]]  # (picture, file's bytes) -> copies


def unedited(picture: Image.Image, data: bytes) -> list[Image.Image]:
    """The picture itself: one copy, as a query or an ingest encodes it."""
    return [picture]


def copy_vectors(
    sources: Sequence[S],
    encoder: Encoder,
    edit: Edit = unedited,
    *,
    copies: int = 1,
    read: Callable[[S], bytes] = read_file,  # type: ignore[assignment]
    scale: int = 1,
    batch: int = 32,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors as stored, row of `sources` each copy was made from), in order. `copies` is how
    many copies `edit` makes of a source (the total that `progress` counts toward)."""
    vectors: list[np.ndarray] = []
    owners: list[int] = []
    pending: list[Image.Image] = []
    pending_owners: list[int] = []
    total, started = len(sources) * copies, time.monotonic()

    def flush() -> None:
        vectors.append(as_stored(encoder.encode(pending)))
        owners.extend(pending_owners)
        pending.clear()
        pending_owners.clear()
        if progress is not None:
            progress(Progress("copies", len(owners), total, time.monotonic() - started))

    for row, source in enumerate(sources):
        try:
            data = read(source)
            picture = decode_image(data, min_size=scale * encoder.min_decode_size).image
        except ImgsearchError:
            continue  # unreadable, or gone since it was listed
        made = edit(picture, data)
        pending.extend(made)
        pending_owners.extend([row] * len(made))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    if not vectors:
        return np.zeros((0, encoder.dimension), np.float32), np.zeros(0, int)
    return np.concatenate(vectors), np.asarray(owners)
