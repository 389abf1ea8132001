"""What evaluate and near-duplicates share: cut-offs, encoders, ingest-then-fetch, sampling."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from imgsearch.db import store
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImgsearchError
from imgsearch.ingest import IngestReport, ingest
from imgsearch.progress import ProgressCallback

TIE_TOLERANCE = 1e-6  # similarities this close count as a tie (float32 sums of halfvec values)


def cutoffs(ks: Sequence[int]) -> list[int]:
    """The k values sorted and de-duplicated; all must be positive."""
    result = sorted({int(k) for k in ks})
    if not result or result[0] < 1:
        raise ImgsearchError("k values must be positive integers.")
    return result


def ingest_and_fetch(paths: Sequence[str], encoder: Encoder, db: Database,
                     progress: ProgressCallback | None = None
                     ) -> tuple[IngestReport, dict[str, tuple[int, np.ndarray]]]:
    """Ingest what is missing, then read back the stored (halfvec) vector of every path."""
    report = ingest(paths, encoder=encoder, database=db, progress=progress)
    if report.interrupted:
        raise ImgsearchError("Interrupted while ingesting: what was written is kept; "
                             "run the same command again to continue.")
    with connect(db) as conn:
        enc_id = store.encoder_id(conn, encoder.identity, create=False)
        found = store.vectors_for_paths(conn, enc_id, paths) if enc_id is not None else {}
    return report, found


def encoders_for(models: Sequence[str], encoders: Sequence[Encoder], device: str) -> list[Encoder]:
    """The given encoders, or the named models, all loaded first so a missing one fails early."""
    if encoders:
        return list(encoders)
    from imgsearch.encoding.registry import get_encoder

    return [get_encoder(name, device) for name in models or [None]]


def sample_queries(n: int, sample: int | None) -> list[int]:
    """All row numbers, or a seeded random subset of `sample` of them."""
    if sample is None or sample >= n:
        return list(range(n))
    return sorted(random.Random(0).sample(range(n), sample))
