"""`imgsearch evaluate`: retrieval quality of each model on your own labelled images.

Every labelled image is ingested (same pipeline, same database; what is indexed already is
skipped), then each one queries all the others (leave-one-out). The quality figures rank
with the exact cosine similarity of the stored vectors, so they describe the model; when the
encoder has an ANN index, the index's recall@k against an exact database scan is measured
separately, so the cost of the index is visible on its own.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imgsearch.db.connection import Database
from imgsearch.db.index_check import IndexCheck, index_recall
from imgsearch.db.schema import as_database
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
from imgsearch.ingest.labelled import from_csv, from_folders
from imgsearch.progress import ProgressCallback

QUERY_CHUNK = 512


@dataclass
class RetrievalScores:
    """Means over the queries that have at least one other image of their class."""

    queries: int
    without_relevant: int  # classes of one image: left out of every mean
    precision: dict[int, float]
    recall: dict[int, float]
    map_at: dict[int, float]
    map: float
    mrr: float
    chance_precision: float  # what a random ranking scores: mean of R / (n - 1)


def per_query(
    vectors: np.ndarray, labels: Sequence[str], ks: Sequence[int], queries: Sequence[int] | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Each of `queries` (default: every row) ranks all other rows by cosine similarity:
    its scores (p{k}, r{k}, ap{k}, ap, rr, chance) as arrays over the queries that have a
    relevant image, and how many had none."""
    n = len(vectors)
    if n < 2:
        raise ImgsearchError("Leave-one-out needs at least two images.")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    rows = np.arange(n) if queries is None else np.asarray(queries)
    scores: dict[str, list[float]] = {
        key: [] for key in [f"{m}{k}" for m in ("p", "r", "ap") for k in ks] + ["ap", "rr", "chance"]
    }
    without = 0
    for start in range(0, len(rows), QUERY_CHUNK):
        chunk = rows[start : start + QUERY_CHUNK]
        sims = unit[chunk] @ unit.T
        for row, q in zip(sims, chunk, strict=True):
            others = np.arange(n) != q
            r = metrics.rank(row[others], label_ids[others] == label_ids[q], tolerance=TIE_TOLERANCE)
            if r.n_relevant == 0:
                without += 1
                continue
            for k in ks:
                scores[f"p{k}"].append(metrics.precision_at_k(r, k))
                scores[f"r{k}"].append(metrics.defined(metrics.recall_at_k(r, k)))
                scores[f"ap{k}"].append(metrics.defined(metrics.average_precision(r, k)))
            scores["ap"].append(metrics.defined(metrics.average_precision(r)))
            scores["rr"].append(metrics.defined(metrics.reciprocal_rank(r)))
            scores["chance"].append(r.n_relevant / (n - 1))
    return {key: np.asarray(values, dtype=float) for key, values in scores.items()}, without


def leave_one_out(
    vectors: np.ndarray, labels: Sequence[str], ks: Sequence[int], queries: Sequence[int] | None = None
) -> RetrievalScores:
    """Mean scores of `per_query`."""
    scores, without = per_query(vectors, labels, ks, queries)
    used = len(scores["ap"])

    def mean(key: str) -> float:
        return float(scores[key].mean()) if used else 0.0

    return RetrievalScores(
        queries=used,
        without_relevant=without,
        precision={k: mean(f"p{k}") for k in ks},
        recall={k: mean(f"r{k}") for k in ks},
        map_at={k: mean(f"ap{k}") for k in ks},
        map=mean("ap"),
        mrr=mean("rr"),
        chance_precision=mean("chance"),
    )


@dataclass
class ModelEvaluation:
    model: str
    images: int  # labelled images with a vector
    not_ingested: int  # labelled images that could not be ingested (see ingest failures)
    scores: RetrievalScores
    index: IndexCheck | None
    ingest_seconds: float
    evaluate_seconds: float


@dataclass
class Evaluation:
    root: str
    labels_from: str
    classes: dict[str, int]
    missing: int  # CSV rows naming files that do not exist
    unlabelled: int
    rejected: int  # CSV rows that cannot be used (no label, a bad cell)
    ks: list[int]
    exact: bool
    models: list[ModelEvaluation]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationOptions:
    """How `imgsearch evaluate` scores retrieval on labelled images, declared once for the
    library (`Index.evaluate`), the CLI and `evaluate`."""

    ks: Sequence[int] = (1, 5, 10)  # cut-offs
    labels_csv: str | Path | None = None  # path,label rows instead of one sub-folder per class
    exact: bool = False  # skip the ANN index check (quality itself is always ranked exactly)
    sample: int | None = None  # query with a seeded random subset (every image stays a candidate)
    index_queries: int = 1000  # at most this many queries check the ANN index


def evaluate(
    root: str | Path,
    options: EvaluationOptions | None = None,
    *,
    models: Sequence[str] = (),
    encoders: Sequence[Encoder] = (),
    device: str = "auto",
    database: Database | str | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Leave-one-out retrieval quality per model (`models` by name, or `encoders`) on the
    labelled images under `root`, scored as `options` say."""
    options = options or EvaluationOptions()
    ks = cutoffs(options.ks)
    labels_csv, sample, exact = options.labels_csv, options.sample, options.exact
    labelled = from_csv(Path(labels_csv), Path(root)) if labels_csv else from_folders(Path(root))
    if len(labelled.paths) < 2:
        raise ImgsearchError(
            f"{root}: fewer than two labelled images (one sub-folder per class, "
            "or --labels CSV with path,label)."
        )
    db = as_database(database)
    results = []
    for encoder in encoders_for(models, encoders, device):
        t0 = time.perf_counter()
        _, found = ingest_and_fetch(labelled.paths, encoder, db, progress)
        t1 = time.perf_counter()
        keep = [i for i, p in enumerate(labelled.paths) if p in found]
        if len(keep) < 2:
            raise ImgsearchError(f"{encoder.name}: fewer than two labelled images could be ingested.")
        vectors = np.stack([found[labelled.paths[i]][1] for i in keep])
        labels = [labelled.labels[i] for i in keep]
        queries = sample_queries(len(keep), sample)
        scores = leave_one_out(vectors, labels, ks, queries)
        check = None
        if not exact:
            picked = [found[labelled.paths[keep[q]]] for q in queries[: options.index_queries]]
            check = index_recall(db, encoder, picked, ks, TIE_TOLERANCE)
        results.append(
            ModelEvaluation(
                encoder.name,
                len(keep),
                len(labelled.paths) - len(keep),
                scores,
                check,
                t1 - t0,
                time.perf_counter() - t1,
            )
        )
    source = str(labels_csv) if labels_csv else "sub-folders"
    return Evaluation(
        str(root),
        source,
        dict(sorted(Counter(labelled.labels).items())),
        len(labelled.missing),
        labelled.unlabelled,
        labelled.rejected,
        list(ks),
        exact,
        results,
    )
