"""How much recall an encoder's ANN index costs, against an exact database scan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pgvector import HalfVector

from imgsearch.db import store
from imgsearch.db.connection import Database, connect
from imgsearch.db.indexes import existing_index, index_status
from imgsearch.db.nearest import QueryOptions, nearest
from imgsearch.encoding.encoder import Encoder


@dataclass
class IndexCheck:
    name: str
    kind: str
    queries: int
    recall: dict[int, float]  # index answers vs the exact scan, ties counted as hits


def index_recall(
    db: Database,
    encoder: Encoder,
    queries: Sequence[tuple[int, np.ndarray]],
    ks: Sequence[int],
    tolerance: float,
) -> IndexCheck | None:
    """recall@k of the encoder's ANN index against an exact scan, or None without an index.

    `queries` are (image id, stored vector) pairs; each image is left out of its own answer. An
    answer within `tolerance` of the exact k-th distance counts as a hit (a tie).
    """
    with connect(db) as conn:
        enc_id = store.find_encoder_id(conn, encoder.identity)
        if enc_id is None:
            return None
        name = existing_index(conn, enc_id)
        status = next((s for s in index_status(db) if s.name == name), None)
        if status is None or not status.valid:
            return None
        k_max = max(ks)
        sums: dict[int, float] = {k: 0.0 for k in ks}
        for image_id, vector in queries:
            answers = []
            for exact in (False, True):
                answers.append(
                    nearest(
                        conn,
                        enc_id,
                        encoder.dimension,
                        HalfVector(vector),
                        k_max,
                        exclude_id=image_id,
                        options=QueryOptions(exact=exact),
                    )
                )
                conn.rollback()  # the knobs are transaction-local: reset them between queries
            approx, truth = answers
            for k in ks:
                if not truth[:k]:
                    continue
                kth = truth[:k][-1].distance
                hits = sum(1 for row in approx[:k] if row.distance <= kth + tolerance)
                sums[k] += hits / len(truth[:k])
    n = max(len(queries), 1)
    return IndexCheck(status.name, status.kind, len(queries), {k: sums[k] / n for k in ks})
