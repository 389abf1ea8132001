"""Results of costly collection queries (duplicate groups), computed once per state of the
collection and shared: callers asking at once wait for one computation, which holds one
database connection, instead of each running its own (or, past a deadline, are told to come
back: `Busy`); and how duplicate candidates look (one read of each file)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import Generic, TypeVar

import psycopg
from cachetools import LRUCache

from imgsearch.collection.duplicates import Member
from imgsearch.collection.keeper import Look, look
from imgsearch.config import Settings
from imgsearch.db.connection import one
from imgsearch.errors import Busy

T = TypeVar("T")
KEEP = 16  # results kept (one per encoder, threshold and folder asked for, say)
BUSY = "Duplicate groups are being computed for another request; try again in a few seconds."
_IDLE = object()  # ResultCache._computing when nothing is


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
    """The last KEEP results by key; one computation at a time. A caller whose result is kept
    gets it at once; the others wait for the running computation (sharing it when it is
    theirs), at most `wait_s` seconds when given, then get `Busy`."""

    def __init__(self) -> None:
        self._results: LRUCache[Hashable, T] = LRUCache(KEEP)
        self._changed = threading.Condition()  # guards _results and _computing
        self._computing: Hashable = _IDLE  # the key being computed

    def get(self, key: Hashable, compute: Callable[[], T], wait_s: float | None = None) -> T:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        with self._changed:
            while key not in self._results and self._computing is not _IDLE:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Busy(BUSY)
                self._changed.wait(left)
            if key in self._results:
                return self._results[key]  # and marked recently used
            self._computing = key
        try:
            result = compute()
            with self._changed:
                self._results[key] = result  # the least recently used beyond KEEP is dropped
            return result
        finally:
            with self._changed:
                self._computing = _IDLE
                self._changed.notify_all()


class LookCache:
    """How duplicate candidates look to the keeper choice, by content (sha256): each file is
    read once, however often its group is shown (the `keep` looks used last are kept)."""

    def __init__(self, settings: Settings, keep: int = 20_000) -> None:
        self._settings = settings  # the limits on reading each file
        self._looks: LRUCache[str, Look | None] = LRUCache(keep)
        self._lock = threading.Lock()

    def look(self, member: Member) -> Look | None:
        with self._lock:
            if member.sha256 in self._looks:
                found = self._looks[member.sha256]
                return None if found is None else replace(found, id=member.id, mtime=member.mtime)
        found = look(
            member.id,
            member.location,
            member.sha256,
            member.byte_size,
            member.width,
            member.height,
            member.mtime,
            self._settings,
        )
        with self._lock:
            self._looks[member.sha256] = found
        return found
