"""The encoder interface (no torch here), and ensembles of encoders.

An encoder turns RGB pictures into L2-normalised float32 vectors. Its identity (name,
dimension, weights, preprocessing) is what the database records, so vectors from different
encoders, or from the same model with other weights or preprocessing, never mix. Model
runtimes (torch_runtime) implement it; the registry names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from imgsearch.encoding.preprocess import Preprocessing

Inputs = tuple[np.ndarray, ...]  # one stacked uint8 batch per model input


@dataclass(frozen=True)
class EncoderIdentity:
    name: str
    dimension: int
    weights: str
    preprocessing: str


@dataclass(frozen=True)
class Preprocessor:
    """What decoding workers need of an encoder, without its model (picklable, so that
    other processes such as Ray tasks can run it)."""

    steps: tuple[Preprocessing, ...]
    min_decode_size: int

    def __call__(self, image: Image.Image) -> Inputs:
        return tuple(step(image) for step in self.steps)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        return [(step.crop, step.crop, 3) for step in self.steps]


class TextEncoder:
    """The text tower of a joint image-text (CLIP-style) model: words -> unit vectors in the
    same space as its image encoder's."""

    dimension: int
    context_length: int  # token ids per text

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """(n, dimension) float32 unit rows from (n, context_length) int64 token ids."""
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        from imgsearch.encoding.clip_tokenizer import tokenizer

        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        return self.encode_tokens(tokenizer(self.context_length)(list(texts)))


class Encoder:
    """Base class: `preprocess` runs in workers, `encode_batch` on the device."""

    name: str
    dimension: int
    weights_id: str
    device: Any  # where it runs (a torch.device for torch encoders)
    weights_path: str | None = None  # a --weights file, for other processes to load it too
    n_inputs: int = 1  # arrays that preprocess() returns per picture
    text: TextEncoder | None = None  # a CLIP-style model's text tower (search by words)

    @property
    def device_type(self) -> str:
        """ "cpu", "cuda", "mps", ..."""
        return getattr(self.device, "type", str(self.device))

    @property
    def identity(self) -> EncoderIdentity:
        return EncoderIdentity(self.name, self.dimension, self.weights_id, self.preprocessing_id)

    @property
    def preprocessing_id(self) -> str:
        raise NotImplementedError

    @property
    def min_decode_size(self) -> int:
        """Smallest side a decoder must keep (JPEG draft may reduce down to it)."""
        raise NotImplementedError

    def preprocess(self, image: Image.Image) -> Inputs:
        raise NotImplementedError

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        """(n, dimension) float32, unit-length rows, from stacked preprocessed inputs."""
        raise NotImplementedError

    def preprocessor(self) -> Preprocessor:
        """`preprocess` as a picklable object."""
        raise NotImplementedError

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encode RGB pictures (no batching limit: callers batch)."""
        if not images:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.encode_batch(collate([self.preprocess(img) for img in images]))


class SingleModelEncoder(Encoder):
    """An encoder of one model fed by one `Preprocessing` (the torch and ONNX runtimes)."""

    preprocessing: Preprocessing

    @property
    def preprocessing_id(self) -> str:
        return self.preprocessing.identity

    @property
    def min_decode_size(self) -> int:
        # JPEG draft may go down to the crop size: the resize then barely upscales, and an
        # eighth-scale DCT decode is several times faster than a quarter-scale one.
        return self.preprocessing.crop

    def preprocess(self, image: Image.Image) -> Inputs:
        return (self.preprocessing(image),)

    def preprocessor(self) -> Preprocessor:
        return Preprocessor((self.preprocessing,), self.min_decode_size)


def collate(items: Sequence[Inputs]) -> Inputs:
    return tuple(np.stack(parts) for parts in zip(*items, strict=True))


class EnsembleEncoder(Encoder):
    """Members' normalised vectors concatenated and re-normalised."""

    def __init__(self, members: Sequence[Encoder]) -> None:
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)
        self.dimension = sum(m.dimension for m in self.members)
        self.weights_id = " + ".join(m.weights_id for m in self.members)
        self.device = self.members[0].device
        self.n_inputs = sum(m.n_inputs for m in self.members)

    @property
    def preprocessing_id(self) -> str:
        return " + ".join(m.preprocessing_id for m in self.members)

    @property
    def min_decode_size(self) -> int:
        return max(m.min_decode_size for m in self.members)

    def preprocess(self, image: Image.Image) -> Inputs:
        return tuple(part for m in self.members for part in m.preprocess(image))

    def preprocessor(self) -> Preprocessor:
        return Preprocessor(
            tuple(step for m in self.members for step in m.preprocessor().steps), self.min_decode_size
        )

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        vectors, offset = [], 0
        for member in self.members:
            vectors.append(member.encode_batch(inputs[offset : offset + member.n_inputs]))
            offset += member.n_inputs
        joined = np.concatenate(vectors, axis=1)
        return (joined / np.linalg.norm(joined, axis=1, keepdims=True)).astype(np.float32)
