"""Fitting derived encoders and registering them: a supervised head on labelled images, a
self-supervised head on edited copies, or PCA (optionally whitened) on stored vectors.

The fit needs base vectors only (labelled images are ingested with the base first, what is
indexed already is skipped); once registered, the derived vectors of every image that has a
base vector are computed from the stored vectors, and later ingests add them as they go.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from imgsearch.db import derived, store
from imgsearch.db.connection import Database, connect
from imgsearch.encoding.derived import DerivedEncoder
from imgsearch.encoding.edited_copies import copy_vectors
from imgsearch.encoding.edits import random_edit
from imgsearch.encoding.encoder import Encoder
from imgsearch.encoding.projection import Linear, Projection, as_stored
from imgsearch.errors import ImgsearchError
from imgsearch.learning.finetune import FinetuneOptions
from imgsearch.learning.train import TrainOptions, train_head
from imgsearch.progress import ProgressCallback

PCA_SAMPLE = 200_000  # stored vectors PCA is fitted on, at most


@dataclass(kw_only=True)
class Training:
    """What `imgsearch train` fits on a FOLDER, declared once for the library, the CLI and
    `train` / `finetune_and_register` below."""

    labels_csv: str | Path | None = None  # path,label rows instead of sub-folders
    pca: int | None = None  # PCA to this many dimensions instead of a head
    whiten: bool = False  # with pca: whitened components
    self_supervised: bool = False  # no labels: random edits must find their original
    copies: int = 8  # with self_supervised: edits per image
    captions_csv: str | Path | None = None  # path,caption rows: a CLIP-style base re-aligned
    options: TrainOptions | None = None  # the head's training
    finetune: FinetuneOptions | None = None  # a network fine-tuned instead (finetune_and_register)


@dataclass
class TrainReport:
    name: str
    kind: str  # "head", "self-supervised head", "pca", "pca-whitened"
    base: str
    dimension: int
    base_dimension: int
    images: int  # images the fit used
    classes: int  # labels (0 for PCA; images for self-supervised)
    seconds: float  # the fit alone
    filled: int  # derived vectors computed from stored base vectors
    details: dict = field(default_factory=dict)

    @property
    def bytes_per_vector(self) -> int:
        return 2 * self.dimension  # halfvec

    @property
    def base_bytes_per_vector(self) -> int:
        return 2 * self.base_dimension


def fit_pca(vectors: np.ndarray, dim: int, whiten: bool, base: str, seed: int = 0) -> Linear:
    """PCA of (float16-rounded) vectors as a Linear projection."""
    from sklearn.decomposition import PCA

    if not 1 <= dim <= min(vectors.shape):
        raise ImgsearchError(
            f"--pca {dim}: must be between 1 and {min(vectors.shape)} (the vectors' dimension and count)."
        )
    pca = PCA(dim, whiten=whiten, random_state=seed).fit(as_stored(vectors))
    w = pca.components_.T.astype(np.float32)
    if whiten:
        w = w / np.sqrt(pca.explained_variance_).astype(np.float32)
    return Linear(base, pca.mean_.astype(np.float32), w)


def stored_vectors(db: Database, encoder: Encoder, limit: int = PCA_SAMPLE, seed: int = 0) -> np.ndarray:
    """Up to `limit` of the encoder's stored vectors (a seeded sample when there are more)."""
    with connect(db) as conn:
        enc_id = store.find_encoder_id(conn, encoder.identity)
        if enc_id is None:
            raise ImgsearchError(f"{encoder.name} has no vectors here: ingest images first.")
        conn.execute("SELECT setseed(%s)", (((seed % 1000) / 1000.0),))
        rows = conn.execute(
            "SELECT embedding FROM imgsearch.embeddings WHERE encoder_id = %s ORDER BY random() LIMIT %s",
            (enc_id, limit),
        ).fetchall()
    return np.stack([r[0].to_numpy() for r in rows]).astype(np.float32)


def self_supervised_head(
    paths: Sequence[str],
    originals: np.ndarray,
    encoder: Encoder,
    options: TrainOptions,
    copies: int = 8,
    progress: ProgressCallback | None = None,
) -> Projection:
    """A head trained so that random edits of an image land next to the image (images that
    cannot be decoded are left out)."""
    rng = random.Random(options.seed)
    edited, owners = copy_vectors(
        paths,
        encoder,
        lambda picture, _: [random_edit(picture, rng) for _ in range(copies)],
        copies=copies,
        scale=4,
        progress=progress,
    )
    vectors = np.concatenate([originals, edited])
    labels = list(np.concatenate([np.arange(len(paths)), owners]).astype(str))
    o = replace(options, per_class=copies + 1, classes_per_batch=max(options.classes_per_batch, 64))
    return train_head(vectors, labels, encoder.name, o)


def register(
    db: Database, name: str, base: Encoder, projection: Projection, details: dict
) -> tuple[DerivedEncoder, int]:
    """Store the derived encoder and compute its vectors from the stored base vectors."""
    _check_name(name)
    encoder = DerivedEncoder(name, base, projection)
    with connect(db) as conn:
        base_id = store.find_encoder_id(conn, base.identity)
        if base_id is None:
            raise ImgsearchError(f"{base.name} has no vectors here: ingest images first.")
        enc_id = derived.register(conn, encoder.identity, base_id, projection, details)
        filled = derived.fill(conn, enc_id, base_id, projection)
    return encoder, filled


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def labelled_vectors(
    folder: str | Path,
    encoder: Encoder,
    db: Database,
    labels_csv: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[list[str], np.ndarray, list[str]]:
    """(paths, stored base vectors, labels) of the labelled images (ingested first)."""
    from imgsearch.ingest.labelled import from_csv, from_folders

    labelled = from_csv(Path(labels_csv), Path(folder)) if labels_csv else from_folders(Path(folder))
    paths, vectors = _ingested(
        labelled.paths,
        encoder,
        db,
        progress,
        f"{folder}: fewer than two labelled images could be ingested "
        "(one sub-folder per class, or --labels CSV).",
    )
    kept = set(paths)  # `_ingested` keeps, in order, the paths that have a vector
    return (
        paths,
        vectors,
        [label for path, label in zip(labelled.paths, labelled.labels, strict=True) if path in kept],
    )


def unlabelled_vectors(
    folder: str | Path, encoder: Encoder, db: Database, progress: ProgressCallback | None = None
) -> tuple[list[str], np.ndarray]:
    """(paths, stored base vectors) of every image under `folder` (ingested first)."""
    from imgsearch.ingest.files import find_images

    paths = [str(p) for p in find_images([Path(folder).expanduser().absolute()])]
    return _ingested(paths, encoder, db, progress, f"{folder}: fewer than two images could be ingested.")


def _ingested(
    paths: Sequence[str], encoder: Encoder, db: Database, progress: ProgressCallback | None, too_few: str
) -> tuple[list[str], np.ndarray]:
    """The paths that have a stored vector after ingesting what is missing, and the vectors."""
    from imgsearch.ingest.fetch import ingest_and_fetch

    _, found = ingest_and_fetch(paths, encoder, db, progress)
    kept = [p for p in paths if p in found]
    if len(kept) < 2:
        raise ImgsearchError(too_few)
    return kept, np.stack([found[p][1] for p in kept])


def finetune_and_register(
    db: Database,
    name: str,
    folder: str | Path,
    training: Training,
    progress: ProgressCallback | None = None,
) -> TrainReport:
    """Fine-tune EfficientNet-Lite0's last stages on `folder` (labelled, or self-supervised on
    edits) and register the network as the encoder `name` (its weights kept in the database)."""
    import tempfile

    from imgsearch.db import finetuned
    from imgsearch.encoding.catalog import EFFICIENTNET_LITE0
    from imgsearch.encoding.onnx_runtime import cache_dir
    from imgsearch.encoding.registry import finetuned_encoder
    from imgsearch.learning.finetune import finetune

    _check_name(name)
    labels_csv, self_supervised = training.labels_csv, training.self_supervised
    o = training.finetune or FinetuneOptions()
    if self_supervised:
        from imgsearch.ingest.files import find_images

        paths = [str(p) for p in find_images([Path(folder).expanduser().absolute()])]
        labels = None
    else:
        from imgsearch.ingest.labelled import from_csv, from_folders

        labelled = from_csv(Path(labels_csv), Path(folder)) if labels_csv else from_folders(Path(folder))
        paths, labels = list(labelled.paths), list(labelled.labels)
    result = finetune(paths, labels, o, progress)
    result.details["folder"] = str(folder)
    result.details["sha256"] = hashlib.sha256(result.weights).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        path.write_bytes(result.weights)
        encoder = finetuned_encoder(name, path, o.size, "cpu", "torch")
        with connect(db) as conn:
            enc_id = finetuned.register(
                conn, encoder.identity, EFFICIENTNET_LITE0, result.weights, result.details
            )
            row = finetuned.by_name(conn, name)
            assert row is not None and row.encoder_id == enc_id  # noqa: S101
            finetuned.weights_file(conn, row, cache_dir() / "finetuned")
    d = result.details
    return TrainReport(
        name,
        d["kind"],
        EFFICIENTNET_LITE0,
        encoder.dimension,
        encoder.dimension,
        d["images"],
        d["classes"],
        d["seconds"],
        0,
        d,
    )


def _check_name(name: str) -> None:
    from imgsearch.encoding.registry import base_names

    if name in base_names() or "+" in name or not name.strip():
        raise ImgsearchError(f"--name {name!r}: choose a name that is not a model's and has no '+'.")


def train(
    db: Database,
    base: Encoder,
    name: str,
    folder: str | Path | None = None,
    training: Training | None = None,
    progress: ProgressCallback | None = None,
) -> TrainReport:
    """Fit a derived encoder of `base`, register it as `name` and fill its vectors.

    Supervised (default): a head on the labelled images under `folder`. `self_supervised`: a
    head on random edits of the images under `folder` (no labels). `pca`: PCA to that many
    dimensions (whitened with `whiten`) fitted on `folder`'s images, else on the collection.
    `captions_csv` (path,caption rows under `folder`): a CLIP-style base's two towers re-aligned
    on the captions (pictures and words keep searching each other).
    """
    t = training or Training()
    labels_csv, pca, whiten, self_supervised = t.labels_csv, t.pca, t.whiten, t.self_supervised
    copies, captions_csv, options = t.copies, t.captions_csv, t.options
    o = options or TrainOptions()
    if captions_csv is not None and (pca is not None or self_supervised or labels_csv is not None):
        raise ImgsearchError(
            "--captions trains on captions alone: leave out --pca, --self-supervised and --labels."
        )
    if pca is None and folder is None:
        raise ImgsearchError(
            "Give a FOLDER of images to train on (or --pca N to fit PCA on the whole collection)."
        )
    if pca is not None:
        vectors = (
            unlabelled_vectors(folder, base, db, progress)[1]
            if folder is not None
            else stored_vectors(db, base, seed=o.seed)
        )
        projection, seconds = timed(fit_pca, vectors, pca, whiten, base.name, o.seed)
        kind, n_images, classes = ("pca-whitened" if whiten else "pca"), len(vectors), 0
    elif folder is None:
        raise ImgsearchError("Give a FOLDER of images to train on.")
    elif captions_csv is not None:
        from imgsearch.ingest.fetch import caption_vectors
        from imgsearch.learning.captions import fit_joint

        images, texts, image_of, _ = caption_vectors(folder, captions_csv, base, db, progress)
        o = options or TrainOptions(lr=1e-3, epochs=30)
        projection, seconds = timed(fit_joint, images, texts, image_of, base.name, o)
        kind, n_images, classes = "joint (captions)", len(images), len(texts)
    elif self_supervised:
        paths, vectors = unlabelled_vectors(folder, base, db, progress)
        projection, seconds = timed(self_supervised_head, paths, vectors, base, o, copies, progress)
        kind, n_images, classes = "self-supervised head", len(paths), len(paths)
    else:
        _, vectors, labels = labelled_vectors(folder, base, db, labels_csv, progress)
        projection, seconds = timed(train_head, vectors, labels, base.name, o)
        kind, n_images, classes = "head", len(vectors), len(set(labels))
    details = {
        "kind": kind,
        "images": n_images,
        "classes": classes,
        "loss": o.loss,
        "epochs": o.epochs,
        "seed": o.seed,
        "folder": str(folder) if folder else None,
    }
    encoder, filled = register(db, name, base, projection, details)
    return TrainReport(
        name, kind, base.name, encoder.dimension, base.dimension, n_images, classes, seconds, filled, details
    )
