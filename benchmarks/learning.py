"""A projection head trained on elpv's stored vectors, judged on the held-out half.

    python benchmarks/learning.py [--labels defect|type] [--loss supcon|triplet] [--epochs 30]
    python benchmarks/learning.py --finetune [--finetune-epochs 15] [--size 224] [--rotations]
    python benchmarks/learning.py --smoke   # 40 stand-in cells, 2 epochs, PCA 8, fine-tuned 1 epoch

Ingests the 2,624 elpv cells with the base encoder into a fresh database, splits them by
label (half held out, seeded), trains the head on the training half only, and reports P@1,
P@10 and mAP of base and head on the held-out half (queries and candidates both held out),
then the same for PCA (and PCA-whitening) fitted on the training half. With --finetune, also
the network fine-tuned on the training half (`imgsearch train --finetune`), with its bootstrap
95% interval, training time and peak memory, and ONNX Runtime encoding speed of the base and the
fine-tuned network on the held-out cells (each timed twice, the better kept).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", choices=["defect", "type"], default="defect")
    parser.add_argument("--loss", choices=["supcon", "triplet"], nargs="+", default=["supcon", "triplet"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pca", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--first-block", type=int, default=8)
    parser.add_argument("--rotations", action="store_true")
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.pca, args.finetune, args.finetune_epochs, args.size = 2, [8], True, 1, 96

    from PIL import Image

    import imgsearch
    from imgsearch.evaluation.evaluate import leave_one_out
    from imgsearch.learning.train import TrainOptions, stratified_split, train_head

    home = _support.home(args, "imgsearch-bench-learning-")
    with _support.database_server(args, home) as server:
        cells, probs, types = _support.elpv(args)
        folder = home / "elpv"
        folder.mkdir()
        paths, labels = [], []
        for i, cell in enumerate(cells):
            path = folder / f"cell{i:04d}.png"
            Image.fromarray(cell).convert("RGB").save(path)
            paths.append(str(path))
            labels.append(f"{probs[i]:.2f}" if args.labels == "defect" else str(types[i]))
        index = imgsearch.open(server.url, device="cpu")
        index.ingest(paths)
        from imgsearch.db import store

        with index.reading() as conn:
            enc_id = store.find_encoder_id(conn, index.encoder().identity)
            found = store.vectors_for_paths(conn, enc_id, paths)
        vectors = np.stack([found[p][1] for p in paths])
        train, test = stratified_split(labels, 0.5, args.seed)
        assert not set(train) & set(test)
        test_labels = [labels[i] for i in test]
        base = leave_one_out(vectors[test], test_labels, [1, 10])
        print(f"elpv {args.labels} labels: {len(train)} training, {len(test)} held-out images")
        print(
            f"  base            P@1 {base.precision[1]:.3f}  P@10 {base.precision[10]:.3f}  "
            f"mAP {base.map:.3f}  (chance P@10 {base.chance_precision:.3f})"
        )
        for loss in args.loss:
            t0 = time.perf_counter()
            head = train_head(
                vectors[train],
                [labels[i] for i in train],
                index.model,
                TrainOptions(loss=loss, epochs=args.epochs, seed=args.seed),
            )
            seconds = time.perf_counter() - t0
            scores = leave_one_out(head.apply(vectors[test]), test_labels, [1, 10])
            print(
                f"  head ({loss:<7}) P@1 {scores.precision[1]:.3f}  "
                f"P@10 {scores.precision[10]:.3f}  mAP {scores.map:.3f}  "
                f"(trained in {seconds:.1f} s)"
            )
        from sklearn.decomposition import PCA

        for n in args.pca:
            for whiten in (False, True):
                pca = PCA(n, whiten=whiten, random_state=args.seed).fit(vectors[train])
                reduced = pca.transform(vectors[test])
                scores = leave_one_out(reduced, test_labels, [1, 10])
                print(
                    f"  PCA {n:>4}{' whitened' if whiten else '         '} P@1 "
                    f"{scores.precision[1]:.3f}  P@10 {scores.precision[10]:.3f}  "
                    f"mAP {scores.map:.3f}  ({n * 2:,} bytes a vector vs "
                    f"{vectors.shape[1] * 2:,})"
                )
        if args.finetune:
            finetuned_rows(args, paths, labels, train, test, test_labels, vectors)
        index.close()


def finetuned_rows(args, paths, labels, train, test, test_labels, vectors) -> None:
    import resource

    from imgsearch.encoding.edited_copies import encode_paths
    from imgsearch.encoding.registry import finetuned_encoder, get_encoder
    from imgsearch.evaluation.evaluate import per_query
    from imgsearch.evaluation.split import bootstrap
    from imgsearch.learning.finetune import FinetuneOptions, finetune

    options = FinetuneOptions(
        epochs=args.finetune_epochs,
        size=args.size,
        first_block=args.first_block,
        rotations=args.rotations,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    result = finetune([paths[i] for i in train], [labels[i] for i in train], options)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weights = Path(tempfile.mkdtemp()) / "finetuned.pt"
    weights.write_bytes(result.weights)
    tuned = finetuned_encoder("finetuned", weights, options.size, "cpu", "onnx")
    test_paths = [paths[i] for i in test]
    for name, encoded in (("base", vectors[test]), ("fine-tuned", encode_paths(tuned, test_paths))):
        values, _ = per_query(encoded, test_labels, [1, 10])
        p1, p10, ap = (bootstrap(values[m], args.seed) for m in ("p1", "p10", "ap"))
        print(
            f"  {name:<15} P@1 {p1.mean:.3f}  P@10 {p10.mean:.3f} [{p10.low:.3f}, {p10.high:.3f}]  "
            f"mAP {ap.mean:.3f} [{ap.low:.3f}, {ap.high:.3f}]"
        )
    rotations = ", rotations" if args.rotations else ""
    print(
        f"  fine-tuned: blocks {args.first_block}-15, {args.size} px{rotations}, "
        f"{args.finetune_epochs} epochs: {seconds:.0f} s ({result.details['views']} views cached), "
        f"peak RSS {peak:,.0f} MiB, loss per epoch {result.details['loss_per_epoch']}"
    )
    base = get_encoder("efficientnet-lite0", "cpu", None, "onnx")
    for name, encoder in (("base", base), ("fine-tuned", tuned)):
        best = min(_timed(encode_paths, encoder, test_paths) for _ in range(2))
        print(f"  ONNX Runtime, {name}: {len(test_paths) / best:.0f} images/s (decode + encode)")


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
