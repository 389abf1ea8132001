"""What an ingest did: counts, failures with their reasons, and how long it took."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgsearch.sources import Failure


@dataclass
class IngestReport:
    new: int = 0  # rows this run inserted (the database's answer, so concurrent runs add up)
    updated: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    encoded: int = 0  # images that went through the model (duplicates reuse a vector)
    gone: int = 0  # indexed files under the given folders that no longer exist
    pruned: int = 0  # of those, removed by this run (`prune=True`)
    interrupted: bool = False
    seconds: float = 0.0
    waited: float = 0.0  # of `seconds`, waiting for another ingest with the same encoder
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what was ignored)
    model: str = ""

    def add(self, other: IngestReport) -> None:
        """Count another run's work in this report too."""
        for name in ("new", "updated", "unchanged", "encoded", "gone", "pruned", "seconds", "waited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures += other.failures
        self.warnings += other.warnings
        self.interrupted = self.interrupted or other.interrupted

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def done(self) -> int:
        return self.new + self.updated + self.unchanged + self.failed

    @property
    def exit_code(self) -> int:
        """1 only when there was something to ingest and none of it could be."""
        return 1 if self.failures and self.new + self.updated + self.unchanged == 0 else 0
