"""`imgsearch ingest` against a naive one-image-at-a-time loop and against the bounds of its
two stages, on camera-size JPEGs.

    python benchmarks/ingest.py [--n 300] [--rss-n 300 1200] [--model efficientnet-lite0]
    python benchmarks/ingest.py --smoke   # 3 images of 960x640, in a temporary folder

- naive loop: what the earlier systems did: open, full decode, torchvision resize, encode one
  image with torch, INSERT and commit per image;
- decode bound: the ingest mapper's work alone (read, sha256, draft decode, resize and crop) on
  all cores (one thread per core), no encoder;
- encode bound: the encoder alone (the `auto` backend) on already preprocessed pictures, in
  ingest's batches;
- imgsearch ingest: the whole pipeline with the `auto` backend, into a fresh database.

Everything uses the same model and the same database server. Peak RSS is measured in a fresh
process per run, for each size in --rss-n (for --n's size, the imgsearch ingest run's own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from sample_images import make_camera_jpegs  # noqa: E402

RUN_INGEST = """
import json, resource, sys
import imgsearch
index = imgsearch.open(sys.argv[3] if len(sys.argv) > 3 else None, model=sys.argv[2])
report = index.ingest([sys.argv[1]])
print(json.dumps({"new": report.new, "failed": report.failed, "seconds": report.seconds,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def naive_loop(paths: list[Path], model: str, url: str) -> float:
    """Images/s of the one-at-a-time loop (model loaded beforehand, as for imgsearch)."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from imgsearch.db.connection import Database, connect
    from imgsearch.encoding.registry import get_encoder

    encoder = get_encoder(model, "cpu", backend="torch")
    prep = encoder.preprocessing
    transform = transforms.Compose(
        [  # the earlier systems' torchvision pipeline
            transforms.Resize(prep.resize),
            transforms.CenterCrop(prep.crop),
            transforms.ToTensor(),
            transforms.Normalize([m / 255 for m in prep.mean], [s / 255 for s in prep.std]),
        ]
    )
    with connect(Database(url)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS naive_embeddings")
        conn.execute("CREATE TABLE naive_embeddings (path text PRIMARY KEY, embedding halfvec)")
        conn.commit()
        start = time.perf_counter()
        for path in paths:
            image = Image.open(path).convert("RGB")  # full-size decode
            with torch.inference_mode():
                features = encoder.module(transform(image)[None].to(encoder.device))
            vector = torch.nn.functional.normalize(features, dim=1)[0].cpu().numpy()
            conn.execute(
                "INSERT INTO naive_embeddings VALUES (%s, %s::halfvec)",
                (str(path), "[" + ",".join(f"{x:.6f}" for x in vector) + "]"),
            )
            conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE naive_embeddings")
        conn.commit()
    return len(paths) / seconds


def decode_bound(paths: list[Path], model: str) -> tuple[float, list]:
    """Images/s of read + hash + decode + preprocess on one thread per core; the inputs."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from imgsearch.encoding.decode import decode_image
    from imgsearch.encoding.registry import get_encoder

    encoder = get_encoder(model, "cpu")

    def work(path: Path):
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        return encoder.preprocess(decode_image(data, encoder.min_decode_size).image)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        start = time.perf_counter()
        inputs = list(pool.map(work, paths))
        seconds = time.perf_counter() - start
    return len(paths) / seconds, inputs


def encode_bound(inputs: list, model: str) -> float:
    """Images/s of the `auto` encoder alone, in ingest's batches."""
    from imgsearch.encoding.encoder import collate
    from imgsearch.encoding.registry import get_encoder
    from imgsearch.ingest.pipeline import default_batch_size

    encoder = get_encoder(model, "cpu")
    size = default_batch_size(encoder)
    encoder.encode_batch(collate(inputs[:size]))  # warm-up
    start = time.perf_counter()
    for i in range(0, len(inputs), size):
        encoder.encode_batch(collate(inputs[i : i + size]))
    return len(inputs) / (time.perf_counter() - start)


def run_imgsearch(folder: Path, model: str, url: str) -> dict:
    env = {**os.environ, "IMGSEARCH_DATABASE_URL": url}
    out = subprocess.run(
        [sys.executable, "-c", RUN_INGEST, str(folder), model, url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rss-n", type=int, nargs="*", default=[300, 1200])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--data", type=Path, default=HERE / "out" / "camera")
    _support.add_arguments(parser)
    args = parser.parse_args()

    from imgsearch.encoding.registry import get_encoder, resolve_backend

    home = _support.home(args, "imgsearch-bench-")  # the model cache too: exported before timing
    out, size = HERE / "out", (3000, 2000)
    if args.smoke:
        args.n, args.rss_n, args.data, out, size = 3, [3], home / "camera", home / "out", (960, 640)
    with _support.database_server(args, home) as server:
        get_encoder(args.model, "cpu")
        biggest = max([args.n, *args.rss_n])
        t0 = time.perf_counter()
        paths = make_camera_jpegs(args.data, biggest, size, elpv=not args.smoke)
        print(
            f"{biggest} camera JPEGs ({size[0]}x{size[1]}, q90) ready in "
            f"{time.perf_counter() - t0:.0f}s at {args.data}"
        )
        subset = out / f"subset_{args.n}"
        link_subset(subset, paths[: args.n])

        ours = run_imgsearch(subset, args.model, server.new_database("bench_ours"))
        ours_rate = ours["new"] / ours["seconds"]
        naive_rate = naive_loop(paths[: args.n], args.model, server.new_database("bench_naive"))
        decode_rate, inputs = decode_bound(paths[: args.n], args.model)
        encode_rate = encode_bound(inputs, args.model)
        del inputs
        bound = min(decode_rate, encode_rate)
        print(
            f"model {args.model} (backend auto = {resolve_backend('auto', 'cpu')}), "
            f"{args.n} images, {os.cpu_count()} CPU cores"
        )
        print(f"naive loop        : {naive_rate:7.2f} images/s")
        print(f"decode bound      : {decode_rate:7.2f} images/s  (read, hash, decode, preprocess)")
        print(f"encode bound      : {encode_rate:7.2f} images/s  (encoder alone)")
        print(f"imgsearch ingest  : {ours_rate:7.2f} images/s  ({ours['failed']} failed)")
        print(f"ingest / naive    : {ours_rate / naive_rate:7.2f}x")
        print(f"ingest / min bound: {ours_rate / bound:7.2f}  (min bound {bound:.2f} images/s)")
        for n in args.rss_n:
            if n == args.n:  # measured already: `ours` ran in a fresh process of its own too
                run = ours
            else:
                folder = out / f"subset_{n}"
                link_subset(folder, paths[:n])
                run = run_imgsearch(folder, args.model, server.new_database(f"bench_rss_{n}"))
            print(
                f"peak RSS, {n:>5} images: {run['max_rss_mb']:7.0f} MiB "
                f"({run['new'] / run['seconds']:.2f} images/s)"
            )


def link_subset(folder: Path, paths: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        link = folder / p.name
        if not link.exists():
            os.link(p, link)


if __name__ == "__main__":
    main()
