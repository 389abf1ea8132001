"""Test-time augmentation: a query encoded as the mean of several views of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from imgsearch.encoding.encoder import Encoder


class TestTimeAugmented(Encoder):
    """Encodes each picture's views (itself, mirror, centre crop) and averages them; same
    identity as the wrapped encoder, so its vectors are searched against the stored ones."""

    __test__ = False  # not a pytest class

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.weights_id, self.device, self.n_inputs = inner.weights_id, inner.device, inner.n_inputs
        self.text = inner.text

    @property
    def preprocessing_id(self) -> str:
        return self.inner.preprocessing_id

    @property
    def min_decode_size(self) -> int:
        return self.inner.min_decode_size

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        from imgsearch.encoding.edits import tta_views

        views = [tta_views(img) for img in images]
        flat = self.inner.encode([v for group in views for v in group])
        means = flat.reshape(len(images), -1, self.dimension).mean(axis=1)
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)
