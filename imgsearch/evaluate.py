"""`imgsearch evaluate`: retrieval quality of each model on your own labelled images.

Every labelled image is ingested (same pipeline, same database; what is indexed already is
skipped), then each one queries all the others (leave-one-out). The quality figures rank
with the exact cosine similarity of the stored vectors, so they describe the model; when the
encoder has an ANN index, the index's recall@k against an exact database scan is measured
separately, so the cost of the index is visible on its own.
"""

from __future__ import annotations

import csv
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import metrics, store
from .database import Database, connect, open_database
from .encoders import Encoder
from .errors import ImgsearchError
from .files import find_images
from .ingest import IngestReport, ProgressCallback, ingest

TIE_TOLERANCE = 1e-6  # similarities this close count as a tie (float32 sums of halfvec values)
QUERY_CHUNK = 512


@dataclass
class LabelledSet:
    paths: list[str]  # absolute, as ingest stores them
    labels: list[str]
    missing: list[str] = field(default_factory=list)  # listed in a CSV but not on disk
    unlabelled: int = 0  # images directly in DIR (no class folder)


def from_folders(root: Path) -> LabelledSet:
    """One class per sub-folder of `root` (images in deeper folders belong to the top one)."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise ImgsearchError(f"{root}: not a folder")
    paths, labels, unlabelled = [], [], 0
    for path in find_images([root]):
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            unlabelled += 1
            continue
        paths.append(str(path))
        labels.append(parts[0])
    return LabelledSet(paths, labels, unlabelled=unlabelled)


def from_csv(csv_path: Path, root: Path) -> LabelledSet:
    """`path,label` rows (a header naming both columns); relative paths are under `root`."""
    root = Path(root).expanduser().absolute()
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
                raise ImgsearchError(f"{csv_path}: needs a header with `path` and `label` columns")
            rows = list(reader)
    except OSError as exc:
        raise ImgsearchError(f"Cannot read {csv_path}: {exc.strerror or exc}") from exc
    result = LabelledSet([], [])
    for row in rows:
        if not row["path"] or not row["label"]:
            raise ImgsearchError(f"{csv_path}: a row without path or label: {row}")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else root / path
        if path.is_file():
            result.paths.append(str(path))
            result.labels.append(row["label"])
        else:
            result.missing.append(str(path))
    return result


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


def leave_one_out(vectors: np.ndarray, labels: Sequence[str], ks: Sequence[int],
                  queries: Sequence[int] | None = None) -> RetrievalScores:
    """Each of `queries` (default: every row) ranks all other rows by cosine similarity."""
    n = len(vectors)
    if n < 2:
        raise ImgsearchError("Leave-one-out needs at least two images.")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    queries = np.arange(n) if queries is None else np.asarray(queries)
    sums: Counter[str] = Counter()
    used = without = 0
    for start in range(0, len(queries), QUERY_CHUNK):
        chunk = queries[start:start + QUERY_CHUNK]
        sims = unit[chunk] @ unit.T
        for row, q in zip(sims, chunk, strict=True):
            others = np.arange(n) != q
            r = metrics.rank(row[others], label_ids[others] == label_ids[q], tolerance=TIE_TOLERANCE)
            if r.n_relevant == 0:
                without += 1
                continue
            used += 1
            for k in ks:
                sums[f"p{k}"] += metrics.precision_at_k(r, k)
                sums[f"r{k}"] += metrics.recall_at_k(r, k)
                sums[f"ap{k}"] += metrics.average_precision(r, k)
            sums["ap"] += metrics.average_precision(r)
            sums["rr"] += metrics.reciprocal_rank(r)
            sums["chance"] += r.n_relevant / (n - 1)
    d = max(used, 1)
    return RetrievalScores(
        queries=used, without_relevant=without,
        precision={k: sums[f"p{k}"] / d for k in ks}, recall={k: sums[f"r{k}"] / d for k in ks},
        map_at={k: sums[f"ap{k}"] / d for k in ks}, map=sums["ap"] / d, mrr=sums["rr"] / d,
        chance_precision=sums["chance"] / d)


@dataclass
class IndexCheck:
    name: str
    kind: str
    queries: int
    recall: dict[int, float]  # index answers vs the exact scan, ties counted as hits


def index_recall(db: Database, encoder: Encoder, queries: Sequence[tuple[int, np.ndarray]],
                 ks: Sequence[int]) -> IndexCheck | None:
    """recall@k of the encoder's ANN index against an exact scan, or None without an index.

    `queries` are (image id, stored vector) pairs; each image is left out of its own answer.
    """
    from pgvector import HalfVector

    from .indexes import index_name, index_status
    from .search import QueryOptions, nearest

    with connect(db) as conn:
        enc_id = store.encoder_id(conn, encoder.identity, create=False)
        names = {index_name(kind, enc_id) for kind in ("hnsw", "ivfflat")}
        status = next((s for s in index_status(db) if s.name in names), None)
        if status is None or not status.valid:
            return None
        k_max = max(ks)
        sums: Counter[int] = Counter()
        for image_id, vector in queries:
            answers = []
            for exact in (False, True):
                answers.append(nearest(conn, enc_id, encoder.dimension, HalfVector(vector), k_max,
                                       exclude_id=image_id, options=QueryOptions(exact=exact)))
                conn.rollback()  # the knobs are transaction-local: reset them between queries
            approx, truth = answers
            for k in ks:
                if not truth[:k]:
                    continue
                kth = truth[:k][-1].distance
                hits = sum(1 for row in approx[:k] if row.distance <= kth + TIE_TOLERANCE)
                sums[k] += hits / len(truth[:k])
    n = max(len(queries), 1)
    return IndexCheck(status.name, status.kind, len(queries), {k: sums[k] / n for k in ks})


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
    missing: int
    unlabelled: int
    ks: list[int]
    exact: bool
    models: list[ModelEvaluation]

    def to_json(self) -> dict:
        return asdict(self)


def cutoffs(ks: Sequence[int]) -> list[int]:
    """The k values sorted and de-duplicated; all must be positive."""
    result = sorted({int(k) for k in ks})
    if not result or result[0] < 1:
        raise ImgsearchError("k values must be positive integers.")
    return result


def ingest_and_fetch(paths: Sequence[str], encoder: Encoder, db: Database,
                     progress: ProgressCallback | None = None
                     ) -> tuple[IngestReport, dict[str, tuple[int, np.ndarray]]]:
    """Ingest what is missing, then read back the stored (halfvec) vector of every path."""
    report = ingest(paths, encoder=encoder, database=db, progress=progress)
    if report.interrupted:
        raise ImgsearchError("Interrupted while ingesting: what was written is kept; "
                             "run the same command again to continue.")
    with connect(db) as conn:
        enc_id = store.encoder_id(conn, encoder.identity, create=False)
        found = store.vectors_for_paths(conn, enc_id, paths) if enc_id is not None else {}
    return report, found


def evaluate(root: str | Path, *, models: Sequence[str] = (), encoders: Sequence[Encoder] = (),
             ks: Sequence[int] = (1, 5, 10), labels_csv: str | Path | None = None,
             exact: bool = False, sample: int | None = None, index_queries: int = 1000,
             device: str = "auto", database: Database | str | None = None,
             progress: ProgressCallback | None = None) -> Evaluation:
    """Leave-one-out retrieval quality per model on the labelled images under `root`.

    `sample` limits the queries to a seeded random subset (every image stays a candidate);
    `exact` skips the ANN index check; `index_queries` caps the queries it runs.
    """
    ks = cutoffs(ks)
    labelled = from_csv(Path(labels_csv), Path(root)) if labels_csv else from_folders(Path(root))
    if len(labelled.paths) < 2:
        raise ImgsearchError(f"{root}: fewer than two labelled images (one sub-folder per class, "
                             "or --labels CSV with path,label).")
    db = database if isinstance(database, Database) else open_database(database)
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
            check = index_recall(db, encoder, [found[labelled.paths[keep[q]]]
                                               for q in queries[:index_queries]], ks)
        results.append(ModelEvaluation(encoder.name, len(keep), len(labelled.paths) - len(keep),
                                       scores, check, t1 - t0, time.perf_counter() - t1))
    source = str(labels_csv) if labels_csv else "sub-folders"
    return Evaluation(str(root), source, dict(sorted(Counter(labelled.labels).items())),
                      len(labelled.missing), labelled.unlabelled, list(ks), exact, results)


def encoders_for(models: Sequence[str], encoders: Sequence[Encoder], device: str) -> list[Encoder]:
    """The given encoders, or the named models, all loaded first so a missing one fails early."""
    if encoders:
        return list(encoders)
    from .models import get_encoder

    return [get_encoder(name, device) for name in models or [None]]


def sample_queries(n: int, sample: int | None) -> list[int]:
    """All row numbers, or a seeded random subset of `sample` of them."""
    if sample is None or sample >= n:
        return list(range(n))
    return sorted(random.Random(0).sample(range(n), sample))


def evaluation_table(e: Evaluation) -> str:
    """A readable comparison: one row per model, then chance level and notes."""
    classes = ", ".join(f"{name} {count:,}" for name, count in list(e.classes.items())[:8])
    more = f" and {len(e.classes) - 8} more" if len(e.classes) > 8 else ""
    lines = [f"{e.root}: {sum(e.classes.values()):,} labelled images in {len(e.classes)} classes "
             f"({classes}{more}); labels from {e.labels_from}"]
    if e.missing:
        lines.append(f"{e.missing} CSV rows name files that do not exist (left out)")
    if e.unlabelled:
        lines.append(f"{e.unlabelled} images directly in the folder have no class (left out)")
    columns = [*(f"P@{k}" for k in e.ks), *(f"R@{k}" for k in e.ks), f"mAP@{e.ks[-1]}", "mAP", "MRR"]
    with_index = any(m.index for m in e.models)
    if with_index:
        columns.append(f"index R@{e.ks[-1]}")
    widths = [max(9, len(c) + 2) for c in columns]
    lines += ["", f"{'model':<28}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))]
    for m in e.models:
        s = m.scores
        values = [*(s.precision[k] for k in e.ks), *(s.recall[k] for k in e.ks),
                  s.map_at[e.ks[-1]], s.map, s.mrr]
        cells = "".join(f"{v:>{w}.3f}" for v, w in zip(values, widths, strict=False))
        if with_index:
            cells += f"{m.index.recall[e.ks[-1]]:>{widths[-1]}.3f}" if m.index else f"{'-':>{widths[-1]}}"
        lines.append(f"{m.model[:28]:<28}" + cells)
    if e.models:
        chance = e.models[0].scores.chance_precision
        lines.append(f"{'chance (random ranking)':<28}"
                     + "".join(f"{chance:>{w}.3f}" for w in widths[:len(e.ks)]))
    lines.append("")
    for m in e.models:
        s = m.scores
        note = f"{m.model}: {s.queries:,} queries ranked exactly (leave-one-out)"
        if s.without_relevant:
            note += f", {s.without_relevant} left out (no other image of their class)"
        if m.not_ingested:
            note += f", {m.not_ingested} images could not be ingested"
        note += f"; ingest {m.ingest_seconds:.1f}s, evaluation {m.evaluate_seconds:.1f}s"
        if m.index:
            note += (f"; {m.index.kind} index {m.index.name}: recall@k vs exact scan over "
                     f"{m.index.queries:,} queries")
        elif not e.exact:
            note += "; no ANN index (searches are exact)"
        lines.append(note)
    return "\n".join(lines)
