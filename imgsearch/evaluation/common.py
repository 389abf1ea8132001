"""What evaluate and near-duplicates share: cut-offs, encoders, sampling."""

from __future__ import annotations

import random
from collections.abc import Sequence

from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImgsearchError

TIE_TOLERANCE = 1e-6  # similarities this close count as a tie (float32 sums of halfvec values)


def cutoffs(ks: Sequence[int]) -> list[int]:
    """The k values sorted and de-duplicated; all must be positive."""
    result = sorted({int(k) for k in ks})
    if not result or result[0] < 1:
        raise ImgsearchError("k values must be positive integers.")
    return result


def encoders_for(models: Sequence[str], encoders: Sequence[Encoder], device: str) -> list[Encoder]:
    """The given encoders, or the named models (none: the default), all loaded first so a
    missing one fails early."""
    if encoders:
        return list(encoders)
    from imgsearch.encoding.registry import get_encoder

    return [get_encoder(name, device) for name in models] if models else [get_encoder(None, device)]


def sample_queries(n: int, sample: int | None) -> list[int]:
    """All row numbers, or a seeded random subset of `sample` of them."""
    if sample is None or sample >= n:
        return list(range(n))
    return sorted(random.Random(0).sample(range(n), sample))
