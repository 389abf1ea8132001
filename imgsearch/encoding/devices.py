"""Devices: whether a GPU is likely here (without importing torch), and the torch device to
use (`auto` picks CUDA, then MPS, then the CPU)."""

from __future__ import annotations

import os
import platform
import shutil
from typing import Any

from imgsearch.errors import ImgsearchError


def gpu_present() -> bool:
    """A cheap guess, without importing torch: an NVIDIA driver, or Apple silicon (MPS)."""
    if os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        return True
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def wants_gpu(device: str) -> bool:
    """Whether `device` (auto, cpu, cuda, cuda:N, mps) means a GPU here."""
    device = (device or "auto").lower()
    if device == "auto":
        return gpu_present()
    return device.startswith(("cuda", "mps"))


def pick_device(name: str = "auto") -> Any:
    """The torch.device for `name`; a clear error when it is not available."""
    import torch

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
