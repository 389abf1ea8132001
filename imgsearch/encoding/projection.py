"""Projections of a base encoder's vectors, run with numpy (no torch).

`Head` is a trained 2-layer MLP; `Linear` is an affine map (PCA, optionally whitened). Both
are applied to the float16-rounded base vectors (what the database stores), so a derived
vector is the same whether it is computed at ingest or later from the stored base vector.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np


def unit(out: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """float32 vectors rounded through float16, as a halfvec column holds them."""
    return np.asarray(vectors, np.float32).astype(np.float16).astype(np.float32)


@dataclass
class Projection:
    """Base class: `kind` names the subclass in saved files; arrays are float32."""

    base: str  # the base encoder's name
    kind = "projection"
    maps_words = False  # whether `text` maps a CLIP-style base's words too

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def forward(self, vectors: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Unit-length projected vectors of (n, base dimension) base vectors."""
        return unit(self.forward(as_stored(vectors)))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            f.name: np.ascontiguousarray(getattr(self, f.name), np.float32)
            for f in fields(self)
            if f.name != "base"
        }

    def digest(self) -> str:
        """A short hash of the kind and weights: part of a derived encoder's identity."""
        h = hashlib.sha256(f"{self.kind}:{self.base}".encode())
        for name, array in self._arrays().items():
            h.update(name.encode())
            h.update(array.tobytes())
        return h.hexdigest()[:16]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = {"kind": np.array(self.kind), "base": np.array(self.base), **self._arrays()}
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    def text(self, vectors: np.ndarray) -> np.ndarray | None:
        """Unit-length projected text vectors, for a projection that maps words too (else None)."""
        return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())


def from_bytes(data: bytes) -> Projection:
    """The projection `to_bytes` wrote (no pickled objects are read)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as saved:
        kind = str(saved["kind"])
        cls = {c.kind: c for c in (Head, Linear, Joint)}.get(kind)
        if cls is None:
            raise ValueError(f"unknown projection kind {kind!r}")
        return cls(str(saved["base"]), *(saved[f.name] for f in fields(cls) if f.name != "base"))


def load(path: Path) -> Projection:
    return from_bytes(Path(path).read_bytes())


@dataclass
class Head(Projection):
    """relu(x @ w1 + b1) @ w2 + b2, normalised."""

    w1: np.ndarray  # (base dimension, hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden, dimension)
    b2: np.ndarray
    kind = "head"

    @property
    def dimension(self) -> int:
        return int(self.w2.shape[1])

    def forward(self, vectors: np.ndarray) -> np.ndarray:
        return np.maximum(vectors @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2


@dataclass
class Linear(Projection):
    """(x - mean) @ w, normalised: PCA (w = components / sqrt(variance) when whitened)."""

    mean: np.ndarray  # (base dimension,)
    w: np.ndarray  # (base dimension, dimension)
    kind = "linear"

    @property
    def dimension(self) -> int:
        return int(self.w.shape[1])

    def forward(self, vectors: np.ndarray) -> np.ndarray:
        return (vectors - self.mean) @ self.w


@dataclass
class Joint(Projection):
    """A CLIP-style model's two towers re-aligned on a collection's captions: pictures
    x @ image, words t @ words (each normalised), in one space (`imgsearch train --captions`)."""

    image: np.ndarray  # (base dimension, dimension)
    words: np.ndarray  # (base dimension, dimension)
    kind = "joint"
    maps_words = True

    @property
    def dimension(self) -> int:
        return int(self.image.shape[1])

    def forward(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self.image

    def text(self, vectors: np.ndarray) -> np.ndarray | None:
        return unit(np.asarray(vectors, np.float32) @ self.words)
