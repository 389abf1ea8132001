"""Results of costly collection queries (duplicate groups), computed once per state of the
collection and shared: callers asking at once wait for one computation, which holds one
database connection, instead of each running its own."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import psycopg

from imgsearch.db.connection import one

T = TypeVar("T")
KEEP = 16  # results kept (one per encoder, threshold and folder asked for, say)


def collection_version(conn: psycopg.Connection, enc_id: int) -> tuple:
    """A value that changes whenever images, this encoder's vectors or duplicate decisions
    change (rows added, removed or re-indexed)."""
    return one(
        conn.execute(
            """SELECT (SELECT (count(*), max(id), max(indexed_at))::text FROM imgsearch.images),
                  (SELECT count(*) FROM imgsearch.embeddings WHERE encoder_id = %s),
                  (SELECT (count(*), max(decided_at))::text FROM imgsearch.duplicate_decisions)""",
            (enc_id,),
        )
    )


class ResultCache(Generic[T]):
    """The last KEEP results by key; one computation at a time."""

    def __init__(self) -> None:
        self._results: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()  # guards _results
        self._computing = threading.Lock()  # one computation at a time

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        with self._computing:
            with self._lock:  # computed by the caller we waited for?
                if key in self._results:
                    return self._results[key]
            result = compute()
            with self._lock:
                self._results[key] = result
                while len(self._results) > KEEP:
                    self._results.popitem(last=False)
            return result
