"""Search by words, measured on a user's own captioned pictures: text->image and image->text
recall@k, as CLIP's papers and clip-retrieval report them.

Every distinct picture of the captions file is a candidate for every caption (and every
caption for every picture); a caption is found at k when its picture is among the k nearest
pictures, a picture when any of its captions is among the k nearest captions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.db.connection import Database
from imgsearch.encoding.encoder import Encoder
from imgsearch.evaluation.common import cutoffs
from imgsearch.ingest.fetch import caption_vectors
from imgsearch.progress import ProgressCallback


@dataclass
class CaptionEvaluation:
    model: str
    images: int
    captions: int
    text_to_image: dict[int, float]  # recall@k of captions
    image_to_text: dict[int, float]  # recall@k of pictures
    seconds: float
    missing: int = 0  # CSV rows whose file is not on disk
    rejected: int = 0  # CSV rows that cannot be used
    failed: list[str] = field(default_factory=list)  # pictures that could not be read

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "images": self.images,
            "captions": self.captions,
            "text_to_image_recall": {str(k): v for k, v in self.text_to_image.items()},
            "image_to_text_recall": {str(k): v for k, v in self.image_to_text.items()},
            "seconds": self.seconds,
            "missing": self.missing,
            "rejected": self.rejected,
            "failed": self.failed,
        }


def recalls(
    image_vectors: np.ndarray, text_vectors: np.ndarray, image_of: np.ndarray, ks: Sequence[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """(text->image, image->text) recall@k by cosine similarity (unit vectors)."""
    sims = text_vectors @ image_vectors.T  # (captions, pictures)
    own = sims[np.arange(len(image_of)), image_of]
    text_rank = (sims > own[:, None]).sum(axis=1)  # pictures strictly closer than its own
    # a picture's rank: of its best caption among all captions
    image_rank = np.full(len(image_vectors), np.iinfo(np.int64).max)
    for caption, picture in enumerate(image_of):
        rank = int((sims[:, picture] > sims[caption, picture]).sum())
        image_rank[picture] = min(image_rank[picture], rank)
    captioned = image_rank < np.iinfo(np.int64).max
    t2i = {k: float((text_rank < k).mean()) for k in ks}
    i2t = {k: float((image_rank[captioned] < k).mean()) for k in ks}
    return t2i, i2t


def evaluate_captions(
    root: str | Path,
    captions_csv: str | Path,
    *,
    encoder: Encoder,
    database: Database,
    ks: Sequence[int] = (1, 5, 10),
    progress: ProgressCallback | None = None,
) -> CaptionEvaluation:
    """Text->image and image->text recall@k of `encoder` on a `path,caption` CSV (paths
    relative to `root`)."""
    ks = cutoffs(ks)
    started = time.perf_counter()
    images, texts, image_of, counts = caption_vectors(root, captions_csv, encoder, database, progress)
    t2i, i2t = recalls(images, texts, image_of, ks)
    return CaptionEvaluation(
        encoder.name, len(images), len(texts), t2i, i2t, time.perf_counter() - started, **counts
    )
