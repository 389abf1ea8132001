"""Background ingest jobs of the service: bounded, pruned, and never left "running" (issue 34)."""

from __future__ import annotations

import threading
import time

import pytest

from imgsearch.errors import Busy
from imgsearch.service.jobs import Jobs


def _wait(job) -> str:
    deadline = time.monotonic() + 10
    while (state := job.state) == "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return state


def test_any_exception_ends_a_job_failed_with_its_reason() -> None:
    jobs = Jobs()

    def broken(job) -> None:
        raise KeyError("surprise")

    job = jobs.start("/photos", broken)
    assert _wait(job) == "failed" and "surprise" in job.error


def test_running_jobs_are_bounded_and_finished_ones_pruned() -> None:
    jobs = Jobs(max_running=2, kept=3)
    release = threading.Event()
    held = [jobs.start("/a", lambda job: release.wait(10)) for _ in range(2)]
    with pytest.raises(Busy):
        jobs.start("/b", lambda job: None)
    release.set()
    for job in held:
        assert _wait(job) == "done"
    done = []
    for _ in range(6):
        done.append(jobs.start("/c", lambda job: None))
        _wait(done[-1])
    jobs.start("/d", lambda job: None)  # starting one forgets all but the last 3 finished
    kept = [j for j in [*held, *done] if jobs.get(j.id) is not None]
    assert len(kept) == 3 and kept == done[-3:]
