"""Ingest, then read back what was stored: the vectors evaluation and training work on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgsearch.db import store
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImgsearchError
from imgsearch.ingest.labelled import captions_from_csv
from imgsearch.ingest.pipeline import ingest
from imgsearch.ingest.report import IngestReport
from imgsearch.progress import ProgressCallback


def ingest_and_fetch(
    paths: Sequence[str], encoder: Encoder, db: Database, progress: ProgressCallback | None = None
) -> tuple[IngestReport, dict[str, tuple[int, np.ndarray]]]:
    """Ingest what is missing, then read back the stored (halfvec) vector of every path."""
    report = ingest(paths, encoder=encoder, database=db, progress=progress)
    if report.interrupted:
        raise ImgsearchError(
            "Interrupted while ingesting: what was written is kept; run the same command again to continue."
        )
    with connect(db) as conn:
        enc_id = store.find_encoder_id(conn, encoder.identity)
        found = store.vectors_for_paths(conn, enc_id, paths) if enc_id is not None else {}
    return report, found


TEXT_BATCH = 256


def caption_vectors(
    root: str | Path,
    captions_csv: str | Path,
    encoder: Encoder,
    db: Database,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(picture vectors, caption vectors, picture row of each caption, counts) of a captions
    file: pictures ingested if they are not yet, their stored vectors read back."""
    if encoder.text is None:
        raise ImgsearchError(f"{encoder.name} reads pictures only: captions need a CLIP-style model.")
    captioned = captions_from_csv(Path(captions_csv), Path(root))
    distinct = list(dict.fromkeys(captioned.paths))
    if not distinct:
        raise ImgsearchError(f"{captions_csv}: no usable path,caption row with a picture on disk.")
    report, found = ingest_and_fetch(distinct, encoder, db, progress)
    pictures = [p for p in distinct if p in found]
    if not pictures:
        raise ImgsearchError(f"{captions_csv}: none of its pictures could be read.")
    row_of = {p: i for i, p in enumerate(pictures)}
    image_vectors = np.stack([found[p][1] for p in pictures]).astype(np.float32)
    kept = [(row_of[p], c) for p, c in zip(captioned.paths, captioned.captions, strict=True) if p in row_of]
    texts = [c[:1000] for _, c in kept]
    text_vectors = np.concatenate(
        [encoder.text.encode_text(texts[i : i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)]
    )
    counts = {
        "missing": len(captioned.missing),
        "rejected": captioned.rejected,
        "failed": [f.location for f in report.failures],
    }
    return image_vectors, text_vectors, np.array([r for r, _ in kept]), counts
