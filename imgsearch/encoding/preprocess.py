"""Resize + centre crop of an RGB picture into the uint8 array an encoder takes.

Normalisation (mean/std) happens on the encoder's device, so that workers ship small
uint8 arrays and the GPU, when there is one, does the float work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgsearch.encoding.decode import DECODE_VERSION

PREPROCESS_VERSION = 1  # bump whenever the arrays produced for a given picture would change

FULL_RESIZE_MAX_PIXELS = 16_000_000  # larger resized pictures are resized only where cropped

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocessing:
    resize: int  # shorter side after resizing
    crop: int  # side of the centre crop fed to the model
    mean: tuple[float, float, float]  # on the 0..255 scale
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    @property
    def identity(self) -> str:
        mean = ",".join(f"{m:g}" for m in self.mean)
        std = ",".join(f"{s:g}" for s in self.std)
        return (
            f"v{PREPROCESS_VERSION}.{DECODE_VERSION}:resize{self.resize}:crop{self.crop}:"
            f"{self.interpolation}:mean={mean}:std={std}"
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """(crop, crop, 3) uint8 array from an RGB picture."""
        w, h = image.size
        scale = self.resize / min(w, h)
        size = (max(self.crop, round(w * scale)), max(self.crop, round(h * scale)))
        left, top = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        resample = _RESAMPLE[self.interpolation]
        if size[0] * size[1] > FULL_RESIZE_MAX_PIXELS:
            # A thin strip (60000x2, say) would be enlarged to gigabytes before the crop: resize
            # only the region the crop keeps (the same sampling positions, so the same picture
            # up to rounding).
            sx, sy = w / size[0], h / size[1]
            box = (left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy)
            cropped = image.resize((self.crop, self.crop), resample, box=box, reducing_gap=3.0)
        else:
            resized = image.resize(size, resample, reducing_gap=3.0)
            cropped = resized.crop((left, top, left + self.crop, top + self.crop))
        return np.asarray(cropped, dtype=np.uint8)
