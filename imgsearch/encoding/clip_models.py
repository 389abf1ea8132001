"""Building CLIP-style encoders with open_clip (torch): the image tower as an ordinary encoder,
the text tower beside it (`encoder.text`) mapping words into the same space."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from imgsearch.encoding.clip_catalog import CLIP_MODELS, Checkpoint
from imgsearch.encoding.devices import pick_device
from imgsearch.encoding.encoder import TextEncoder
from imgsearch.encoding.preprocess import Preprocessing
from imgsearch.encoding.torch_runtime import TorchEncoder
from imgsearch.errors import WeightsUnavailable, first_line

log = logging.getLogger(__name__)


class ImageTower(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


class TextTower(torch.nn.Module):
    """Token ids (n, context) -> unit vectors."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


class TorchTextEncoder(TextEncoder):
    def __init__(self, module: torch.nn.Module, dimension: int, context_length: int, device: Any) -> None:
        self.module = module.eval().to(device)
        self.dimension = dimension
        self.context_length = context_length
        self.device = device

    @torch.inference_mode()
    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(tokens).to(self.device)).cpu().numpy().astype(np.float32)


def load_model(name: str, checkpoint: Checkpoint) -> tuple[Any, int]:
    """The open_clip model of a checkpoint (a folder's own config, else the registered
    architecture) and its vector size."""
    import open_clip

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if checkpoint.folder is not None and checkpoint.model_cfg is not None:
                model = open_clip.create_model(f"local-dir:{checkpoint.folder}")
                model_cfg = checkpoint.model_cfg
            else:
                architecture = CLIP_MODELS[name].architecture
                model = open_clip.create_model(architecture, pretrained=str(checkpoint.weights))
                model_cfg = open_clip.get_model_config(architecture)
    except Exception as exc:  # torch, safetensors and pickle each fail their own way on a bad file
        raise WeightsUnavailable(
            f"{checkpoint.folder or checkpoint.weights} is not a usable {name} checkpoint: {first_line(exc)}"
        ) from exc
    return model.eval(), int(model_cfg["embed_dim"])


def build(name: str, checkpoint: Checkpoint, device: str | torch.device = "auto") -> TorchEncoder:
    """The image encoder of a CLIP model, its text tower in `.text`."""
    model, dimension = load_model(name, checkpoint)
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    preprocessing = Preprocessing(
        size,
        size,
        tuple(round(m * 255, 4) for m in checkpoint.mean),  # type: ignore[arg-type]
        tuple(round(s * 255, 4) for s in checkpoint.std),  # type: ignore[arg-type]
        checkpoint.interpolation if checkpoint.interpolation in ("bilinear", "bicubic") else "bicubic",
    )
    encoder = TorchEncoder(
        name, ImageTower(model), dimension, f"open_clip:{checkpoint.digest}", preprocessing, torch_device
    )
    encoder.text = TorchTextEncoder(TextTower(model), dimension, int(model.context_length), torch_device)
    return encoder
