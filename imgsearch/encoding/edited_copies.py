"""Edited copies -> vectors: the one pipeline behind self-supervised training, copy detection
(`evaluate --near-duplicates`), the duplicate margin's calibration and index augmentation.

Each source is read and decoded (at least `scale` times the encoder's input size, so that a
crop keeps the detail it needs), `edit` makes its copies, and the copies are encoded in batches
(a batch is encoded once it holds `batch` copies or more: a source's copies are never split),
then rounded through float16 as the database's halfvec column holds them. A source that cannot
be read or decoded is skipped: the owners returned say which source each copy was made from.

Below it: the files' own vectors (no edit), the copies `ingest --augment` stores, and the fixed
edits that copy detection measures with.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from imgsearch.encoding.decode import DecodeLimits, decode_image
from imgsearch.encoding.edits import augmented_copies
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import as_stored, unit
from imgsearch.errors import ImgsearchError
from imgsearch.progress import Progress, ProgressCallback
from imgsearch.sources import read_file

COPY_QUALITY = 90  # JPEG quality of every fixed copy except the `jpeg` one
QUERY_BATCH = 16  # fixed copies encoded at a time (a source's copies are never split)

S = TypeVar("S")
Edit = Callable[[Image.Image, bytes], Sequence[Image.Image]]  # (picture, file's bytes) -> copies


def unedited(picture: Image.Image, data: bytes) -> list[Image.Image]:
    """The picture itself: one copy, as a query or an ingest encodes it."""
    return [picture]


def decoded(
    sources: Sequence[S],
    min_size: int,
    read: Callable[[S], bytes] | None = None,
    limits: DecodeLimits | None = None,
) -> Iterator[tuple[int, Image.Image, bytes]]:
    """(row of `sources`, picture, file's bytes) of each source that can be read and decoded
    (sides of at least `min_size` kept; `limits` default to the built-in ones; `read` defaults
    to reading a file path within them), one at a time."""
    limits = limits or DecodeLimits()
    for row, source in enumerate(sources):
        try:
            data = read(source) if read is not None else read_file(str(source), limits.bytes)
            picture = decode_image(data, min_size=min_size, limits=limits).image
        except ImgsearchError:
            continue  # unreadable, or gone since it was listed
        yield row, picture, data


def copy_vectors(
    sources: Sequence[S],
    encoder: Encoder,
    edit: Edit = unedited,
    *,
    copies: int = 1,
    read: Callable[[S], bytes] | None = None,
    scale: int = 1,
    batch: int = 32,
    progress: ProgressCallback | None = None,
    limits: DecodeLimits | None = None,
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

    for row, picture, data in decoded(sources, scale * encoder.min_decode_size, read, limits):
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


def encode_paths(encoder: Encoder, paths: Sequence[str], batch: int = 32) -> np.ndarray:
    """Stored-precision vectors of image files, in order (files are expected to decode)."""
    vectors, rows = copy_vectors(paths, encoder, batch=batch)
    if len(rows) < len(paths):
        raise ImgsearchError(f"{len(paths) - len(rows)} of {len(paths)} files could not be decoded.")
    return vectors


def augmented_vectors(paths: Sequence[str], encoder: Encoder, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors `ingest --augment n` stores for these files, and the row of `paths` of each."""

    def edit(picture: Image.Image, data: bytes) -> list[Image.Image]:
        return augmented_copies(picture, n, hashlib.sha256(data).hexdigest())

    return copy_vectors(paths, encoder, edit, copies=n, scale=2, batch=n)


# The fixed edits that copy detection (`evaluate --near-duplicates`) measures with.


def _crop(img: Image.Image) -> Image.Image:
    """The centre 60% of each side (36% of the picture)."""
    w, h = img.size
    cw, ch = max(1, int(w * 0.6)), max(1, int(h * 0.6))
    return img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))


def _resize(img: Image.Image) -> Image.Image:
    """A quarter of each side, never below 32 px (a thumbnail)."""
    return img.resize((max(32, img.width // 4), max(32, img.height // 4)), Image.Resampling.BILINEAR)


def _rotate(img: Image.Image) -> Image.Image:
    """15 degrees, same canvas, black corners."""
    return img.rotate(15, resample=Image.Resampling.BILINEAR)


def _colour(img: Image.Image) -> Image.Image:
    """Stronger saturation, brighter, less contrast, warmer."""
    img = ImageEnhance.Color(img).enhance(1.6)
    img = ImageEnhance.Brightness(img).enhance(1.15)
    img = ImageEnhance.Contrast(img).enhance(0.8)
    r, g, b = img.split()
    return Image.merge("RGB", (r.point(lambda v: min(255, v + 20)), g, b.point(lambda v: max(0, v - 20))))


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop": _crop,
    "resize": _resize,
    "jpeg": lambda img: img,  # the edit is the save: quality 15
    "rotate": _rotate,
    "flip": ImageOps.mirror,
    "colour": _colour,
    "grayscale": lambda img: ImageOps.grayscale(img).convert("RGB"),
}
JPEG_QUALITY = {"jpeg": 15}


def make_copy(img: Image.Image, transform: str) -> bytes:
    """The edited copy as JPEG bytes."""
    buf = io.BytesIO()
    TRANSFORMS[transform](img).save(buf, "JPEG", quality=JPEG_QUALITY.get(transform, COPY_QUALITY))
    return buf.getvalue()


def copy_query_vectors(
    paths: Sequence[str],
    queried: Sequence[int],
    transforms: Sequence[str],
    encoder: Encoder,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors of the copies, rounded as stored; the index in `paths` of each copy's
    original): every transform of each queried original in turn (none of an original that
    cannot be decoded)."""

    def edit(picture: Image.Image, _: bytes) -> list[Image.Image]:
        copies = [make_copy(picture, t) for t in transforms]  # saved as JPEG, decoded as a query
        return [decode_image(copy, min_size=encoder.min_decode_size).image for copy in copies]

    # the originals are decoded at a few times the model's input size: detail every edit needs
    originals = [paths[i] for i in queried]
    vectors, rows = copy_vectors(
        originals, encoder, edit, copies=len(transforms), scale=4, batch=QUERY_BATCH, progress=progress
    )
    return unit(vectors), np.asarray(queried, dtype=int)[rows]
