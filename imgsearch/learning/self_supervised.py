"""Training data without labels: random edited copies of each image, labelled by the image."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from imgsearch.encoding.decode import decode_image
from imgsearch.encoding.edits import random_edit
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import as_stored
from imgsearch.errors import ImageDecodeError
from imgsearch.progress import Progress, ProgressCallback

ENCODE_BATCH = 32


def edited_copy_vectors(
    paths: Sequence[str],
    encoder: Encoder,
    copies: int,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, row of `paths` each copy was made from): `copies` random edits per image,
    encoded like a query; images that cannot be decoded are skipped."""
    rng = random.Random(seed)
    vectors: list[np.ndarray] = []
    owners: list[int] = []
    pending: list[Image.Image] = []
    owners_pending: list[int] = []
    total, started = len(paths) * copies, time.monotonic()

    def flush() -> None:
        vectors.append(as_stored(encoder.encode(pending)))
        owners.extend(owners_pending)
        pending.clear()
        owners_pending.clear()
        if progress is not None:
            progress(Progress("copies", len(owners), total, time.monotonic() - started))

    for row, path in enumerate(paths):
        try:
            source = decode_image(path, min_size=4 * encoder.min_decode_size).image
        except ImageDecodeError:
            continue
        for _ in range(copies):
            edited = random_edit(source, rng)
            pending.append(edited.convert("RGB"))
            owners_pending.append(row)
        if len(pending) >= ENCODE_BATCH:
            flush()
    if pending:
        flush()
    if not vectors:
        return np.zeros((0, encoder.dimension), np.float32), np.zeros(0, int)
    return np.concatenate(vectors), np.asarray(owners)
