"""Honest evaluation of what `imgsearch train` learns: fit on one half, score on the other.

Labelled: a class-stratified split (seeded); the head and PCA are fitted on the training half
only, and every encoder is scored by leave-one-out among the held-out images only (queries and
candidates), with a bootstrap 95% interval over the queries. Near-duplicates: a random split;
a self-supervised head is trained on edits of the training half and judged by whether the
fixed edits of `evaluate --near-duplicates` of held-out images find their held-out original.

Both take the images already fetched with their stored base vectors (`Collected`: the library
ingests what is missing first), so nothing here reads the database; the encoder is still
needed to encode edited copies and to fit the self-supervised head.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.encoding.edited_copies import TRANSFORMS, augmented_vectors, copy_query_vectors, encode_paths
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import Projection, unit
from imgsearch.evaluation import metrics
from imgsearch.evaluation.common import TIE_TOLERANCE, cutoffs
from imgsearch.evaluation.evaluate import per_query
from imgsearch.learning.derive import fit_pca, self_supervised_head
from imgsearch.learning.finetune import FinetuneOptions, finetuned_in_memory
from imgsearch.learning.train import TrainOptions, stratified_split, train_head
from imgsearch.progress import ProgressCallback

BOOTSTRAP = 1000
DEFAULT_PCA = 64  # the PCA dimensions compared when --pca is not given


@dataclass(kw_only=True)
class SplitOptions:
    """How a held-out evaluation (`imgsearch evaluate --split`) splits, fits and scores,
    declared once for the library, the CLI and these functions."""

    test_fraction: float = 0.5  # held out (class-stratified with labels)
    seed: int = 0  # the split's and the training's
    ks: Sequence[int] | None = None  # cut-offs (None: 1,10 with labels; 1,5 for copies)
    labels_csv: str | Path | None = None  # path,label instead of sub-folders (Index.evaluate_split reads it)
    train: TrainOptions | None = None  # the head's (None: the defaults, with `seed`)
    pca: Sequence[int] | None = None  # PCA dimensions compared (None: DEFAULT_PCA or fewer)
    copies: int = 8  # copies: edits per training image for the self-supervised head
    tta: bool = False  # copies: also query with test-time augmentation
    augment: int = 0  # copies: index-augmentation vectors per original
    finetune: FinetuneOptions | None = None  # also a network fine-tuned on the training part


@dataclass(frozen=True, eq=False)
class Collected:
    """The images a held-out evaluation splits, fetched beforehand (learning.derive's
    `labelled_vectors` / `unlabelled_vectors`): `vectors[i]` is the stored base vector of
    `paths[i]`, `labels[i]` its class (None without labels)."""

    root: str  # the folder they came from, as reported
    paths: list[str]
    vectors: np.ndarray
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.paths) or (
            self.labels is not None and len(self.labels) != len(self.paths)
        ):
            raise ValueError("Collected: one vector (and one label) per path.")


@dataclass
class Interval:
    mean: float
    low: float  # 2.5th percentile of the bootstrap means
    high: float


@dataclass
class SplitRow:
    encoder: str
    dimension: int
    scores: dict[str, Interval]  # "P@1", "P@10", "mAP" or "recall@1", ...
    fit_seconds: float | None = None  # None for the base encoder


@dataclass
class SplitEvaluation:
    root: str
    mode: str  # "labels" or "near-duplicates"
    test_fraction: float
    seed: int
    train_images: int
    test_images: int
    classes: int
    chance: dict[str, float]  # what a random ranking scores, per metric
    rows: list[SplitRow] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def bootstrap(values: np.ndarray, seed: int, rounds: int = BOOTSTRAP) -> Interval:
    """The mean of per-query `values` and a percentile bootstrap 95% interval (the numbers
    scipy.stats.bootstrap(method="percentile") gives with this generator, which refuses fewer
    than two values)."""
    if len(values) == 0:
        return Interval(0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (rounds, len(values)))].mean(axis=1)
    return Interval(float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def split_evaluate(
    data: Collected,
    split: SplitOptions | None = None,
    *,
    encoder: Encoder,
    progress: ProgressCallback | None = None,
) -> SplitEvaluation:
    """Base vs a trained head vs PCA (plain and whitened; `pca` None: DEFAULT_PCA dimensions,
    fewer when the training part has fewer vectors), and with `finetune` a network fine-tuned
    on the training part, on the held-out images only (`data`: labelled, with `encoder`'s
    vectors; `progress`: the fine-tuning's)."""
    split = split or SplitOptions()
    test_fraction, seed, finetune, pca = split.test_fraction, split.seed, split.finetune, split.pca
    ks = cutoffs(split.ks or (1, 10))
    options = split.train or TrainOptions(seed=seed)
    if data.labels is None:
        raise ValueError(f"{data.root}: the labelled held-out evaluation needs labels.")
    paths, vectors, labels = data.paths, data.vectors, data.labels
    train, test = stratified_split(labels, test_fraction, seed)
    assert not set(train.tolist()) & set(test.tolist()), "a training image is held out"
    train_labels, test_labels = [labels[i] for i in train], [labels[i] for i in test]

    def score(name: str, projected: np.ndarray, seconds: float | None) -> SplitRow:
        values, _ = per_query(projected, test_labels, ks)
        named = {**{f"P@{k}": values[f"p{k}"] for k in ks}, "mAP": values["ap"]}
        return SplitRow(name, projected.shape[1], {m: bootstrap(v, seed) for m, v in named.items()}, seconds)

    base_values, _ = per_query(vectors[test], test_labels, ks)
    result = SplitEvaluation(
        data.root,
        "labels",
        test_fraction,
        seed,
        len(train),
        len(test),
        len(set(labels)),
        {f"P@{k}": float(base_values["chance"].mean()) for k in ks},
    )
    result.rows.append(score(encoder.name, vectors[test], None))
    t0 = time.perf_counter()
    head = train_head(vectors[train], train_labels, encoder.name, options)
    result.rows.append(score(f"head ({options.loss})", head.apply(vectors[test]), time.perf_counter() - t0))
    if pca is None:  # below the training vectors' count: whitening divides by each variance
        pca = (max(1, min(DEFAULT_PCA, len(train) - 1, vectors.shape[1])),)
    for n in pca:
        for whiten in (False, True):
            t0 = time.perf_counter()
            projection = fit_pca(vectors[train], n, whiten, encoder.name, seed)
            result.rows.append(
                score(
                    f"PCA {n}{' whitened' if whiten else ''}",
                    projection.apply(vectors[test]),
                    time.perf_counter() - t0,
                )
            )
    if finetune is not None:
        t0 = time.perf_counter()
        tuned = finetuned_in_memory([paths[i] for i in train], train_labels, finetune, progress)
        seconds = time.perf_counter() - t0
        name = f"fine-tuned (blocks {finetune.first_block}-15, {finetune.size} px)"
        result.rows.append(score(name, encode_paths(tuned, [paths[i] for i in test]), seconds))
    return result


def split_near_duplicates(
    data: Collected,
    split: SplitOptions | None = None,
    *,
    encoder: Encoder,
    progress: ProgressCallback | None = None,
) -> SplitEvaluation:
    """recall@k of held-out copies finding their held-out original: base vs a self-supervised
    head trained on the other half (each also with test-time augmentation when `tta`, and
    with `augment` index-augmentation vectors per original, as `ingest --augment` stores);
    with `finetune`, a network fine-tuned self-supervised on edits of the other half too
    (`data`: labels unused, with `encoder`'s vectors; `progress`: the encoding and fitting's)."""
    from imgsearch.encoding.tta import TestTimeAugmented

    split = split or SplitOptions()
    test_fraction, seed, finetune = split.test_fraction, split.seed, split.finetune
    copies, tta, augment = split.copies, split.tta, split.augment
    ks = cutoffs(split.ks or (1, 5))
    options = split.train or TrainOptions(seed=seed)
    paths, vectors = data.paths, data.vectors
    train, test = stratified_split(["all"] * len(paths), test_fraction, seed)
    train_paths, test_paths = [paths[i] for i in train], [paths[i] for i in test]
    # fitted on the training half: the head, and the network fine-tuned when asked
    t0 = time.perf_counter()
    head = self_supervised_head(train_paths, vectors[train], encoder, options, copies, progress)
    fit_seconds = time.perf_counter() - t0
    if finetune is not None:
        t0 = time.perf_counter()
        tuned = finetuned_in_memory(train_paths, None, finetune, progress)
        tune_seconds = time.perf_counter() - t0
    # judged on the held-out half: (row's name, candidates, their originals, copies, projection, fit seconds)
    names = list(TRANSFORMS)
    originals = [(vectors[test], np.arange(len(test)), "")]
    if augment:
        extra, owners = augmented_vectors(test_paths, encoder, augment)
        originals.append(
            (
                np.concatenate([vectors[test], extra]),
                np.concatenate([np.arange(len(test)), owners]),
                f" + index augmentation {augment}",
            )
        )
    runs = []
    queries = [(encoder, "")] + ([(TestTimeAugmented(encoder), " + TTA")] if tta else [])
    for query_encoder, suffix in queries:
        copied = copy_query_vectors(test_paths, range(len(test_paths)), names, query_encoder, progress)
        for name, projection, seconds in (
            (encoder.name, None, None),
            ("self-supervised head", head, fit_seconds),
        ):
            for candidates, owners, index_note in originals:
                runs.append((name + index_note + suffix, candidates, owners, copied, projection, seconds))
    if finetune is not None:
        runs.append(
            (
                f"fine-tuned on edits (blocks {finetune.first_block}-15, {finetune.size} px)",
                encode_paths(tuned, test_paths),
                np.arange(len(test)),
                copy_query_vectors(test_paths, range(len(test_paths)), names, tuned, progress),
                None,
                tune_seconds,
            )
        )
    result = SplitEvaluation(
        data.root,
        "near-duplicates",
        test_fraction,
        seed,
        len(train),
        len(test),
        0,
        {f"recall@{k}": min(1.0, k / len(test)) for k in ks},
    )
    result.rows = [_copy_scores(*run, ks, seed) for run in runs]
    return result


def _copy_scores(
    name: str,
    candidates: np.ndarray,
    owners: np.ndarray,
    copied: tuple[np.ndarray, np.ndarray],
    projection: Projection | None,
    seconds: float | None,
    ks: Sequence[int],
    seed: int,
) -> SplitRow:
    """recall@k of each copy's original (`copied`: the copies' vectors and originals), an
    original scoring its closest vector (`owners[j]` is the original that candidate j belongs to)."""
    # the vectors are float16-rounded already (stored, or rounded as stored)
    apply: Callable[[np.ndarray], np.ndarray] = projection.apply if projection is not None else unit
    candidates = apply(candidates)
    n_originals = int(owners.max()) + 1
    copy_vectors, originals = copied
    copies = apply(copy_vectors)
    hits: dict[int, list[float]] = {k: [] for k in ks}
    for index, vector in zip(originals, copies, strict=True):
        best = np.full(n_originals, -np.inf, dtype=np.float32)
        np.maximum.at(best, owners, candidates @ vector)
        relevant = np.zeros(n_originals, dtype=bool)
        relevant[index] = True
        r = metrics.rank(best, relevant, tolerance=TIE_TOLERANCE)
        for k in ks:
            hits[k].append(metrics.defined(metrics.recall_at_k(r, k)))
    return SplitRow(
        name, candidates.shape[1], {f"recall@{k}": bootstrap(np.asarray(hits[k]), seed) for k in ks}, seconds
    )
