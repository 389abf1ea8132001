"""Collection tools measured: duplicate pairs (precision, recall) at thresholds, the time to
find duplicate groups among 10,000 images, and clusters against labels (adjusted Rand index).

    python benchmarks/collection.py [--distractors 300] [--scale 10000]
    python benchmarks/collection.py --smoke   # 3 photos, 4 distractors, 24 elpv cells, 200 vectors

Duplicates: the 11 sample photos, 4 edited copies of each (centre crop 80%, half size, JPEG
quality 30, mirror), and `--distractors` elpv solar-cell photos (pip install -e '.[bench]'),
grouped with the calibrated rule (the default) and at each `--thresholds` similarity.
A true pair is two images made from the same photo; a found pair is two images in one group.
Clusters: K-Means with k = the number of labels on (a) the photos and their copies (11 labels)
and (b) all 2,624 elpv cells by module type (2 labels), next to a shuffled assignment.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from _support import center_crop, halved, jpeg_recompressed, sample_photos  # noqa: E402

EDITS = {
    "crop80": lambda img: center_crop(img, 0.8),
    "half": halved,
    "jpeg30": lambda img: jpeg_recompressed(img, 30),
    "mirror": None,
}


def photos(n: int | None = None) -> dict:
    """The sample photos (the first n)."""
    return dict(list(sample_photos().items())[:n])


def make_collection(folder: Path, distractors: int, cells, n_photos: int | None = None) -> dict[str, str]:
    """Write the images (`distractors` of elpv's `cells`); return path -> source label."""
    from PIL import Image, ImageOps

    labels = {}
    for name, img in photos(n_photos).items():
        for edit, make in [("original", None), *EDITS.items()]:
            out = folder / f"{name}.{edit}.jpg"
            picture = img if edit == "original" else ImageOps.mirror(img) if make is None else make(img)
            picture.save(out, quality=92)
            labels[str(out)] = name
    if distractors:
        for i in range(distractors):
            out = folder / f"elpv{i:04d}.png"
            Image.fromarray(cells[i * (len(cells) // distractors)]).convert("RGB").save(out)
            labels[str(out)] = f"elpv{i}"
    return labels


def pair_scores(groups, labels: dict[str, str], photos_only: bool = False) -> tuple[float, float, int, int]:
    """Precision and recall of the pairs; with `photos_only`, only found pairs that involve
    a photo or a copy count (pairs of two distractors are left out)."""
    found = {frozenset(p) for g in groups for p in itertools.combinations([m.path for m in g.members], 2)}
    if photos_only:
        found = {p for p in found if any(not labels[x].startswith("elpv") for x in p)}
    by_label: dict[str, list[str]] = {}
    for path, label in labels.items():
        by_label.setdefault(label, []).append(path)
    true = {frozenset(p) for paths in by_label.values() for p in itertools.combinations(paths, 2)}
    hits = len(found & true)
    return (hits / len(found) if found else 1.0), hits / len(true), len(found), len(true)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.80, 0.85, 0.90, 0.95])
    parser.add_argument("--duplicates-only", action="store_true", help="skip clusters and the 10,000")
    _support.add_arguments(parser)
    args = parser.parse_args()
    n_photos, sample = None, 200
    if args.smoke:
        args.distractors, args.scale, args.thresholds, n_photos, sample = 4, 200, [0.9], 3, 10

    import imgsearch

    home = _support.home(args, "imgsearch-bench-collection-")
    cells, _, types = _support.elpv(args)
    with _support.database_server(args, home) as server:
        folder = home / "images"
        folder.mkdir()
        labels = make_collection(folder, args.distractors, cells, n_photos)
        index = imgsearch.open(server.url, device="cpu")
        index.ingest([folder])
        print(
            f"duplicates: {len(photos(n_photos))} photos x {1 + len(EDITS)} versions + "
            f"{args.distractors} elpv distractors"
        )
        calibration = index.calibrate_duplicates(sample=sample)
        print(f"  calibrated: margin {calibration.margin:.2f} (expected recall {calibration.recall:.3f})")
        for threshold in [None, *args.thresholds]:
            groups = index.duplicates(threshold=threshold).groups
            precision, recall, found, true = pair_scores(groups, labels)
            photo_precision, _, photo_found, _ = pair_scores(groups, labels, photos_only=True)
            largest = max((len(g.members) for g in groups), default=0)
            print(
                f"  {'calibrated margin' if threshold is None else f'threshold {threshold:.2f}'}: "
                f"recall {recall:.3f}, precision {precision:.3f} "
                f"({found} pairs found, {true} true); pairs with a photo: precision "
                f"{photo_precision:.3f} ({photo_found} found); {len(groups)} groups, the largest "
                f"{largest} images"
            )
        if args.duplicates_only:
            index.close()
            return
        photo_paths = [p for p, label in labels.items() if not label.startswith("elpv")]
        _clusters(index, photo_paths, labels, "photos + copies")
        index.close()
        _elpv_clusters(server.new_database("elpv_clusters"), home, cells, types)
        _scale(server.new_database("dup_scale"), args.scale)


def _clusters(index, paths: list[str], labels: dict[str, str], what: str) -> None:
    from sklearn.metrics import adjusted_rand_score

    k = len({labels[p] for p in paths})
    index.clusters(k, folder=str(Path(paths[0]).parent))
    truth, found = [], []
    with index.reading() as conn:
        rows = conn.execute(
            """SELECT i.path, a.cluster FROM imgsearch.cluster_assignments a
               JOIN imgsearch.images i ON i.id = a.image_id
               WHERE a.clustering_id = (SELECT max(id) FROM imgsearch.clusterings)"""
        ).fetchall()
    for path, cluster in rows:
        if path in labels and path in paths:
            truth.append(labels[path])
            found.append(cluster)
    ari = adjusted_rand_score(truth, found)
    chance = adjusted_rand_score(truth, np.random.default_rng(0).permutation(found))
    print(f"clusters, {what}: k={k}, ARI {ari:.3f} (shuffled: {chance:.3f}), {len(truth)} images")


def _elpv_clusters(elpv_url: str, home: Path, cells, types) -> None:
    """elpv's cells clustered by module type, in the empty database `elpv_url`."""
    from PIL import Image

    import imgsearch

    folder = home / "elpv"
    folder.mkdir()
    labels = {}
    for i, (cell, kind) in enumerate(zip(cells, types, strict=True)):
        path = folder / f"cell{i:04d}.png"
        Image.fromarray(cell).convert("RGB").save(path)
        labels[str(path)] = str(kind)
    index = imgsearch.open(elpv_url, device="cpu")
    index.ingest([folder])
    _clusters(index, list(labels), labels, "elpv module type")
    index.close()


def synthetic_collection(scale_url: str, n: int) -> tuple[str, str, int]:
    """The empty database `scale_url` made to hold n synthetic vectors of the default encoder,
    4 near-copies of each of n/4 (no ANN index yet); (its URL, the encoder's name, the number
    of originals)."""
    import imgsearch
    from imgsearch.db import store
    from imgsearch.db.connection import Database, connect

    index = imgsearch.open(scale_url, device="cpu")
    encoder = index.encoder()
    index.close()
    rng = np.random.default_rng(0)
    base = np.maximum(rng.normal(size=(n // 4, encoder.dimension)), 0)
    with connect(Database(scale_url), autocommit=True) as conn:
        enc_id = store.encoder_id(conn, encoder.identity)
        for start in range(0, n, 1000):
            rows, vectors = [], []
            for i in range(start, min(n, start + 1000)):
                v = base[i % len(base)] + 0.3 * np.abs(rng.normal(size=encoder.dimension))
                vectors.append((v / np.linalg.norm(v)).astype(np.float32))
                rows.append(
                    store.ImageRow(
                        location=f"/synthetic/{i:06d}.jpg",
                        sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                        byte_size=1000,
                        width=640,
                        height=480,
                        format="JPEG",
                        mtime=0.0,
                        metadata={},
                    )
                )
            store.write_batch(conn, enc_id, rows, vectors)
    return scale_url, encoder.name, len(base)


def _scale(url: str, n: int) -> None:
    import imgsearch
    from imgsearch.db.indexes import create_index

    scale_url, encoder_name, originals = synthetic_collection(url, n)
    index = imgsearch.open(scale_url, device="cpu")
    t0 = time.perf_counter()
    create_index(index.db, encoder_name)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = index.duplicates(limit=20)  # the grouping, and the keepers of a first page
    seconds = time.perf_counter() - t0
    print(
        f"duplicates among {n:,} images (synthetic vectors, 4 near-copies of each of "
        f"{originals:,}): {seconds:.1f} s with the HNSW index (built in {built:.1f} s), "
        f"{groups.total:,} groups"
    )
    index.close()


if __name__ == "__main__":
    main()
