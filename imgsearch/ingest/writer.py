"""The writer: one transaction per batch; a batch the database refuses is written again row by
row, so that a bad row costs only itself. A lost connection is not retried: it propagates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from imgsearch.db import store
from imgsearch.errors import first_line
from imgsearch.ingest.report import Failure
from imgsearch.learning.head import Projection


def write(conn: psycopg.Connection, enc_id: int, rows: Sequence[store.ImageRow],
          vectors: Sequence[np.ndarray], refreshed: Sequence[store.ImageRow] = (),
          errors: Sequence[Failure] = (),
          derived: Sequence[tuple[int, Projection]] = ()) -> store.Written:
    """Write a batch (see `store.write_batch`; `derived` encoders get their vectors too);
    `Written.failed` names the refused rows."""
    error_rows = [store.ErrorRow(e.location, e.kind, e.message) for e in errors]
    try:
        return store.write_batch(conn, enc_id, rows, vectors, error_rows, refreshed, derived)
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        pass  # some row is refused: find it by writing each alone
    result = store.Written()
    singles = [([r], [v], [], []) for r, v in zip(rows, vectors, strict=True)]
    singles += [([], [], [r], []) for r in refreshed] + [([], [], [], [e]) for e in error_rows]
    for one_row, one_vector, one_refreshed, one_error in singles:
        try:
            part = store.write_batch(conn, enc_id, one_row, one_vector, one_error, one_refreshed,
                                     derived)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            bad = (one_row or one_refreshed or one_error)[0].location
            result.failed[bad] = f"the database refused this row: {first_line(exc)}"
            continue
        result.inserted |= part.inserted
        result.collided += part.collided
    return result
