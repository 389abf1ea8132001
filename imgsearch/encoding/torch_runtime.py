"""The torch runtime: a torch module on CPU, CUDA or MPS behind the Encoder interface."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from imgsearch.encoding.devices import pick_device
from imgsearch.encoding.encoder import Inputs, SingleModelEncoder
from imgsearch.encoding.preprocess import Preprocessing

log = logging.getLogger(__name__)


class TorchEncoder(SingleModelEncoder):
    """A torch module mapping normalised NCHW images to feature vectors."""

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        dimension: int,
        weights_id: str,
        preprocessing: Preprocessing,
        device: str | torch.device = "auto",
    ) -> None:
        self.name = name
        self.dimension = dimension
        self.weights_id = weights_id
        self.preprocessing = preprocessing
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        # Module.to takes memory_format, which its type stubs leave out
        self.module = module.eval().to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._mean = torch.tensor(preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocessing.std, device=self.device).view(1, 3, 1, 1)
        self.max_batch: int | None = None  # lowered after a CUDA out-of-memory error

    def encode_batch(self, inputs: Inputs) -> np.ndarray:
        (batch,) = inputs
        limit = self.max_batch or len(batch)
        parts = [self._encode_with_oom_retry(batch[i : i + limit]) for i in range(0, len(batch), limit)]
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
            log.warning("out of GPU memory at batch %d: continuing with batches of %d", len(batch), half)
            return np.concatenate(
                [self._encode_with_oom_retry(batch[:half]), self._encode_with_oom_retry(batch[half:])]
            )

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
