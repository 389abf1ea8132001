"""Ingest, then read back what was stored: the vectors evaluation and training work on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgsearch.db import store
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImgsearchError
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
