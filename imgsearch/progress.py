"""One progress protocol for long operations: the library reports, the CLI shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Progress:
    task: str  # what is running: "ingest", "copies", "index"
    done: int
    total: int | None  # None while the total is still unknown
    elapsed: float  # seconds since the task started
    note: str = ""  # a phase or detail worth showing

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
