"""The decode stage: read, hash, decode and preprocess one image (both engines run it: the
local engine in worker threads, the Ray engine in CPU tasks)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from imgsearch.config import Settings
from imgsearch.db import store
from imgsearch.encoding.decode import DecodeLimits, decode_image
from imgsearch.encoding.encoder import Inputs
from imgsearch.errors import ImageDecodeError
from imgsearch.sources import Source, fetch

Preprocess = Callable[[Image.Image], Inputs]


@dataclass
class Loaded:
    source: Source
    row: store.ImageRow
    inputs: Inputs | None  # None: content unchanged (sha256 matched), nothing to encode
    existed: bool
    extras: list[Inputs] = field(default_factory=list)  # augmented copies (--augment N)
    vector: object = None  # set when another stage (the Ray engine) has encoded it already
    extra_vectors: list = field(default_factory=list)
    warning: str | None = None  # decoded, but something in the file was ignored (decode.py)


def load(
    source: Source,
    known: store.KnownImage | None,
    preprocess: Preprocess,
    min_decode_size: int,
    settings: Settings,
    augment: int = 0,
) -> Loaded:
    """Read, hash, decode and preprocess one source (within the settings' limits), and
    `augment` random edits of it (seeded by its content, so a re-run makes the same ones)."""
    mtime = None
    if not source.is_url:
        try:
            mtime = os.stat(source.location).st_mtime
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}", "unreadable") from exc
    data = fetch(source.location, settings)
    row = store.ImageRow(
        location=source.location,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
        width=None,
        height=None,
        format=None,
        mtime=mtime,
        metadata=source.metadata,
    )
    if known is not None and known.has_vector and known.sha256 == row.sha256:
        return Loaded(source, row, None, existed=True)
    # augmented crops keep detail when the picture is decoded at twice the model's input size
    limits = DecodeLimits.of(settings)
    decoded = decode_image(data, min_size=min_decode_size * (2 if augment else 1), limits=limits)
    row.width, row.height, row.format = decoded.width, decoded.height, decoded.format
    extras = []
    if augment:
        from imgsearch.encoding.edits import augmented_copies

        extras = [preprocess(copy) for copy in augmented_copies(decoded.image, augment, row.sha256)]
    return Loaded(
        source,
        row,
        preprocess(decoded.image),
        existed=known is not None,
        extras=extras,
        warning=decoded.warning,
    )
