"""Weights files read without executing anything: safetensors, or torch.save's formats loaded with
`weights_only=True` (its restricted unpickler: tensors and plain containers only). Every state
dict imgsearch loads itself comes through here (EfficientNet-Lite's own loader is never used);
open_clip loads CLIP checkpoints (with `weights_only=True`) once `checkpoint_format` has
vetted them.

`checkpoint_format` tells the two apart from the first bytes without torch, so that a file which
is neither (a secret a link pointed at, a pickle, a text file) is refused before it is copied or
loaded.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from imgsearch.errors import WeightsUnavailable, first_line

SAFETENSORS, TORCH_ZIP, TORCH_LEGACY = "safetensors", "torch", "torch-legacy"
# torch.save's format before torch 1.6: a pickle of torch's magic number first
_LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on its JSON header


def checkpoint_format(path: Path) -> str | None:
    """`safetensors`, `torch` (a torch.save zip archive), `torch-legacy` (torch.save's format
    before 1.6) or None (anything else)."""
    try:
        with Path(path).open("rb") as f:
            if f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC:
                return TORCH_LEGACY
            f.seek(0)
            head = f.read(8)
            if len(head) == 8:
                (length,) = struct.unpack("<Q", head)
                if 2 <= length <= _MAX_HEADER and f.read(1) == b"{":
                    f.seek(8)
                    header = json.loads(f.read(length))
                    if isinstance(header, dict):
                        return SAFETENSORS
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    try:
        with zipfile.ZipFile(path) as archive:
            if any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist()):
                return TORCH_ZIP
    except (OSError, zipfile.BadZipFile, ValueError):
        pass
    return None


def load_state_dict(path: Path, what: str = "--weights") -> dict[str, Any]:
    """The state dict in a safetensors file or a torch zip archive (a `{"state_dict": ...}`
    wrapper and a `module.` prefix are undone); WeightsUnavailable for anything else."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailable(f"{what} {path}: no such file.")
    kind = checkpoint_format(path)
    try:
        if kind == SAFETENSORS:
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        elif kind in (TORCH_ZIP, TORCH_LEGACY):
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError("neither safetensors nor a torch.save archive")
    except Exception as exc:  # safetensors and torch's unpickler each fail their own way
        raise WeightsUnavailable(f"{what} {path} is not a torch state-dict file: {first_line(exc)}") from exc
    return _unwrapped(state, path, what)


def _unwrapped(state: Any, path: Path, what: str) -> dict[str, Any]:
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise WeightsUnavailable(f"{what} {path} holds no state dict.")
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def to_safetensors(state: dict[str, Any]) -> bytes:
    """A state dict as safetensors bytes (contiguous copies; shared tensors stored apart)."""
    from safetensors.torch import save

    return save({k: v.detach().contiguous().clone() for k, v in state.items()})
