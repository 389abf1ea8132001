"""What the library adds to a search: the bare pgvector query vs the SQL function vs the library.

    python benchmarks/search_overhead.py [--n 200000] [--dim 1280] [--queries 1000] [--index both]
    python benchmarks/search_overhead.py --smoke   # 1,000 x 64, 20 queries, recall 0.8: seconds

N vectors of knn.py's generators (`--data hard`, the default, or `clustered`; held-out
queries), written with `store.write_batch` (ingest's code path), one ANN index at a time built
with `indexes.create_index` (halfvec HNSW, binary-quantised HNSW, or both in turn) and tuned with
`index_tuning.tune` to recall 0.95 (`--recall`). Then each query, from one client over the
server's socket, three ways, at the tuned setting:

- bare: the prepared pgvector statement alone, `SET hnsw.ef_search` once for the session, then
  `SELECT image_id FROM imgsearch.embeddings WHERE encoder_id = .. ORDER BY
  embedding::halfvec(d) <=> $1 LIMIT k` (binary index: its `rerank` candidates in Hamming
  order, re-ranked by exact distance in the same statement);
- function: `imgsearch.similar_to_vector(v, k, encoder)`, prepared (the SQL contract);
- library: `Index.search_vector(v, k)` (the library object, one connection, SearchResult).

A warm-up pass first (the first `--warmup` queries, each way), then every query each way, the
three in turn and each query starting with the next one (round robin), so that the machine's
noise falls on them alike. Per way: recall@k against the exact top-k (numpy), p50 and p95 ms;
then the library's p50 minus the function's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support  # noqa: E402
from knn import DATA, ENCODER, exact_top_k, load_postgres, recall  # noqa: E402

WAYS = ("bare", "function", "library")
INDEXES = {"halfvec": None, "binary": "binary"}  # --index: create_index's quantize=


@dataclass
class Row:
    index: str
    way: str
    setting: str
    recall: float
    p50_ms: float
    p95_ms: float


def measure(
    searches: dict[str, Callable[[np.ndarray], list[int]]],
    queries: np.ndarray,
    truth: np.ndarray,
    warmup: int,
) -> dict[str, tuple[float, float, float]]:
    """(recall, p50 ms, p95 ms) per way: a warm-up pass, then each query every way, round robin."""
    ways = list(searches)
    for q in queries[:warmup]:
        for way in ways:
            searches[way](q)
    found: dict[str, list[list[int]]] = {way: [] for way in ways}
    times: dict[str, list[float]] = {way: [] for way in ways}
    for i, q in enumerate(queries):
        for j in range(len(ways)):
            way = ways[(i + j) % len(ways)]
            t0 = time.perf_counter()
            ids = searches[way](q)
            times[way].append(time.perf_counter() - t0)
            found[way].append(ids)
    out = {}
    for way in ways:
        ms = np.array(times[way]) * 1000
        out[way] = (recall(found[way], truth), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries, each timed every way")
    parser.add_argument("--warmup", type=int, default=100, help="queries of the warm-up pass")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--index", choices=[*INDEXES, "both"], default="both")
    parser.add_argument("--data", choices=sorted(DATA), default="hard", help="knn.py's generators")
    parser.add_argument("--recall", type=float, default=0.95, help="index tune's target")
    _support.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.dim, args.queries, args.warmup, args.recall = 1000, 64, 20, 5, 0.8
    kinds = list(INDEXES) if args.index == "both" else [args.index]

    t0 = time.perf_counter()
    vectors, _ = DATA[args.data](args.n + args.queries, args.dim)
    data, queries = vectors[: args.n], vectors[args.n :]
    truth = exact_top_k(data, queries, args.k)
    print(
        f"{args.n:,} x {args.dim} {args.data} vectors, {args.queries} held-out queries with exact "
        f"top-{args.k} in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    home = _support.home(args, "imgsearch-bench-overhead-")
    rows: list[Row] = []
    with _support.database_server(args, home) as server:
        url = server.new_database("search_overhead")
        t0 = time.perf_counter()
        db, enc_id = load_postgres(url, data)
        print(
            f"loaded {args.n:,} rows through store.write_batch in {time.perf_counter() - t0:.1f}s", flush=True
        )
        for kind in kinds:
            rows += run_index(db, enc_id, kind, queries, truth, args)
    print_report(args, rows)


def run_index(db, enc_id: int, kind: str, queries: np.ndarray, truth: np.ndarray, args) -> list[Row]:
    """Build and tune one index, then time the three ways through it."""
    from imgsearch.db.index_tuning import tune
    from imgsearch.db.indexes import create_index

    t0 = time.perf_counter()
    create_index(db, ENCODER, quantize=INDEXES[kind])
    tuned = tune(db, ENCODER, args.recall, k=args.k)
    parameter, value = tuned.chosen.setting
    print(f"{kind}: built and tuned in {time.perf_counter() - t0:.1f}s: {parameter}={value}", flush=True)
    setting, figures = time_ways(
        db, enc_id, args.dim, args.k, parameter, value, queries, truth, min(args.warmup, len(queries))
    )
    return [Row(kind, way, setting, *figures[way]) for way in WAYS]


def time_ways(
    db,
    enc_id: int,
    dim: int,
    k: int,
    parameter: str,
    value: int,
    queries: np.ndarray,
    truth: np.ndarray,
    warmup: int,
    ways: tuple[str, ...] = WAYS,
) -> tuple[str, dict[str, tuple[float, float, float]]]:
    """The encoder's index at the tuned setting (`parameter`, `value`: ef_search or rerank, as
    `tune` chose), the `ways` (bare, function, library) timed with `measure`: the setting as
    the bare query runs it, and (recall, p50 ms, p95 ms) per way. The rows' paths must end in
    their row number in `truth` (/synthetic/N.jpg, as knn.load_postgres writes them)."""
    from pgvector import HalfVector

    import imgsearch
    from imgsearch.db.connection import connect
    from imgsearch.db.nearest import MAX_EF_SEARCH

    if parameter == "rerank":  # as the library and the function run it
        rerank = max(k, value)
        ef = min(rerank, MAX_EF_SEARCH)
        bare_sql = (
            f"SELECT c.image_id FROM (SELECT e.image_id,"
            f" e.embedding::halfvec({dim}) <=> %(v)b::halfvec({dim}) AS distance"
            f" FROM imgsearch.embeddings e WHERE e.encoder_id = {enc_id}"
            f" ORDER BY binary_quantize(e.embedding::halfvec({dim}))::bit({dim})"
            f" <~> binary_quantize(%(v)b::halfvec({dim})) LIMIT {rerank}) c"
            " ORDER BY c.distance, c.image_id LIMIT %(k)s"
        )
        setting = f"rerank={rerank}, ef_search={ef}"
    else:
        ef = max(value, min(k, MAX_EF_SEARCH))
        bare_sql = (
            f"SELECT image_id FROM imgsearch.embeddings WHERE encoder_id = {enc_id}"
            f" ORDER BY embedding::halfvec({dim}) <=> %(v)b::halfvec({dim}) LIMIT %(k)s"
        )
        setting = f"ef_search={ef}"
    with (
        connect(db, autocommit=True) as bare,
        connect(db, autocommit=True) as sql,
        imgsearch.Index(db.url, model=ENCODER) as index,
    ):
        row_of = dict(
            bare.execute("SELECT id, substring(path from '(\\d+)')::int FROM imgsearch.images").fetchall()
        )
        bare.execute(f"SET hnsw.ef_search = {int(ef)}")
        bare.execute("SET hnsw.iterative_scan = relaxed_order")  # as the library's (k rows, always)

        def by_bare(q: np.ndarray) -> list[int]:
            found = bare.execute(bare_sql, {"v": HalfVector(q), "k": k}, prepare=True).fetchall()
            return [row_of[r[0]] for r in found]

        def by_function(q: np.ndarray) -> list[int]:
            found = sql.execute(
                "SELECT image_id FROM imgsearch.similar_to_vector(%b, %s, %s)",
                (HalfVector(q), k, ENCODER),
                prepare=True,
            ).fetchall()
            return [row_of[r[0]] for r in found]

        def by_library(q: np.ndarray) -> list[int]:
            return [row_of[m.image_id] for m in index.search_vector(q, k).results]

        searches = {"bare": by_bare, "function": by_function, "library": by_library}
        figures = measure({way: searches[way] for way in ways}, queries, truth, warmup)
    return setting, figures


def print_report(args, rows: list[Row]) -> None:
    print()
    print(
        f"## Search overhead: N={args.n:,} x {args.dim} {args.data} vectors, {args.queries} held-out "
        f"queries, recall@{args.k}, one client; {platform.machine()}, {os.cpu_count()} cores"
    )
    print()
    print(f"| index | way | setting | recall@{args.k} | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.index} | {r.way} | {r.setting} | {r.recall:.3f} | {r.p50_ms:.3f} | {r.p95_ms:.3f} |")
    print()
    for kind in dict.fromkeys(r.index for r in rows):
        p50 = {r.way: r.p50_ms for r in rows if r.index == kind}
        print(
            f"{kind}: library - similar_to_vector p50 {p50['library'] - p50['function']:+.3f} ms; "
            f"similar_to_vector - bare {p50['function'] - p50['bare']:+.3f} ms"
        )


if __name__ == "__main__":
    main()
