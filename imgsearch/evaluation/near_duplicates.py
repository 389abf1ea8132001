"""Copy detection that needs no labels: do edited copies of an image find their original?

Each image under the folder is ingested as it is (the originals); copies are made in memory
with the fixed edits of `encoding.edited_copies.TRANSFORMS`, saved as JPEG (the crop of a
screenshot, a resized repost, a recompressed upload...), decoded and encoded like a search
query, and ranked against all the originals.
recall@k is the share of copies whose original is among the first k (ties counted fairly).
Copies are never written to the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imgsearch.db.connection import Database
from imgsearch.db.schema import as_database
from imgsearch.encoding.edited_copies import TRANSFORMS, copy_query_vectors
from imgsearch.encoding.encoder import Encoder
from imgsearch.errors import ImgsearchError
from imgsearch.evaluation import metrics
from imgsearch.evaluation.common import (
    TIE_TOLERANCE,
    cutoffs,
    encoders_for,
    sample_queries,
)
from imgsearch.ingest.fetch import ingest_and_fetch
from imgsearch.ingest.files import find_images
from imgsearch.progress import ProgressCallback


@dataclass
class CopyDetection:
    model: str
    originals: int  # images with a vector (the candidates)
    queried: int  # originals whose copies were made
    copies: int
    recall: dict[str, dict[int, float]]  # transform -> k -> recall@k
    overall: dict[int, float]
    seconds: float


@dataclass
class NearDuplicateEvaluation:
    root: str
    ks: list[int]
    transforms: list[str]
    unreadable: int  # originals that could not be decoded again to make copies
    models: list[CopyDetection]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CopyDetectionOptions:
    """How `imgsearch evaluate --near-duplicates` makes and scores copies, declared once for
    the library (`Index.near_duplicates`), the CLI and `near_duplicates`."""

    ks: Sequence[int] = (1, 5)  # cut-offs
    transforms: Sequence[str] | None = None  # edits made (None: all of TRANSFORMS)
    sample: int | None = None  # copies of a seeded random subset of the originals only


def near_duplicates(
    root: str | Path,
    options: CopyDetectionOptions | None = None,
    *,
    models: Sequence[str] = (),
    encoders: Sequence[Encoder] = (),
    device: str = "auto",
    database: Database | str | None = None,
    progress: ProgressCallback | None = None,
) -> NearDuplicateEvaluation:
    """recall@k of finding the original from each edited copy, per model (`models` by name,
    or `encoders`), as `options` say."""
    options = options or CopyDetectionOptions()
    ks = cutoffs(options.ks)
    transforms, sample = options.transforms, options.sample
    names = list(transforms or TRANSFORMS)
    unknown = [t for t in names if t not in TRANSFORMS]
    if unknown:
        raise ImgsearchError(f"Unknown transform(s) {unknown}; choose from {list(TRANSFORMS)}.")
    root_path = Path(root).expanduser().absolute()
    if not root_path.is_dir():
        raise ImgsearchError(f"{root_path}: not a folder")
    paths = [str(p) for p in find_images([root_path])]
    if len(paths) < 2:
        raise ImgsearchError(f"{root_path}: needs at least two images.")
    db = as_database(database)
    results, unreadable = [], 0
    for encoder in encoders_for(models, encoders, device):
        t0 = time.perf_counter()
        _, found = ingest_and_fetch(paths, encoder, db, progress)
        kept = [p for p in paths if p in found]
        if len(kept) < 2:
            raise ImgsearchError(f"{encoder.name}: fewer than two images could be ingested.")
        originals = np.stack([found[p][1] for p in kept])
        originals /= np.linalg.norm(originals, axis=1, keepdims=True)
        sums = {t: dict.fromkeys(ks, 0.0) for t in names}
        counts = dict.fromkeys(names, 0)
        queried = sample_queries(len(kept), sample)
        vectors, owners = copy_query_vectors(kept, queried, names, encoder, progress)
        unreadable = len(queried) - len(set(owners.tolist()))
        for row, (index, vector) in enumerate(zip(owners, vectors, strict=True)):
            transform = names[row % len(names)]  # each original's copies, in the order of `names`
            relevant = np.zeros(len(kept), dtype=bool)
            relevant[index] = True
            r = metrics.rank(originals @ vector, relevant, tolerance=TIE_TOLERANCE)
            counts[transform] += 1
            for k in ks:
                sums[transform][k] += metrics.defined(metrics.recall_at_k(r, k))
        recall = {t: {k: sums[t][k] / max(counts[t], 1) for k in ks} for t in names}
        total = sum(counts.values())
        overall = {k: sum(sums[t][k] for t in names) / max(total, 1) for k in ks}
        results.append(
            CopyDetection(
                encoder.name,
                len(kept),
                len(queried) - unreadable,
                total,
                recall,
                overall,
                time.perf_counter() - t0,
            )
        )
    return NearDuplicateEvaluation(str(root_path), ks, names, unreadable, results)
