"""The writer: one transaction per batch; a batch the database refuses is written again row by
row, so that a bad row costs only itself. A lost connection is not retried: it propagates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from imgsearch.db import store
from imgsearch.encoding.projection import Projection
from imgsearch.errors import first_line
from imgsearch.sources import Failure


def write(
    conn: psycopg.Connection,
    enc_id: int,
    rows: Sequence[store.ImageRow],
    vectors: Sequence[np.ndarray],
    refreshed: Sequence[store.ImageRow] = (),
    errors: Sequence[Failure] = (),
    derived: Sequence[tuple[int, Projection]] = (),
    augmented: Sequence[Sequence[np.ndarray]] | None = None,
) -> store.Written:
    """Write a batch (see `store.write_batch`; `derived` encoders get their vectors too,
    `augmented[i]` are row i's augmented vectors); `Written.failed` names the refused rows."""
    error_rows = list(errors)
    try:
        return store.write_batch(conn, enc_id, rows, vectors, error_rows, refreshed, derived, augmented)
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        pass  # some row is refused: find it by writing each alone
    result = store.Written()
    extras = augmented if augmented is not None else [()] * len(rows)
    singles: list[tuple[list, list, list, list, list]] = [
        ([r], [v], [], [], [x]) for r, v, x in zip(rows, vectors, extras, strict=True)
    ]
    singles += [([], [], [r], [], []) for r in refreshed]
    singles += [([], [], [], [e], []) for e in error_rows]
    for one_row, one_vector, one_refreshed, one_error, one_extra in singles:
        try:
            part = store.write_batch(
                conn, enc_id, one_row, one_vector, one_error, one_refreshed, derived, one_extra
            )
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            bad = (one_row or one_refreshed or one_error)[0].location
            result.failed[bad] = f"the database refused this row: {first_line(exc)}"
            continue
        result.inserted |= part.inserted
    return result
