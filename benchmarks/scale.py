"""Scaling out, measured on one machine: the Ray engine's overhead, and hash partitions.

    python benchmarks/scale.py [--n 300] [--vectors 200000] [--partitions 1 4 16]
                               [--ef-search 40] [--queries 200]

1. Ingest of the same --n camera-size JPEGs (3000x2000, as benchmarks/ingest.py makes them)
   into fresh databases: the local engine vs `--engine ray` on a local Ray started beforehand
   (Ray's start-up is printed on its own), images/s over each report's seconds.
2. --vectors synthetic 1,280-d CNN-like vectors (benchmarks/knn.py's generator) in one table,
   then re-laid out with `imgsearch.db.partition.partition` into 4 and 16 hash partitions
   (copy + HNSW m=16, ef_construction=64 on each partition, timed); per layout: recall@10
   against the exact numpy top-10 and p50/p95 latency of `imgsearch.similar_to_vector` from
   one client, all at the same hnsw.ef_search; index size summed over partitions.

The embedded server starts with shared_buffers=2GB unless IMGSEARCH_SERVER_SETTINGS says
otherwise (large enough to hold an index).

    python benchmarks/scale.py --smoke   # 3 images of 960x640 (one Ray actor), 600 vectors in
                                         # 1 table and 2 partitions
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _support  # noqa: E402
from ingest import link_subset  # noqa: E402
from knn import ENCODER, exact_top_k, load_postgres, recall, synthetic_vectors  # noqa: E402
from sample_images import make_camera_jpegs  # noqa: E402


def engines(
    server: _support.Server,
    n: int,
    out: Path,
    size: tuple[int, int],
    elpv: bool = True,
    workers: int | None = None,
) -> None:
    from imgsearch.encoding.registry import get_encoder
    from imgsearch.ingest import IngestOptions, ingest
    from imgsearch.ingest.ray_engine import start_ray

    paths = make_camera_jpegs(out / "camera", n, size, elpv=elpv)
    folder = out / f"subset_{n}"
    link_subset(folder, paths[:n])
    encoder = get_encoder("efficientnet-lite0", "cpu")
    local = ingest([folder], encoder=encoder, database=server.new_database("scale_local"))
    t0 = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - t0
    on_ray = ingest(
        [folder],
        encoder=encoder,
        database=server.new_database("scale_ray"),
        options=IngestOptions(engine="ray", workers=workers),
    )
    print(
        f"{n} camera JPEGs ({size[0]}x{size[1]}), efficientnet-lite0 (ONNX Runtime), {os.cpu_count()} cores"
    )
    print(f"  local engine : {local.new / local.seconds:7.1f} images/s ({local.seconds:.1f} s)")
    print(
        f"  Ray engine   : {on_ray.new / on_ray.seconds:7.1f} images/s ({on_ray.seconds:.1f} s;"
        f" Ray started in {ray_start:.1f} s before)"
    )
    print(f"  Ray / local  : {local.seconds / on_ray.seconds:7.2f}x")


def partitions(url: str, n: int, layouts: list[int], ef_search: int, n_queries: int) -> None:
    from imgsearch.db.connection import connect
    from imgsearch.db.indexes import create_index, index_status
    from imgsearch.db.partition import partition

    t0 = time.perf_counter()
    data = synthetic_vectors(n + n_queries, 1280)
    queries, data = data[:n_queries], data[n_queries:]
    truth = exact_top_k(data, queries, 10)
    db, enc_id = load_postgres(url, data)
    print(
        f"{n:,} synthetic 1,280-d vectors loaded in {time.perf_counter() - t0:.0f} s; "
        f"{n_queries} held-out queries, k=10, hnsw.ef_search={ef_search}"
    )
    t0 = time.perf_counter()
    create_index(db, ENCODER, "hnsw")
    first_build = time.perf_counter() - t0
    print("| layout | build (copy + HNSW) | index size | recall@10 | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for count in layouts:
        # the table as loaded is the first layout when that is 1; any other is rebuilt
        seconds = first_build if count == 1 == layouts[0] else partition(db, count).seconds
        with connect(db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE imgsearch.embeddings")
            conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
            image_of = dict(
                conn.execute(
                    "SELECT id, (regexp_match(path, '(\\d+)\\.jpg$'))[1]::int FROM imgsearch.images"
                ).fetchall()
            )
            found, times = [], []
            for i, q in enumerate(queries):
                t = time.perf_counter()
                rows = conn.execute(
                    "SELECT image_id FROM imgsearch.similar_to_vector(%s, 10, %s)", (_half(q), ENCODER)
                ).fetchall()
                if i >= 10:  # the first ten warm the caches
                    times.append(time.perf_counter() - t)
                found.append([image_of[r[0]] for r in rows])
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN SELECT image_id FROM imgsearch.embeddings e WHERE encoder_id = {enc_id}"
                    " ORDER BY embedding::halfvec(1280) <=> %s::halfvec(1280) LIMIT 10",
                    (_half(queries[0]),),
                ).fetchall()
            )
        size = sum(s.size_bytes for s in index_status(db))
        ms = np.array(times) * 1000
        print(
            f"| {'1 table' if count == 1 else f'{count} partitions'} | {seconds:.0f} s | "
            f"{size / 2**20:,.0f} MiB | {recall(found, truth):.4f} | "
            f"{np.percentile(ms, 50):.2f} | {np.percentile(ms, 95):.2f} |",
            flush=True,
        )
        if "Index Scan" not in plan:
            print("  (warning: the planner chose no index scan for this layout)")


def _half(vector: np.ndarray):
    from pgvector import HalfVector

    return HalfVector(vector)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--ef-search", type=int, default=40)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-engines", action="store_true")
    _support.add_arguments(parser)
    args = parser.parse_args()
    out, size = HERE / "out", (3000, 2000)
    if args.smoke:
        args.n, args.vectors, args.partitions, args.queries, size = 3, 600, [1, 2], 20, (960, 640)

    home = _support.home(args, "imgsearch-bench-scale-")
    if args.smoke:
        out = home / "out"
    os.environ.setdefault("IMGSEARCH_SERVER_SETTINGS", "shared_buffers=2GB")  # the embedded server's
    with _support.database_server(args, home) as server:
        if not args.skip_engines:
            # (--smoke: one Ray encoding actor, one model load, instead of one per core)
            engines(server, args.n, out, size, elpv=not args.smoke, workers=1 if args.smoke else None)
        partitions(server.url, args.vectors, args.partitions, args.ef_search, args.queries)


if __name__ == "__main__":
    main()
