"""Background ingest jobs: a few at a time, the last ones kept for polling, and every way a job
can end (an exception of any kind included) recorded as its state."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable

from imgsearch.errors import Busy, ImgsearchError, first_line
from imgsearch.service.schemas import IngestJob

log = logging.getLogger(__name__)

MAX_RUNNING = 2  # ingest jobs at once (each decodes and encodes on every core)
KEPT = 100  # finished jobs kept for GET /api/ingest/{id}, the oldest forgotten first


class Jobs:
    def __init__(self, max_running: int = MAX_RUNNING, kept: int = KEPT) -> None:
        self._jobs: OrderedDict[str, IngestJob] = OrderedDict()
        self._lock = threading.Lock()
        self._max_running = max_running
        self._kept = kept

    def get(self, job_id: str) -> IngestJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, path: str, work: Callable[[IngestJob], None]) -> IngestJob:
        """Run `work(job)` in a thread; Busy when MAX_RUNNING jobs are running already."""
        with self._lock:
            if sum(j.state == "running" for j in self._jobs.values()) >= self._max_running:
                raise Busy("Other ingests are running; try again when one has finished.")
            job = IngestJob(id=uuid.uuid4().hex, path=path, state="running")
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.state != "running"]
            for old in finished[: max(0, len(finished) - self._kept)]:
                del self._jobs[old]

        def run() -> None:
            try:
                work(job)
                job.state = "done"
            except Exception as exc:  # any end is recorded: a job never stays "running"
                if not isinstance(exc, (ImgsearchError, OSError)):
                    log.exception("ingest job %s failed unexpectedly", job.id)
                job.state, job.error = "failed", first_line(exc)

        threading.Thread(target=run, name=f"ingest-{job.id}", daemon=True).start()
        return job
