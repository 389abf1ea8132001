"""A derived encoder: a base encoder followed by a projection (trained head, PCA).

Its identity is its own (its name, the base's weights plus the projection's hash), so its
vectors are stored and searched like any encoder's; they are computed from the base vectors,
so ingesting with it means ingesting with the base (the derived vectors follow).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from imgsearch.encoding.encoder import Encoder, Inputs, Preprocessor, TextEncoder
from imgsearch.encoding.projection import Projection


def derived_weights_id(base: Encoder, projection: Projection) -> str:
    return f"{base.weights_id} -> {projection.kind} {projection.digest()}"


class DerivedEncoder(Encoder):
    def __init__(self, name: str, base: Encoder, projection: Projection) -> None:
        self.name = name
        self.base = base
        self.projection = projection
        self.dimension = projection.dimension
        self.weights_id = derived_weights_id(base, projection)
        self.device = base.device
        self.n_inputs = base.n_inputs
        if base.text is not None and projection.maps_words:
            self.text = ProjectedText(base.text, projection)

    @property
    def preprocessing_id(self) -> str:
        return self.base.preprocessing_id

    @property
    def min_decode_size(self) -> int:
        return self.base.min_decode_size

    def preprocess(self, image: Image.Image) -> Inputs:
        return self.base.preprocess(image)

    def preprocessor(self) -> Preprocessor:
        return self.base.preprocessor()

    def encode_batch(self, inputs: Inputs):
        return self.projection.apply(self.base.encode_batch(inputs))


def ingest_encoder(encoder: Encoder) -> Encoder:
    """The encoder whose vectors ingest computes: a derived encoder's base."""
    return encoder.base if isinstance(encoder, DerivedEncoder) else encoder


class ProjectedText(TextEncoder):
    """A base model's text tower followed by a joint projection's word map."""

    def __init__(self, base: TextEncoder, projection: Projection) -> None:
        self.base, self.projection = base, projection
        self.dimension, self.context_length = projection.dimension, base.context_length

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        projected = self.projection.text(self.base.encode_tokens(tokens))
        assert projected is not None
        return projected
