"""Query scale-out on a read replica: searches per second with 1 server vs 2 (primary + standby).

    python benchmarks/replica.py [--n 50000] [--dim 1280] [--clients 4] [--seconds 20]
    python benchmarks/replica.py --smoke   # 500 x 64, 2 clients, half a second each

An embedded primary holds --n synthetic CNN-like vectors (benchmarks/knn.py's generator) with an
HNSW index tuned to recall@10 >= 0.95 (`index tune`); `embedded.start_standby` makes a hot
standby of it (pg_basebackup, streaming replication). --clients threads each run
`imgsearch.similar_to_image(id, 10)` in a loop for --seconds: all on the primary (1 server), then
half on the primary and half on the standby, as `imgsearch serve` processes started with and
without `--replica` would split them (2 servers).

On one machine the two servers share its cores, so each server is pinned to its own core set
(`--pin`, default: half the cores each; 1 server gets one half) to stand for two machines of that
size; the clients run unpinned. The report says so. Both servers are embedded ones of its own, in
temporary folders (a standby is made from a primary's files): --database-url is not used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402


def _pin(home: Path, cores: set[int]) -> None:
    """Pin a running embedded server (postmaster and its children) to `cores`."""
    import psutil

    pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend that ended since it was listed
            proc.cpu_affinity(sorted(cores))


def _clients(urls: list[str], ids: np.ndarray, seconds: float) -> tuple[int, list[float]]:
    """Run one client thread per URL for `seconds`; total queries and per-query latencies."""
    import psycopg

    counts = [0] * len(urls)
    latencies: list[list[float]] = [[] for _ in urls]
    stop = time.monotonic() + seconds

    def run(i: int, url: str) -> None:
        rng = np.random.default_rng(i)
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                conn.execute(
                    "SELECT image_id FROM imgsearch.similar_to_image(%s, 10, 'knn-bench')",
                    (int(rng.choice(ids)),),
                    prepare=True,
                ).fetchall()
                latencies[i].append(time.perf_counter() - t0)
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i, url)) for i, url in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), [x for lat in latencies for x in lat]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    _support.add_arguments(parser)
    args = parser.parse_args()
    warm_s = 3.0
    if args.smoke:
        args.n, args.dim, args.clients, args.seconds, warm_s = 500, 64, 2, 0.5, 0.5
    if args.database_url:
        print("replica.py makes its own primary and standby (embedded, in temporary folders)")
    if args.home is not None:
        _support.home(args, "")

    from knn import load_postgres, synthetic_vectors

    from imgsearch.db import embedded
    from imgsearch.db.connection import connect
    from imgsearch.db.index_tuning import tune
    from imgsearch.db.indexes import create_index

    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    first, second = set(cores[:half]), set(cores[half:] or cores[:half])
    base = _support.temporary_folder("imgsearch-replica-")
    primary_home, standby_home = base / "primary", base / "standby"
    try:
        primary = embedded.start(primary_home)
        db, _ = load_postgres(primary.url, synthetic_vectors(args.n, args.dim))
        create_index(db, "knn-bench")
        chosen = tune(db, "knn-bench", 0.95).chosen
        print(
            f"{args.n:,} x {args.dim} vectors, HNSW tuned: ef_search {chosen.ef_search}, "
            f"recall@10 {chosen.recall:.3f}"
        )
        t0 = time.perf_counter()
        standby = embedded.start_standby(primary_home, standby_home)
        print(f"standby started from a base backup in {time.perf_counter() - t0:.1f}s", flush=True)
        with connect(db) as conn:
            ids = np.array([r[0] for r in conn.execute("SELECT id FROM imgsearch.images")])
        for url in (primary.url, standby.url):  # warm both servers' caches
            _clients([url], ids, warm_s)
        _pin(primary_home, first)
        _pin(standby_home, second)
        layouts = {
            "1 server (primary)": [primary.url] * args.clients,
            "2 servers (primary + replica)": [primary.url, standby.url] * (args.clients // 2),
        }
        print(
            f"\n{args.clients} client threads, {args.seconds:g} s each; servers pinned to cores "
            f"{sorted(first)} and {sorted(second)} (of {len(cores)})\n"
        )
        print("| layout | queries/s | p50 ms | p95 ms |")
        print("|---|---|---|---|")
        for name, urls in layouts.items():
            count, latencies = _clients(urls, ids, args.seconds)
            p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
            print(f"| {name} | {count / args.seconds:.0f} | {p50:.2f} | {p95:.2f} |", flush=True)
    finally:
        embedded.stop(standby_home)
        embedded.stop(primary_home)


if __name__ == "__main__":
    main()
