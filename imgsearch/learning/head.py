"""A projection head: a 2-layer MLP over a base encoder's vectors, run with numpy (no torch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Head:
    base: str  # the base encoder's name
    w1: np.ndarray  # (base dimension, hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden, dimension)
    b2: np.ndarray

    @property
    def dimension(self) -> int:
        return int(self.w2.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Unit-length head vectors of (n, base dimension) base vectors."""
        hidden = np.maximum(np.asarray(vectors, np.float32) @ self.w1 + self.b1, 0.0)
        out = hidden @ self.w2 + self.b2
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(
            np.float32)

    def digest(self) -> str:
        """A short hash of the weights: part of a derived encoder's identity."""
        h = hashlib.sha256(self.base.encode())
        for array in (self.w1, self.b1, self.w2, self.b2):
            h.update(np.ascontiguousarray(array, np.float32).tobytes())
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, base=np.array(self.base), w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path) as data:
            return cls(str(data["base"]), data["w1"], data["b1"], data["w2"], data["b2"])
