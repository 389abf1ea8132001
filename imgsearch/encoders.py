"""Image encoders behind one interface, and the registry that names them.

An encoder turns RGB pictures into L2-normalised float32 vectors. Its identity (name,
dimension, weights, preprocessing) is what the database records, so vectors from different
encoders, or from the same model with other weights or preprocessing, never mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .devices import pick_device
from .preprocess import Preprocessing

log = logging.getLogger(__name__)

Inputs = tuple[np.ndarray, ...]  # one stacked uint8 batch per model input


@dataclass(frozen=True)
class EncoderIdentity:
    name: str
    dimension: int
    weights: str
    preprocessing: str


class Encoder:
    """Base class: `preprocess` runs in workers, `encode_batch` on the device."""

    name: str
    dimension: int
    weights_id: str
    device: torch.device
    n_inputs: int = 1  # arrays that preprocess() returns per picture

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

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encode RGB pictures (no batching limit: callers batch)."""
        if not images:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.encode_batch(collate([self.preprocess(img) for img in images]))


def collate(items: Sequence[Inputs]) -> Inputs:
    return tuple(np.stack(parts) for parts in zip(*items, strict=True))


class TorchEncoder(Encoder):
    """A torch module mapping normalised NCHW images to feature vectors."""

    def __init__(self, name: str, module: torch.nn.Module, dimension: int, weights_id: str,
                 preprocessing: Preprocessing, device: str | torch.device = "auto") -> None:
        self.name = name
        self.dimension = dimension
        self.weights_id = weights_id
        self.preprocessing = preprocessing
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.module = module.eval().to(self.device, memory_format=torch.channels_last)
        self._mean = torch.tensor(preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocessing.std, device=self.device).view(1, 3, 1, 1)
        self.max_batch: int | None = None  # lowered after a CUDA out-of-memory error

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

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        (batch,) = inputs
        limit = self.max_batch or len(batch)
        parts = [self._encode_with_oom_retry(batch[i:i + limit])
                 for i in range(0, len(batch), limit)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def _encode_with_oom_retry(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._forward(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(batch) // 2
            self.max_batch = half
            log.warning("out of GPU memory at batch %d: continuing with batches of %d",
                        len(batch), half)
            return np.concatenate([self._encode_with_oom_retry(batch[:half]),
                                   self._encode_with_oom_retry(batch[half:])])

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # NHWC uint8 -> NCHW view with channels_last strides; no copy on the host.
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=on_cuda).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        if on_cuda:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                features = self.module(x)
        else:
            features = self.module(x)
        features = F.normalize(features.float().flatten(1), dim=1)
        return features.cpu().numpy()


class EnsembleEncoder(Encoder):
    """Members' normalised vectors concatenated and re-normalised (seed A's ensemble)."""

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

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        vectors, offset = [], 0
        for member in self.members:
            vectors.append(member.encode_batch(inputs[offset:offset + member.n_inputs]))
            offset += member.n_inputs
        joined = np.concatenate(vectors, axis=1)
        return (joined / np.linalg.norm(joined, axis=1, keepdims=True)).astype(np.float32)
