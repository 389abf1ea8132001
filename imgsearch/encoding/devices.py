"""Choosing the torch device: `auto` picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import torch

from imgsearch.errors import ImgsearchError


def pick_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ImgsearchError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ImgsearchError("--device cuda was asked for, but torch sees no CUDA GPU here.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ImgsearchError("--device mps was asked for, but MPS is not available here.")
    return device
